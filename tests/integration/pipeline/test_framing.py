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
from typing import Any

import orjson
import pyarrow as pa
import pytest

from dataplump.bus.frames import HEADER_ROWS, decode_frame, partitions_of
from dataplump.bus.kafka import Headers, Producer, create_topics
from dataplump.bus.records import HEADER_PK, encode_keys, encode_rows
from dataplump.bus.schemas import HEADER_SCHEMA, SchemaRegistry
from dataplump.config import load_config
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.ledger import read_ledger
from dataplump.pipeline.load import Loader, LoadError
from dataplump.pipeline.transform import Transformer
from tests.support.loading import delta_rows, warehouse_ids
from tests.support.topics import headers_of, read_committed
from tests.support.topics import ids as row_ids
from tests.support.transformation import Expected, check_exactly_once, write_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROWS = 100
BIG = 7
"""The row whose note (40 kB of hex) fits no frame under the 20 kB record limit."""


def make_pipeline(tmp_path: Path, bootstrap: str, *, doubled: int | None = None) -> Path:
    """100 orders, every tenth invalid, ``BIG`` too large for a record even alone; with
    ``doubled``, that order's note is 12 kB (it fits) and a step appends its reverse
    (then it does not: random hex hardly compresses, a repeat would)."""
    db = tmp_path / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), note TEXT)"
        )
        notes = {BIG: os.urandom(20_000).hex(), doubled: os.urandom(6_000).hex()}
        rows = [
            (i, f"{i}.50" if i % 10 else "-1.00", notes.get(i, "ok")) for i in range(1, ROWS + 1)
        ]
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)
    config: dict[str, Any] = {
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
    if doubled is not None:
        note = f"CASE WHEN id = {doubled} THEN note || reverse(note) ELSE note END AS note"
        step = {"sql": f"SELECT id, amount, {note} FROM batch"}  # noqa: S608
        config["transform"] = {"steps": {"orders": [step]}}
    file = tmp_path / "dataplump.yaml"
    file.write_text(json.dumps(config))
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


def test_frames_on_processed_load_once_with_their_lineage_and_count_as_rows(
    tmp_path: Path, kafka_bootstrap: str, postgres_url: str
) -> None:
    """The transformation writes frames on ``.processed`` too (one or more per source
    batch and partition); the ledger counts their rows in flight, and the loader puts
    every row once in the lake and the warehouse with the lineage a row record gives."""
    path, _ = write_pipeline(
        tmp_path, kafka_bootstrap, rows=2_000, batch_size=300, partitions=2, framing="arrow"
    )
    file = json.loads(path.read_text())
    file["sinks"] = {
        "lake": {"kind": "delta", "path": str(tmp_path / "lake"), "mode": "merge"},
        "warehouse": {"kind": "postgres", "url": postgres_url, "mode": "merge"},
    }
    file["tables"]["orders"]["sinks"] = ["lake", "warehouse"]
    path.write_text(json.dumps(file))
    config = load_config(path)
    expected = Expected.of(2_000)
    Extractor(config, kafka_bootstrap).run_once()
    Transformer(config, kafka_bootstrap, max_records=500).run(once=True)
    check_exactly_once(kafka_bootstrap, config, expected, "frames on .processed")

    processed = read_committed(kafka_bootstrap, topics.processed(config.name, "orders"))
    # 7 source batches over 2 partitions, polls of about 500 rows: a few dozen frames
    assert all(headers_of(m)["dp.framing"] == b"arrow" for m in processed)
    assert 7 <= len(processed) <= 60
    for frame in processed:
        headers = headers_of(frame)
        assert {"dp.source", "dp.extracted_at", "dp.run", HEADER_SCHEMA} <= set(headers)
        keys = encode_keys(decode_frame(frame.value()), ["id"])
        assert set(partitions_of(keys, 2).tolist()) == {frame.partition()}
    assert read_ledger(config, kafka_bootstrap)["orders"].in_flight["load"] == len(
        expected.processed
    )

    counts = {c.table: c for c in Loader(config, kafka_bootstrap, max_records=400).run(once=True)}
    rows = len(expected.processed)
    assert counts["orders"].consumed == rows
    assert counts["orders"].loaded == {"lake": rows, "warehouse": rows}
    assert counts["orders"].batches > 3  # polls of about 400 rows, not every frame at once
    lineage = ["id", "_dp_pk", "_dp_source", "_dp_run", "_dp_extracted_at", "_dp_offset"]
    lake = delta_rows(tmp_path / "lake" / "orders", lineage)
    assert sorted(lake["id"]) == sorted(expected.processed)
    assert [json.loads(pk) for pk in lake["_dp_pk"]] == [{"id": i} for i in lake["id"]]
    for column in ("_dp_source", "_dp_run", "_dp_extracted_at"):
        assert None not in lake[column], column
    assert len(set(lake["_dp_offset"])) < rows / 10  # a frame's rows share its offset
    assert sorted(warehouse_ids(postgres_url)) == sorted(expected.processed)
    ledger = read_ledger(config, kafka_bootstrap)["orders"]
    assert (ledger.in_flight.get("load", 0), ledger.loaded) == (0, rows)

    # Loaded again from the start (fresh group offsets): the sinks hold every frame.
    again = {c.table: c for c in Loader(config, kafka_bootstrap).run(once=True)}
    assert again["orders"].consumed == 0
    assert sorted(delta_rows(tmp_path / "lake" / "orders", ["id"])["id"]) == sorted(
        expected.processed
    )


def test_a_transformed_row_too_large_for_a_frame_alone_fails_and_the_rest_go_on(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    doubled = 17
    config = load_config(make_pipeline(tmp_path, kafka_bootstrap, doubled=doubled))
    Extractor(config, kafka_bootstrap).run_once()
    [counts] = Transformer(config, kafka_bootstrap).run(once=True)
    valid = set(range(1, ROWS + 1)) - {i for i in range(1, ROWS + 1) if i % 10 == 0} - {BIG}
    assert (counts.consumed, counts.processed, counts.failed) == (89, 88, 1)
    processed = read_committed(kafka_bootstrap, topics.processed(config.name, "orders"))
    assert set(row_ids(processed)) == valid - {doubled}
    [failed] = read_committed(kafka_bootstrap, topics.failed(config.name))
    headers = headers_of(failed)
    # too large for the failed store too with its input: shrunk, which says so again
    assert set(headers["dp.error.rules"].split(b",")) == {b"record_too_large"}
    assert b"over message.max.bytes (20000 bytes here)" in headers["dp.error.message"]
    assert json.loads(headers[HEADER_PK]) == {"id": doubled}


def test_a_frame_that_does_not_decode_fails_alone_then_stops_the_loader_in_one_line(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    """On ``.active`` a broken frame is one failed record (the others go on), counted as
    the rows its ``dp.rows`` names; on ``.processed`` it stops the loader with one line
    naming where it is, before anything of its poll is written."""
    path, _ = write_pipeline(tmp_path, kafka_bootstrap, rows=100, batch_size=50, framing="arrow")
    config = load_config(path)
    Extractor(config, kafka_bootstrap).run_once()
    frames = read_committed(kafka_bootstrap, topics.active(config.name, "orders"))
    broken: Headers = [
        (k, b"7" if k == HEADER_ROWS else v) for k, v in headers_of(frames[0]).items()
    ]
    producer = Producer(kafka_bootstrap, transactional_id=f"test-{uuid.uuid4().hex}")
    with producer.transaction():
        producer.produce(topics.active(config.name, "orders"), b"\x00not arrow", headers=broken)
    [counts] = Transformer(config, kafka_bootstrap).run(once=True)
    expected = Expected.of(100)
    assert (counts.consumed, counts.failed) == (107, len(expected.failed) + 1)
    failed = read_committed(kafka_bootstrap, topics.failed(config.name))
    rules = Counter(headers_of(m)["dp.error.rules"] for m in failed)
    assert rules[b"malformed_record"] == 1
    processed = topics.processed(config.name, "orders")
    written = read_committed(kafka_bootstrap, processed)
    assert set(row_ids(written)) == expected.processed
    frame = written[0]
    with producer.transaction():
        producer.produce(processed, b"\x00not arrow", headers=[*headers_of(frame).items()])
    file = json.loads(path.read_text())
    file["sinks"] = {"lake": {"kind": "delta", "path": str(tmp_path / "lake")}}
    path.write_text(json.dumps(file))
    with pytest.raises(LoadError) as raised:
        Loader(load_config(path), kafka_bootstrap, tables=["orders"], ops=False).run(once=True)
    message = str(raised.value)
    assert message.startswith(f"{processed} partition 0 offset ")
    assert "the frame is not a readable Arrow IPC stream" in message
    assert "\n" not in message
