"""The transform stage and a reference that is older than the rows (issue 6), on SQLite
and the real broker: a customer inserted after the stage loaded its references, then
orders and payments for it. The stage reloads the reference on the miss and redoes the
batch, so they pass; those for a customer that exists nowhere still fail, with the
same reasons as without the reload.

Two paths lead there: `orders` join the customers in a SQL step (a NULL country breaks
the output contract's `not_null`), `payments` have only a `relationships` rule."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import orjson
import pytest

from dataplump.config import load_config
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from tests.support.topics import read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

PIPELINE = """
pipeline: {{name: {name}}}
source: {{url: "sqlite:///{db}"}}
kafka: {{bootstrap_servers: "{bootstrap}"}}
tables:
  customers: {{primary_key: id}}
  orders:
    primary_key: id
    mode: incremental
    cursor: id
    output_contract:
      columns:
        id: int64
        customer_id: int64
        country: {{type: string, not_null: true}}
  payments:
    primary_key: id
    mode: incremental
    cursor: id
    output_contract:
      columns:
        id: int64
        customer_id: int64
      rules:
        - relationships: {{column: customer_id, to: accounts, field: id}}
transform:
  references:
    customers: {{table: customers}}
    accounts: {{table: customers}}
  steps:
    orders:
      - sql: |
          SELECT o.*, c.country FROM batch o LEFT JOIN customers c ON c.id = o.customer_id
"""


def insert(db: Path, table: str, rows: list[tuple[object, ...]]) -> None:
    with sqlite3.connect(db) as conn:
        marks = ", ".join("?" * len(rows[0]))
        conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)  # noqa: S608


def keys(bootstrap: str, topic: str, table: str) -> list[int]:
    found = []
    for message in read_committed(bootstrap, topic):
        if topic.endswith(".failed") and orjson.loads(message.value() or b"")["table"] != table:
            continue
        found.append(int(json.loads(message.key() or b"{}")["id"]))
    return sorted(found)


def test_rows_for_a_customer_newer_than_the_reference_pass(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, country TEXT)")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER)")
        conn.execute("CREATE TABLE payments (id INTEGER PRIMARY KEY, customer_id INTEGER)")
    insert(db, "customers", [(1, "NO"), (2, "SE")])
    insert(db, "orders", [(1, 1), (2, 2)])
    insert(db, "payments", [(1, 1)])
    path = tmp_path / "dataplump.yaml"
    name = f"r{uuid.uuid4().hex[:8]}"
    path.write_text(PIPELINE.format(name=name, db=db, bootstrap=kafka_bootstrap))
    config = load_config(path)
    tables = ["orders", "payments"]
    extractor = Extractor(config, kafka_bootstrap)
    extractor.run_once(tables)
    stage = Transformer(config, kafka_bootstrap, tables=tables)
    try:
        first = {c.table: (c.processed, c.failed) for c in stage.run(once=True)}
        assert first == {"orders": (2, 0), "payments": (1, 0)}  # references loaded

        insert(db, "customers", [(3, "DK")])  # a new customer, then its rows
        insert(db, "orders", [(3, 3), (4, 99)])  # and an order for nobody
        insert(db, "payments", [(2, 3), (3, 99)])
        extractor.run_once(tables)
        second = {c.table: (c.processed, c.failed) for c in stage.run(once=True)}
    finally:
        stage.close()

    assert second == {"orders": (3, 1), "payments": (2, 1)}  # counts of the whole run
    assert stage.references.reloads_on_miss == {"customers": 1, "accounts": 1}
    assert keys(kafka_bootstrap, topics.processed(name, "orders"), "orders") == [1, 2, 3]
    assert keys(kafka_bootstrap, topics.processed(name, "payments"), "payments") == [1, 2]
    failed = {
        orjson.loads(m.value() or b"")["table"]: orjson.loads(m.value() or b"")
        for m in read_committed(kafka_bootstrap, topics.failed(name))
    }
    assert failed["orders"]["input"] == {"id": 4, "customer_id": 99}
    assert failed["orders"]["reasons"] == [
        {"rule": "not_null", "column": "country", "value": None, "message": "is null",
         "contract": failed["orders"]["reasons"][0]["contract"]},
    ]  # fmt: skip
    assert failed["payments"]["input"] == {"id": 3, "customer_id": 99}
    assert [(r["rule"], r["value"], r["message"]) for r in failed["payments"]["reasons"]] == [
        ("relationships", "99", "is not in reference table accounts.id")
    ]
