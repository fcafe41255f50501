"""The row-accounting ledger on real Kafka and Delta tables: every order read is in the
curated table, ``_dlq``, ``_failed`` or filtered by a step — or counted in flight."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplump.config import load_config
from dataplump.pipeline.ledger import read_ledger
from dataplump.pipeline.load import Loader
from dataplump.pipeline.transform import Transformer
from tests.support.loading import loadable
from tests.support.transformation import Expected

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 2_000


@pytest.mark.parametrize("mode", ["append", "merge"])
def test_ledger_balances_before_and_after_loading(
    tmp_path: Path, kafka_bootstrap: str, mode: str
) -> None:
    data = loadable(tmp_path / "data", kafka_bootstrap, ROWS)
    path = data.pipeline(
        tmp_path / "run", {"lake": {"kind": "delta", "path": "lake", "mode": mode}}
    )
    config = load_config(path)
    dropped = len(Expected.of(ROWS).dropped - data.dlq)

    before = read_ledger(config, kafka_bootstrap)["orders"]
    assert (before.read, before.valid, before.invalid) == (
        ROWS,
        ROWS - len(data.dlq),
        len(data.dlq),
    )
    assert before.consumed == before.valid
    assert (before.processed, before.failed) == (len(data.processed), len(data.failed))
    assert before.filtered == {"3:drop_null": dropped}
    assert (before.in_dlq, before.in_failed, before.loaded) == (0, 0, 0)
    assert before.in_flight == {
        "transform": 0,
        "load": len(data.processed),
        "dlq": len(data.dlq),
        "failed": len(data.failed),
    }
    assert before.gap == 0

    Loader(config, kafka_bootstrap).run(once=True)
    after = read_ledger(config, kafka_bootstrap)["orders"]
    assert after.in_dlq == len(data.dlq)
    assert after.in_failed == len(data.failed)
    assert after.loaded == len(data.processed)
    assert after.sinks["lake"].rows == len(data.processed)
    assert after.in_flight_total == 0
    assert after.settled
    assert after.gap == 0
    assert after.as_dict()["gap"] == 0


def test_ledger_counts_a_second_transform_run_and_new_rows(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """Totals add up over runs: a rerun of the transformation finds nothing to redo."""
    data = loadable(tmp_path / "data", kafka_bootstrap, 500)
    path = data.pipeline(tmp_path / "run", {"lake": {"kind": "delta", "path": "lake"}})
    config = load_config(path)
    Transformer(config, kafka_bootstrap).run(once=True)  # nothing new: totals unchanged
    Loader(config, kafka_bootstrap).run(once=True)
    ledger = read_ledger(config, kafka_bootstrap)["orders"]
    assert ledger.read == 500
    assert ledger.consumed == 500 - len(data.dlq)
    assert ledger.gap == 0
    assert ledger.settled
