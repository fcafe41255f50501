"""The loading stage end to end on real SQLite, Kafka and Delta tables: extract, transform,
load; then the curated table and the ops tables are read back with an independent reader."""

from __future__ import annotations

import json
import sqlite3
import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from typer.testing import CliRunner

from dataplump.cli import app
from dataplump.config import PipelineConfig, load_config
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.load import Loader
from dataplump.pipeline.transform import Transformer
from dataplump.sinks.delta import read_delta
from tests.support.faulted_run import ORDERS_CONTRACT, bad_qty, expected_loaded, negative, order

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROWS = 600
"""Orders; every 7th has a negative amount (dead-letter), every 11th a status the
transformation's cast fails (failed store)."""

PIPELINE = (
    """
pipeline: {{name: {name}}}
source: {{url: "sqlite:///{db}"}}
kafka: {{bootstrap_servers: "{bootstrap}"}}
sinks:
  lake: {{kind: delta, path: lake, mode: {mode}}}
tables:
  orders:
    primary_key: id
    batch_size: 200
"""
    + ORDERS_CONTRACT
)


def make(folder: Path, bootstrap: str, mode: str = "merge") -> PipelineConfig:
    with sqlite3.connect(folder / "shop.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), qty TEXT)")
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [order(i) for i in range(1, ROWS + 1)],
        )
    path = folder / "dataplump.yaml"
    path.write_text(
        PIPELINE.format(
            name=f"l{uuid.uuid4().hex[:8]}",
            db=folder / "shop.db",
            bootstrap=bootstrap,
            mode=mode,
            min_amount=0,
        )
    )
    return load_config(path)


def read(path: Path) -> pa.Table:
    return read_delta(DeltaTable(str(path)))


def test_processed_rows_land_once_with_lineage_and_ops_tables(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config = make(tmp_path, kafka_bootstrap)
    Extractor(config, kafka_bootstrap).run_once()
    Transformer(config, kafka_bootstrap).run(once=True)

    counts = {c.table: c for c in Loader(config, kafka_bootstrap).run(once=True)}

    invalid = {i for i in range(1, ROWS + 1) if negative(i)}
    failed = {i for i in range(1, ROWS + 1) if bad_qty(i)}
    good = expected_loaded(ROWS)
    lake = tmp_path / "lake"
    orders = read(lake / "orders")
    assert sorted(orders["id"].to_pylist()) == sorted(good)  # each once
    assert counts["orders"].loaded == {"lake": len(good)}
    assert orders.schema.field("amount").type == pa.decimal128(10, 2)
    assert orders.schema.field("qty").type == pa.int32()
    row = orders.filter(pa.compute.equal(orders["id"], 1)).to_pylist()[0]
    assert row["amount"] == Decimal("1.10")
    assert (row["_dp_source"], row["_dp_pk"]) == ("orders", '{"id":1}')
    assert row["_dp_topic"] == f"{config.name}.orders.processed"
    assert row["_dp_offset"] >= 0
    assert row["_dp_extracted_at"] is not None

    dlq = read(lake / "_dlq")
    assert sorted(json.loads(k)["id"] for k in dlq["key"].to_pylist()) == sorted(invalid)
    assert set(dlq["rules"].to_pylist()) == {"min(amount)"}
    assert set(dlq["table"].to_pylist()) == {"orders"}
    failures = read(lake / "_failed")
    assert sorted(json.loads(k)["id"] for k in failures["key"].to_pylist()) == sorted(failed)
    assert set(failures["step"].to_pylist()) == {"1:cast"}
    alerts = read(lake / "_alerts")
    assert {"invalid_records", "failed_records"} <= set(alerts["kind"].to_pylist())
    runs = read(lake / "_runs")
    assert {"extract", "transform"} <= set(runs["stage"].to_pylist())

    again = {c.table: c for c in Loader(config, kafka_bootstrap).run(once=True)}
    assert again["orders"].consumed == 0
    assert read(lake / "orders").num_rows == len(good)
    assert sorted(read(lake / "_runs")["stage"].to_pylist()).count("load") == 1


def test_lake_history_compact_vacuum(tmp_path: Path, kafka_bootstrap: str) -> None:
    config = make(tmp_path, kafka_bootstrap, mode="append")
    Extractor(config, kafka_bootstrap).run_once()
    Transformer(config, kafka_bootstrap, max_records=100).run(once=True)
    Loader(config, kafka_bootstrap, max_records=100).run(once=True)
    file = str(tmp_path / "dataplump.yaml")
    runner = CliRunner()

    shown = runner.invoke(app, ["lake", "history", "-c", file, "--table", "orders"])
    assert shown.exit_code == 0, shown.output
    assert "WRITE" in shown.output
    folded = "".join(shown.output.split())  # the app ids fold on a narrow terminal
    assert f"dataplump:{config.name}.orders.processed:0" in folded

    before = read(tmp_path / "lake" / "orders")
    compacted = runner.invoke(app, ["lake", "compact", "-c", file, "--table", "orders"])
    assert compacted.exit_code == 0, compacted.output
    after = read(tmp_path / "lake" / "orders")
    assert sorted(after["id"].to_pylist()) == sorted(before["id"].to_pylist())
    assert len(DeltaTable(str(tmp_path / "lake" / "orders")).file_uris()) == 1

    dry = runner.invoke(app, ["lake", "vacuum", "-c", file, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "lake/orders: would delete 0 file(s)" in dry.output  # all within 7 days
    unknown = runner.invoke(app, ["lake", "history", "-c", file, "--table", "ordres"])
    assert unknown.exit_code == 1
