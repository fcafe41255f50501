"""The transformation stage end to end on real SQLite and Kafka: extract, then transform.

Dirty orders are extracted to ``.active``; the transformation cleans them with built-in
steps, enriches them with a SQL join on a reference table read from the source
database, runs a pandas step, checks an output contract, and writes ``.processed`` and
the failed store, with alerts. Every active record ends up exactly once.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Message

from dataplump.bus.kafka import Producer
from dataplump.bus.schemas import HEADER_SCHEMA, SchemaRegistry
from dataplump.config import load_config
from dataplump.notify.events import AlertEvent, decode
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from tests.support.topics import read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROWS = 1_000
"""Orders; every 50th has a negative amount (breaks the output contract), every 97th an
unparseable date (fails the parse step), every 10th a null customer (dropped on purpose)."""

STEP_MODULE = """
import pandas as pd

def add_size(df: pd.DataFrame) -> pd.DataFrame:
    df["size"] = (df["amount"].astype("float64") >= 500).map({True: "large", False: "small"})
    return df

def explode(df: pd.DataFrame) -> pd.DataFrame:
    raise RuntimeError("the pricing service is down")
"""

PIPELINE = """
pipeline: {{name: {name}}}
source: {{url: "sqlite:///{db}"}}
kafka: {{bootstrap_servers: "{bootstrap}"}}
tables:
  orders:
    primary_key: id
    batch_size: 250
    output_contract:
      version: "2"
      owner: "@orders-team"
      columns:
        id: {{type: int64, not_null: true, unique: true}}
        amount: {{type: "decimal(10,2)", min: 0}}
        status: {{type: string, accepted_values: [new, paid, shipped]}}
        country: {{type: string, not_null: true}}
        size: {{type: string}}
      expectations:
        - row_count_not_zero
transform:
  references:
    customers: {{table: customers, key: name}}
  steps:
    orders:
      - trim: [status, customer]
      - lowercase: [status]
      - drop_null: [customer]
      - parse_dates: {{ordered_on: "%d/%m/%Y"}}
      - sql: |
          SELECT o.id, o.amount, o.status, o.ordered_on, c.country
          FROM batch o JOIN customers c ON c.name = o.customer
      - pandas: steps.py:{pandas_step}
