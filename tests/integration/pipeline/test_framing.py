"""``kafka.topic.framing: arrow`` end to end on real SQLite and Kafka.

The extraction writes each batch's valid rows as Arrow frames on ``.active`` (many rows
per record, on the partition each row's key picks), its invalid rows one per dead-letter
record as before; the transformation reads frames and single-row records alike, and
every row still ends exactly once on ``.processed`` or the failed store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pyarrow as pa
import pytest

from dataplump.bus.frames import HEADER_ROWS, decode_frame, partitions_of
from dataplump.bus.kafka import Producer, create_topics
from dataplump.bus.records import HEADER_PK, encode_keys, encode_rows
from dataplump.bus.schemas import HEADER_SCHEMA, SchemaRegistry
from dataplump.config import load_config
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from tests.support.topics import headers_of, read_committed
from tests.support.transformation import Expected, check_exactly_once, write_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROWS = 100
BIG = 7
"""The row whose note (40 kB of hex) fits no frame under the 20 kB record limit."""


def make_pipeline(tmp_path: Path, bootstrap: str) -> Path:
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), note TEXT)"
        )
        rows = [
            (i, f"{i}.50" if i % 10 else "-1.00", os.urandom(20_000).hex() if i == BIG else "ok")
            for i in range(1, ROWS + 1)
        ]
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)
    file = tmp_path / "dataplump.yaml"
    file.write_text(
        json.dumps(
            {
                "pipeline": {"name": f"fr{uuid.uuid4().hex[:8]}"},
                "source": {"url": f"sqlite:///{db}"},
                "kafka": {
                    "bootstrap_servers": bootstrap,
                    "topic": {"partitions": 3, "framing": "arrow"},
                    "extra": {"message.max.bytes": "20000"},
                },
                "tables": {
                    "orders": {
                        "primary_key": "id",
                        "batch_size": 30,
                        "contract": {"columns": {"amount": {"type": "decimal(10,2)", "min": 0}}},
                    }
                },
            }
        )
    )
    return file


def test_valid_rows_travel_as_frames_on_their_keys_partitions_invalid_ones_alone(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config = load_config(make_pipeline(tmp_path, kafka_bootstrap))
    [counts] = Extractor(config, kafka_bootstrap).run_once()
    negative = {i for i in range(1, ROWS + 1) if i % 10 == 0}
    invalid = negative | {BIG}
    assert (counts.read, counts.valid, counts.invalid) == (ROWS, ROWS - 11, 11)

    frames = read_committed(kafka_bootstrap, topics.active(config.name, "orders"))
    # 4 batches, each over at most 3 partitions; the part holding the big row is halved
    # around it (about log2(10) frames more), the rest of the 89 rows in the others
    assert 4 <= len(frames) <= 20
    seen: Counter[int] = Counter()
    for frame in frames:
        headers = headers_of(frame)
        assert frame.key() is None
        assert headers["dp.framing"] == b"arrow"
        assert HEADER_PK not in headers  # each row's key is in its columns
        rows = decode_frame(frame.value())
        assert int(headers[HEADER_ROWS]) == rows.num_rows
        ids = rows.column("id").to_pylist()
        assert ids == sorted(ids)  # in source order within the frame
        # every row on the partition librdkafka would have sent its own record to
        keys = encode_keys(rows, ["id"])
        assert set(partitions_of(keys, 3).tolist()) == {frame.partition()}
        seen.update(ids)
    assert set(seen) == set(range(1, ROWS + 1)) - invalid
    assert max(seen.values()) == 1

    dead = read_committed(kafka_bootstrap, topics.dlq(config.name, "orders"))
    rules = {json.loads(m.key() or b"")["id"]: headers_of(m)["dp.error.rules"] for m in dead}
    assert rules == {**dict.fromkeys(negative, b"min(amount)"), BIG: b"record_too_large"}
    ten = next(m for m in dead if json.loads(m.key() or b"")["id"] == 10)
    assert json.loads(ten.value() or b"") == {"id": 10, "amount": "-1.00", "note": "ok"}


def test_librdkafkas_partitioner_puts_keys_where_frames_put_their_rows(
    kafka_bootstrap: str,
) -> None:
    """A ``replay`` writes single-row records among frames: the same key must land on the
    same partition, or its versions would be read out of order."""
    topic = f"fr-keys-{uuid.uuid4().hex[:8]}"
    create_topics(kafka_bootstrap, [topic], partitions=5)
    keys = [orjson.dumps({"id": i}) for i in range(200)]
    producer = Producer(kafka_bootstrap)
    for key in keys:
        producer.produce(topic, b"{}", key=key)
    producer.flush()
    where = {m.key(): m.partition() for m in read_committed(kafka_bootstrap, topic)}
    assert [where[k] for k in keys] == partitions_of(keys, 5).tolist()


def test_the_transformation_reads_frames_and_single_rows_exactly_once(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    path, _ = write_pipeline(
        tmp_path, kafka_bootstrap, rows=2_000, batch_size=300, partitions=2, framing="arrow"
    )
    config = load_config(path)
    Extractor(config, kafka_bootstrap).run_once()
    active = topics.active(config.name, "orders")
    frames = read_committed(kafka_bootstrap, active)
    assert all(headers_of(m)["dp.framing"] == b"arrow" for m in frames)

    # One more order as a single JSON row (what `replay` writes), after the frames: a
    # copy of a row bound for .processed, under a new id.
    expected = Expected.of(2_000)
    first = frames[0]
    sid = headers_of(first)[HEADER_SCHEMA].decode()
    rows = decode_frame(first.value(), SchemaRegistry(kafka_bootstrap, config.name).get(sid))
    ids = rows.column("id").to_pylist()
    row = rows.slice(next(i for i, v in enumerate(ids) if v in expected.processed), 1)
    column = row.schema.get_field_index("id")
    extra = row.set_column(column, "id", pa.array([2_001], row.schema.field("id").type))
    [key], [value] = encode_keys(extra, ["id"]), encode_rows(extra)
    producer = Producer(kafka_bootstrap, transactional_id=f"test-{uuid.uuid4().hex}")
    with producer.transaction():
        producer.produce(active, value, key=key, headers=[(HEADER_SCHEMA, sid.encode())])

    [counts] = Transformer(config, kafka_bootstrap, max_records=500).run(once=True)
    expected = Expected(expected.processed | {2_001}, expected.failed, expected.dropped)
    check_exactly_once(kafka_bootstrap, config, expected, "arrow framing")
    assert counts.consumed == 2_001
    assert counts.processed == len(expected.processed)
    assert counts.failed == len(expected.failed)
    assert counts.batches > 3  # polls of about 500 rows, not every frame at once

    # A failed row keeps its own input, as JSON, and its lineage (dp.pk included).
    failed = read_committed(kafka_bootstrap, topics.failed(config.name))
    envelope = json.loads(failed[0].value() or b"")
    headers = headers_of(failed[0])
    assert json.loads(headers[HEADER_PK]) == {"id": envelope["input"]["id"]}
    assert envelope["input"]["id"] in expected.failed
    assert {"dp.source", "dp.extracted_at", "dp.run"} <= set(headers)
