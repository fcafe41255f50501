"""Extraction end to end on real SQLite and Kafka: active, DLQ, alerts, watermark resume."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message

from dataplump.bus.kafka import consumer
from dataplump.config import load_config
from dataplump.notify.events import decode
from dataplump.pipeline.extract import Extractor

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

CONTRACT = """
      version: "7"
      columns:
        id: {type: int64, not_null: true}
        amount: {type: "decimal(10,2)", min: 0}
        status: {type: string, accepted_values: [new, paid]}
        updated_at: {type: timestamp, not_null: true}
"""


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    reader = consumer(
        bootstrap, f"check-{uuid.uuid4().hex}", extra={"enable.partition.eof": "true"}
    )
    reader.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + 30
    eof = False
    while not eof and time.monotonic() < deadline:
        for msg in reader.consume(1000, 1.0):
            err = msg.error()
            if err is None:
                got.append(msg)
            elif err.code() == KafkaError._PARTITION_EOF:
                eof = True
    reader.close()
    return got


def key_id(message: Message) -> int:
    key = message.key()
    assert key is not None
    return int(json.loads(key)["id"])


def value_of(message: Message) -> bytes:
    value = message.value()
    assert value is not None
    return value


def make_pipeline(tmp_path: Path, bootstrap: str, mode: str) -> Path:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), status TEXT,"
            " updated_at TIMESTAMP NOT NULL)"
        )
        rows = [
            (
                i,
                f"{i}.50" if i % 10 else "-1.00",
                "new" if i % 7 else "lost",
                f"2024-01-01 00:00:{i % 60:02d}",
            )
            for i in range(1, 101)
        ]
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?)", rows)
    cursor = "cursor: updated_at" if mode == "incremental" else ""
    name = f"t{uuid.uuid4().hex[:8]}"
    file = tmp_path / "dataplump.yaml"
    file.write_text(
        f"pipeline: {{name: {name}}}\n"
        f"source: {{url: 'sqlite:///{db}'}}\n"
        f"kafka: {{bootstrap_servers: '{bootstrap}'}}\n"
        "tables:\n  orders:\n    primary_key: id\n"
        f"    mode: {mode}\n    {cursor}\n    batch_size: 30\n    contract:{CONTRACT}"
    )
    return file


def test_full_extraction_splits_valid_and_invalid_with_reasons(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config = load_config(make_pipeline(tmp_path, kafka_bootstrap, "full"))
    [counts] = Extractor(config, kafka_bootstrap).run_once()
    # ids divisible by 10 break min(amount); ids divisible by 7 break accepted_values
    bad = {i for i in range(1, 101) if i % 10 == 0 or i % 7 == 0}
    assert (counts.read, counts.invalid, counts.valid) == (100, len(bad), 100 - len(bad))
    assert counts.batches == 4

    active = read_topic(kafka_bootstrap, f"{config.name}.orders.active")
    dlq = read_topic(kafka_bootstrap, f"{config.name}.orders.dlq")
    assert sorted(key_id(m) for m in active) == sorted(set(range(1, 101)) - bad)
    assert sorted(key_id(m) for m in dlq) == sorted(bad)
    seventy = next(m for m in dlq if key_id(m) == 70)
    headers = dict(seventy.headers() or [])
    assert headers["dp.error.stage"] == b"extract"
    assert headers["dp.error.contract"] == b"7"
    reasons = json.loads(headers["dp.error.reasons"] or b"[]")
    assert {(r["rule"], r["column"]) for r in reasons} == {
        ("min", "amount"),
        ("accepted_values", "status"),
    }
    assert json.loads(value_of(seventy))["amount"] == "-1.00"  # the original row, lossless

    alerts = [decode(value_of(m)) for m in read_topic(kafka_bootstrap, f"{config.name}.alerts")]
    assert sum(a.count for a in alerts) == len(bad)  # one event per batch, not per row
    assert len(alerts) == 4

    # A second full run takes a new snapshot: every row again, exactly once more.
    [again] = Extractor(config, kafka_bootstrap).run_once()
    assert again.read == 100
    assert len(read_topic(kafka_bootstrap, f"{config.name}.orders.active")) == 2 * len(active)


def test_incremental_resumes_after_the_watermark(tmp_path: Path, kafka_bootstrap: str) -> None:
    file = make_pipeline(tmp_path, kafka_bootstrap, "incremental")
    config = load_config(file)
    [first] = Extractor(config, kafka_bootstrap).run_once()
    assert first.read == 100
    [nothing] = Extractor(config, kafka_bootstrap).run_once()
    assert nothing.read == 0

    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("INSERT INTO orders VALUES (101, 1.00, 'new', '2024-01-02 00:00:00')")
        conn.execute("UPDATE orders SET updated_at = '2024-01-03 00:00:00' WHERE id = 5")
    [delta] = Extractor(config, kafka_bootstrap).run_once()
    assert delta.read == 2
    active = read_topic(kafka_bootstrap, f"{config.name}.orders.active")
    ids = [key_id(m) for m in active]
    assert ids.count(5) == 2  # the update was re-extracted
    assert ids.count(101) == 1