"""


def status(i: int) -> str:
    return ["  NEW", "Paid  ", " shipped "][i % 3]


def customer(i: int) -> str | None:
    return None if i % 10 == 3 else f"  cust{i % 7} "


def amount(i: int) -> str:
    return f"-{i}.50" if i % 50 == 0 else f"{i}.25"


def ordered_on(i: int) -> str:
    return "31/02/2024" if i % 97 == 0 else f"{1 + i % 28:02d}/03/2024"


def make_source(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (name TEXT PRIMARY KEY, country TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?)", [(f"cust{k}", f"C{k}") for k in range(7)]
        )
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount NUMERIC(10,2),"
            " status TEXT, ordered_on TEXT)"
        )
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
            [(i, customer(i), amount(i), status(i), ordered_on(i)) for i in range(1, ROWS + 1)],
        )


def make_pipeline(folder: Path, bootstrap: str, pandas_step: str = "add_size") -> Path:
    make_source(folder / "shop.db")
    (folder / "steps.py").write_text(STEP_MODULE)
    path = folder / "dataplump.yaml"
    path.write_text(
        PIPELINE.format(
            name=f"t{uuid.uuid4().hex[:8]}",
            db=folder / "shop.db",
            bootstrap=bootstrap,
            pandas_step=pandas_step,
        )
    )
    return path


def ids(messages: list[Message]) -> Counter[int]:
    return Counter(int(json.loads(m.key() or b"{}")["id"]) for m in messages)


def alerts_of(bootstrap: str, pipeline: str) -> list[AlertEvent]:
    return [decode(m.value() or b"") for m in read_committed(bootstrap, topics.alerts(pipeline))]


def headers(message: Message) -> dict[str, bytes]:
    pairs: Any = message.headers() or []
    return {str(k): v for k, v in pairs if isinstance(v, bytes)}


def test_clean_enrich_validate_and_keep_every_failure(tmp_path: Path, kafka_bootstrap: str) -> None:
    config = load_config(make_pipeline(tmp_path, kafka_bootstrap))
    name = config.name
    Extractor(config, kafka_bootstrap).run_once()

    [counts] = Transformer(config, kafka_bootstrap, max_records=300).run(once=True)

    dropped = {i for i in range(1, ROWS + 1) if customer(i) is None}
    bad_date = {i for i in range(1, ROWS + 1) if i % 97 == 0} - dropped
    negative = {i for i in range(1, ROWS + 1) if i % 50 == 0} - dropped - bad_date
    good = set(range(1, ROWS + 1)) - dropped - bad_date - negative
    assert counts.consumed == ROWS
    assert counts.processed == len(good)
    assert counts.failed == len(bad_date) + len(negative)
    assert sum(counts.filtered.values()) == len(dropped)
    assert list(counts.filtered) == ["3:drop_null"]

    processed = read_committed(kafka_bootstrap, topics.processed(name, "orders"))
    assert ids(processed) == Counter(good)  # each exactly once
    first = next(m for m in processed if json.loads(m.key() or b"{}")["id"] == 1)
    row = orjson.loads(first.value() or b"")
    assert row == {
        "id": 1,
        "amount": "1.25",
        "status": "paid",
        "ordered_on": "2024-03-02",
        "country": "C1",
        "size": "small",
    }
    lineage = headers(first)
    assert lineage["dp.source"] == b"orders"
    assert lineage["dp.pk"] == b'{"id":1}'
    assert {"dp.extracted_at", "dp.run", "dp.transform.run", HEADER_SCHEMA} <= set(lineage)
    schema = SchemaRegistry(kafka_bootstrap, name).get(lineage[HEADER_SCHEMA].decode())
    assert str(schema.field("amount").type) == "decimal128(10, 2)"
    assert str(schema.field("ordered_on").type) == "date32[day]"

    failed = read_committed(kafka_bootstrap, topics.failed(name))
    assert ids(failed) == Counter(bad_date | negative)
    by_id = {json.loads(m.key() or b"{}")["id"]: m for m in failed}
    date_failure = orjson.loads(by_id[min(bad_date)].value() or b"")
    assert date_failure["step"] == "4:parse_dates"
    assert date_failure["reasons"][0]["column"] == "ordered_on"
    assert date_failure["reasons"][0]["value"] == "31/02/2024"
    assert date_failure["input"]["ordered_on"] == "31/02/2024"
    assert date_failure["output"] is None
    contract_failure = orjson.loads(by_id[min(negative)].value() or b"")
    assert contract_failure["step"] == "output_contract"
    assert [r["rule"] for r in contract_failure["reasons"]] == ["min"]
    assert contract_failure["input"]["amount"] == f"-{min(negative)}.50"
    assert contract_failure["output"]["country"] == f"C{min(negative) % 7}"
    failure_headers = headers(by_id[min(negative)])
    assert failure_headers["dp.error.stage"] == b"transform"
    assert failure_headers["dp.error.rules"] == b"min(amount)"
    assert failure_headers["dp.error.contract"] == b"2"
    assert failure_headers["dp.source"] == b"orders"

    failed_alerts = [a for a in alerts_of(kafka_bootstrap, name) if a.stage == "transform"]
    assert {a.kind for a in failed_alerts} == {"failed_records"}
    assert sum(a.count for a in failed_alerts) == counts.failed
    assert all(a.kept_in == topics.failed(name) for a in failed_alerts)

    # A second run finds nothing new: the offsets were committed with the output.
    [again] = Transformer(config, kafka_bootstrap).run(once=True)
    assert (again.consumed, again.processed, again.failed) == (0, 0, 0)
    assert len(read_committed(kafka_bootstrap, topics.processed(name, "orders"))) == len(good)


def test_a_step_failing_for_the_whole_batch_keeps_it_and_the_stage_goes_on(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config = load_config(make_pipeline(tmp_path, kafka_bootstrap, pandas_step="explode"))
    Extractor(config, kafka_bootstrap).run_once()

    [counts] = Transformer(config, kafka_bootstrap, max_records=400).run(once=True)

    assert counts.processed == 0
    assert counts.failed_batches >= 3
    assert (counts.failed, counts.filtered) == (ROWS, {})  # a failed batch is kept whole
    failed = read_committed(kafka_bootstrap, topics.failed(config.name))
    envelope = orjson.loads(failed[0].value() or b"")
    assert envelope["step"] == "6:pandas"
    assert envelope["error"]["step_kind"] == "pandas"
    assert "pricing service is down" in envelope["error"]["message"]
    assert envelope["error"]["traceback"]
    errors = alerts_of(kafka_bootstrap, config.name)
    stage_errors = [e for e in errors if e.kind == "stage_error" and e.stage == "transform"]
    assert len(stage_errors) == counts.failed_batches  # one alert per failed batch
    assert len({e.fingerprint for e in stage_errors}) == 1  # one incident


def test_malformed_active_records_go_to_the_failed_store(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config = load_config(make_pipeline(tmp_path, kafka_bootstrap))
    Extractor(config, kafka_bootstrap).run_once()
    active = topics.active(config.name, "orders")
    [first] = read_committed(kafka_bootstrap, active)[:1]
    sid = headers(first)[HEADER_SCHEMA]
    producer = Producer(kafka_bootstrap, transactional_id=f"intruder-{uuid.uuid4().hex}")
    with producer.transaction():
        producer.produce(active, b"not json", key=b'{"id":-1}', headers=[(HEADER_SCHEMA, sid)])
        producer.produce(active, b'{"id":"x"}', key=b'{"id":-2}', headers=[(HEADER_SCHEMA, sid)])
        producer.produce(active, b'{"id":-3}', key=b'{"id":-3}')
        producer.produce(
            active, b'{"id":-4}', key=b'{"id":-4}', headers=[(HEADER_SCHEMA, b"0123456789abcdef")]
        )

    stop = threading.Event()
    [counts] = Transformer(config, kafka_bootstrap).run(once=True, stop=stop)

    assert counts.consumed == ROWS + 4
    failed = read_committed(kafka_bootstrap, topics.failed(config.name))
    malformed = {
        json.loads(m.key() or b"{}")["id"]: orjson.loads(m.value() or b"")
        for m in failed
        if json.loads(m.key() or b"{}")["id"] < 0
    }
    assert sorted(malformed) == [-4, -3, -2, -1]
    assert all(e["step"] == "decode" for e in malformed.values())
    assert malformed[-1]["input_text"] == "not json"
    assert "dp.schema" in malformed[-3]["reasons"][0]["message"]
    assert "0123456789abcdef" in malformed[-4]["reasons"][0]["message"]
