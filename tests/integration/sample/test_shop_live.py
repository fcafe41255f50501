"""`dataplump run` (continuous) on the sample shop while `dataplump sample grow` inserts
and updates rows for a minute; the whole `run` process tree is killed with SIGKILL half
way and started again. When the growth stops, every curated table holds exactly the
source's valid rows — with their latest values — and the ledger balances."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from dataplump.config import load_config
from dataplump.pipeline.ledger import read_ledger
from dataplump.sample.schema import TABLES
from tests.support.cli import Command, run_command
from tests.unit.sample.sql import valid_rows

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

EXAMPLE = Path(__file__).parents[3] / "examples" / "shop" / "dataplump.yaml"


def curated(lake: Path, table: str) -> pl.DataFrame:
    path = lake / table
    if not (path / "_delta_log").exists():
        return pl.DataFrame()
    return pl.read_delta(str(path))


@pytest.mark.timeout(900)
def test_live_growth_with_the_run_tree_killed(tmp_path: Path, kafka_bootstrap: str) -> None:
    db = tmp_path / "shop.db"
    url = f"sqlite:///{db}"
    logs = tmp_path / "logs"
    created = run_command(
        "sample", "create", "--url", url, "--rows", "2000", "--seed", "7", "--json",
        logs=logs, cwd=tmp_path,
    )  # fmt: skip
    assert created.returncode == 0, created.describe()
    faults = json.loads(created.stdout)["tables"]["products"]["faults"]
    # a product update re-reads one row alone: a duplicated sku would pass `unique` then
    assert all(f["rows"] == 0 for f in faults if f["kind"] == "duplicate_key")
    lake = tmp_path / "lake"
    env = {
        "DATAPLUMP__PIPELINE__NAME": f"live{uuid.uuid4().hex[:8]}",
        "DATAPLUMP__SOURCE__URL": url,
        "DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATAPLUMP__KAFKA__EXTRA__SESSION.TIMEOUT.MS": "6000",
        "DATAPLUMP__SINKS__LAKE__PATH": str(lake),
        "DATAPLUMP__EXTRACT__POLL_INTERVAL": "2s",
    }
    run_args = ("run", "-c", str(EXAMPLE), "--metrics-port", "0")
    grow = Command(
        "sample", "grow", "--url", url, "--rate", "20", "--duration", "60",
        "--update-share", "0.3", "--dirty", "0", "--seed", "3", "--json",
        logs=logs, cwd=tmp_path, label="grow",
    )  # fmt: skip
    first = Command(*run_args, logs=logs, cwd=tmp_path, label="run1", env=env)
    try:
        time.sleep(45)  # half way through the growth: every stage is busy
        assert first.process.poll() is None, first.output
    finally:
        first.kill_tree()
    second = Command(*run_args, logs=logs, cwd=tmp_path, label="run2", env=env)
    try:
        grown = grow.wait(180)
        assert grown.returncode == 0, grown.describe()
        engine = sa.create_engine(url)
        deadline = time.monotonic() + 420
        while True:
            with engine.connect() as conn:
                want = {t: valid_rows(conn, t) for t in TABLES}
            have = {t: curated(lake, t).height for t in TABLES}
            if have == want:
                break
            assert time.monotonic() < deadline, f"curated {have}, valid {want}\n{second.output}"
            assert second.process.poll() is None, second.output
            time.sleep(3)
        with engine.connect() as conn:
            source = pl.DataFrame(
                conn.execute(sa.text("SELECT id, status, updated_at FROM orders")).fetchall(),
                schema=["id", "status", "updated_at"],
                orient="row",
            )
        engine.dispose()
        second.interrupt()
        stopped = second.wait(120)
    finally:
        if second.process.poll() is None:
            second.kill_tree()
    assert stopped.returncode == 130, stopped.describe()
    updates = json.loads(grown.stdout)
    assert updates["updated"]["orders"] > 0, grown.stdout
    for table in TABLES:
        ids = curated(lake, table)["id"]
        assert ids.n_unique() == ids.len(), f"a row twice in {table}"
    orders = curated(lake, "orders").select("id", "status")
    joined = orders.join(source.select("id", "status"), on="id", suffix="_source")
    assert joined.height == orders.height
    changed = joined.filter(
        pl.col("status") != pl.col("status_source").str.strip_chars().str.to_lowercase()
    )
    assert changed.height == 0, changed.head(5)  # every update reached the lake
    ledgers = read_ledger(load_config(EXAMPLE, env=env), kafka_bootstrap)
    assert {t: lg.gap for t, lg in ledgers.items()} == dict.fromkeys(TABLES, 0)
