"""Lake maintenance: compact, vacuum, history."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from deltalake import DeltaTable

from dataplump.sinks import SinkError
from dataplump.sinks.delta import DeltaSink, read_delta
from dataplump.sinks.lake import compact, history, vacuum
from tests.unit.sinks.helpers import TOPIC_NAME, config, rows, target


@pytest.fixture
def table(tmp_path: Path) -> Path:
    sink = DeltaSink("lake", config(tmp_path), target("append"))
    for i in range(4):
        sink.write(rows([i], [i]), {(TOPIC_NAME, 0): i + 1})
    sink.close()
    return tmp_path / "orders"


def test_compact_then_vacuum(table: Path) -> None:
    done = compact(table)
    assert (done.files_added, done.files_removed, done.version) == (1, 4, 4)
    assert read_delta(DeltaTable(str(table))).num_rows == 4
    with pytest.raises(SinkError, match="below Delta's safe minimum of 7 days"):
        vacuum(table, dt.timedelta(0))
    assert vacuum(table, dt.timedelta(0), dry_run=True, force=True)
    removed = vacuum(table, dt.timedelta(0), force=True)
    assert len(removed) == 4
    assert len(list(table.glob("*.parquet"))) == 1
    assert read_delta(DeltaTable(str(table))).num_rows == 4


def test_history_lists_commits_newest_first(table: Path) -> None:
    compact(table)
    commits = history(table)
    assert [c.version for c in commits] == [4, 3, 2, 1, 0]
    assert commits[0].operation == "OPTIMIZE"
    assert commits[1].operation == "WRITE"
    assert commits[1].rows_added == 1
    assert commits[1].app_ids == (f"dataplump:{TOPIC_NAME}:0",)
    assert len(history(table, limit=2)) == 2


def test_missing_table_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SinkError, match="no Delta table at"):
        history(tmp_path / "nope")
