"""``Grower`` on SQLite: inserts and updates at the rate, bumps ``updated_at``, counts faults."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dataplump.cli import app
from dataplump.sample import SampleError, create_sample
from dataplump.sample.grow import Grower
from dataplump.sample.schema import TABLES

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def test_grower_inserts_and_updates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    manifest = create_sample(url, orders=500, seed=1, now=NOW)
    grower = Grower(url, rate=400, update_share=0.25, dirty=0.2, seed=3)
    try:
        time.sleep(0.5)
        later = datetime(2026, 6, 2, tzinfo=UTC)
        counts = grower.tick(now=later)
    finally:
        grower.close()
    assert counts.inserted["orders"] + counts.updated["orders"] + counts.updated["products"] > 100
    assert counts.inserted["order_items"] >= counts.inserted["orders"]
    assert counts.updated["orders"] > 0
    assert sum(counts.faults["order_items"].values()) > 0
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for name in TABLES:
            rows = conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar()  # noqa: S608
            assert rows == manifest.tables[name].rows + counts.inserted[name], name
        bumped = conn.exec_driver_sql(
            "SELECT count(*) FROM orders WHERE updated_at >= '2026-06-02'"
        ).scalar()
        # new orders and updated ones (an id may be drawn twice in one tick)
        assert (
            counts.inserted["orders"]
            < (bumped or 0)
            <= (counts.inserted["orders"] + counts.updated["orders"])
        )
        newest = conn.exec_driver_sql("SELECT max(id) FROM orders").scalar()
        assert newest == manifest.tables["orders"].last_id + counts.inserted["orders"]
    engine.dispose()


def test_grow_needs_a_sample(tmp_path: Path) -> None:
    with pytest.raises(SampleError, match="sample create"):
        Grower(f"sqlite:///{tmp_path / 'empty.db'}")


def test_cli_grow_for_a_duration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    create_sample(url, orders=100, seed=1)
    result = CliRunner().invoke(
        app, ["sample", "grow", "--url", url, "--rate", "100", "--duration", "1", "--json"]
    )
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts["inserted"]["orders"] > 0
