"""Benchmark: the two framings issue 9 allows on DataPlump's own topics, on the same rows.

    .venv/bin/python -m bench.framing [--rows 1000000] [--chunk 10000]

Issue 9 allows an opt-in batch framing (many rows per Kafka record) if one record per row
cannot reach its targets, and asks that both framings be measured. This measures the
framing alone, without a contract, a SQL step or a sink: what every stage pays to put rows
on a topic and take them off again. The rows are TPC-H ``lineitem`` (``tpchgen-cli``,
loaded into PostgreSQL as the harness does), read once through the pipeline's own
PostgreSQL source into Arrow batches, then, in this one process, on one broker, in turn:

row       the pipeline's framing today: ``encode_keys`` + ``encode_rows`` (one JSON object
          per row) and ``Producer.produce_many`` with extract's five headers (``dp.schema``,
          source, time, run, ``dp.pk``), one Kafka transaction per chunk of rows; then a
          ``read_committed`` consumer takes them off in polls of ``--chunk`` records, reads
          each record's headers (as ``Transformer._decode`` does) and ``decode_rows``
          the values back into an Arrow table of the schema
arrow     one Kafka record per chunk of ``--chunk`` rows: the chunk as an Arrow IPC stream
          (uncompressed, then ``lz4`` and ``zstd`` buffer compression), with the same
          headers once per record; one transaction per chunk; the consumer reads each
          record with ``pyarrow.ipc.open_stream``

Each candidate's rows are counted and compared with the source, row for row, after the
decode: a framing that loses or changes a value fails the run. It prints rows/s for
produce (until committed) and consume+decode (to the last row), the bytes per row on the
topic, and the ratio to the row framing.

Not measured here: what the framing changes downstream. An Arrow record would carry its
rows' lineage (the key and offset of each row) in its own columns, invalid rows would still
go one per record to the dead-letter topic, and a row's offset would no longer name it
alone; those costs belong to the design, see docs/benchmarks.md "Framing".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from dataplump.bus.frames import (
    ARROW_FRAMING,
    HEADER_FRAMING,
    decode_frame,
    encode_frames,
)
from dataplump.bus.kafka import (
    Producer,
    consume_batch,
    consumer,
    create_topics,
    max_record_bytes,
)
from dataplump.bus.records import decode_rows, encode_keys, encode_rows
from dataplump.bus.schemas import HEADER_SCHEMA, schema_id

ROOT = Path(__file__).resolve().parent.parent
Headers = list[tuple[str, bytes]]
PARTITIONS = 2


@dataclass
class Measured:
    framing: str
    rows: int
    produce_seconds: float
    consume_seconds: float
    topic_bytes: int


def read_lineitem(url: str) -> pa.Table:
    """``lineitem`` through the pipeline's own PostgreSQL source (its types, its batches)."""
    from dataplump.config.models import SourceConfig, TableConfig
    from dataplump.sources import open_source

    source = open_source(
        SourceConfig(url=url),
        "lineitem",
        TableConfig(primary_key=["l_orderkey", "l_linenumber"], batch_size=50_000),
    )
    try:
        return pa.Table.from_batches(list(source.read()))
    finally:
        source.close()


def chunks(table: pa.Table, size: int) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)


def base_headers(schema: pa.Schema) -> Headers:
    """The headers extract puts on every active record but ``dp.pk``."""
    return [
        (HEADER_SCHEMA, schema_id(schema).encode()),
        ("dp.source", b"postgresql://bench/lineitem"),
        ("dp.extracted_at", dt.datetime.now(dt.UTC).isoformat().encode()),
        ("dp.run", uuid.uuid4().hex.encode()),
    ]


def produce(
    bootstrap: str,
    topic: str,
    table: pa.Table,
    size: int,
    records: Callable[[pa.Table, Headers], Iterator[tuple[bytes, bytes, Headers]]],
) -> tuple[float, int]:
    """Produce ``table`` chunk by chunk, one transaction each; seconds and value bytes."""
    producer = Producer(bootstrap, transactional_id=f"bench-framing-{uuid.uuid4().hex[:8]}")
    base = base_headers(table.schema)
    sent = 0
    started = time.perf_counter()
    for chunk in chunks(table, size):
        produced = list(records(chunk, base))
        sent += sum(len(value) for _, value, _ in produced)
        with producer.transaction():
            producer.produce_many(topic, produced)
    return time.perf_counter() - started, sent


def row_records(chunk: pa.Table, base: Headers) -> Iterator[tuple[bytes, bytes, Headers]]:
    keys = encode_keys(chunk, ["l_orderkey", "l_linenumber"])
    values = encode_rows(chunk)
    for key, value in zip(keys, values, strict=True):
        yield key, value, [*base, ("dp.pk", key)]


def arrow_records(compression: str | None) -> Callable[..., Iterator[tuple[bytes, bytes, Headers]]]:
    """Frames (:mod:`dataplump.bus.frames`) of as many rows as fit in a Kafka record."""
    limit = max_record_bytes({})

    def records(chunk: pa.Table, base: Headers) -> Iterator[tuple[bytes, bytes, Headers]]:
        frames, too_large = encode_frames(chunk, limit, compression)
        if too_large:
            raise RuntimeError(f"{len(too_large)} lineitem row(s) too large for a record")
        for frame in frames:
            yield str(frame.rows).encode(), frame.value, [*base, (HEADER_FRAMING, ARROW_FRAMING)]

    return records


def consume(
    bootstrap: str, topic: str, rows: int, poll: int, decode: Callable[[list], pa.Table]
) -> tuple[float, pa.Table]:
    """Read ``topic`` from its start until ``rows`` rows are decoded; seconds and rows."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    # A partition's fetch is capped at 1 MB by default: one Arrow record per round trip.
    fetch = {"max.partition.fetch.bytes": str(16 << 20)}
    client = consumer(bootstrap, f"bench-framing-{uuid.uuid4().hex[:8]}", extra=fetch)
    # assigned, not subscribed: no group join in the time
    client.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    tables: list[pa.Table] = []
    got = 0
    started = time.perf_counter()
    deadline = started + 600
    try:
        while got < rows:
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{topic}: {got:,} of {rows:,} rows after 600 s")
            messages = consume_batch(client, poll, 1.0)
            if messages:
                table = decode(messages)
                got += table.num_rows
                tables.append(table)
        return time.perf_counter() - started, pa.concat_tables(tables)
    finally:
        client.close()


def decode_row_messages(schema: pa.Schema) -> Callable[[list], pa.Table]:
    def decode(messages: list) -> pa.Table:
        values = []
        for message in messages:  # what Transformer._decode reads of every record
            sid = None
            for key, value in message.headers() or ():
                if key == HEADER_SCHEMA:
                    sid = value
            if sid is None:
                raise RuntimeError("a record without dp.schema")
            values.append(message.value())
        return decode_rows(values, schema)

    return decode


def decode_arrow_messages(schema: pa.Schema) -> Callable[[list], pa.Table]:
    def decode(messages: list) -> pa.Table:
        return pa.concat_tables(decode_frame(m.value(), schema) for m in messages)

    return decode


def same_rows(expected: pa.Table, got: pa.Table, framing: str) -> None:
    """Fail unless ``got`` holds exactly ``expected``'s rows (in any order)."""
    keys = [("l_orderkey", "ascending"), ("l_linenumber", "ascending")]
    if got.num_rows != expected.num_rows:
        raise RuntimeError(f"{framing}: {got.num_rows:,} rows back of {expected.num_rows:,}")
    if not got.cast(expected.schema).sort_by(keys).equals(expected.sort_by(keys)):
        raise RuntimeError(f"{framing}: the rows read back differ from the rows sent")


def measure(bootstrap: str, table: pa.Table, chunk: int, repeat: int) -> list[Measured]:
    candidates: list[tuple[str, Callable[..., Iterator], int, Callable[[list], pa.Table]]] = [
        ("row", row_records, chunk, decode_row_messages(table.schema)),
        ("arrow", arrow_records(None), 1, decode_arrow_messages(table.schema)),
        ("arrow-lz4", arrow_records("lz4"), 1, decode_arrow_messages(table.schema)),
        ("arrow-zstd", arrow_records("zstd"), 1, decode_arrow_messages(table.schema)),
    ]
    results = []
    for framing, records, poll, decode in [c for _ in range(repeat) for c in candidates]:
        topic = f"bench-framing-{framing}-{uuid.uuid4().hex[:6]}"
        create_topics(bootstrap, [topic], partitions=PARTITIONS)
        produce_seconds, sent = produce(bootstrap, topic, table, chunk, records)
        consume_seconds, back = consume(bootstrap, topic, table.num_rows, poll, decode)
        same_rows(table, back, framing)
        results.append(Measured(framing, table.num_rows, produce_seconds, consume_seconds, sent))
        print(
            f"  {framing}: produce {produce_seconds:.2f} s, consume+decode"
            f" {consume_seconds:.2f} s, {sent / table.num_rows:.0f} B/row",
            flush=True,
        )
    return results


def text_table(results: list[Measured]) -> str:
    """One line per candidate and round; the ratio is to the row framing of that round."""
    lines = [
        f"{'round':>5} {'framing':<11} {'rows':>10} {'produce r/s':>12} {'consume r/s':>12}"
        f" {'both r/s':>10} {'B/row':>6} {'vs row':>7}"
    ]
    round_, base_both = 0, 0.0
    for r in results:
        both = r.rows / (r.produce_seconds + r.consume_seconds)
        if r.framing == "row":
            round_, base_both = round_ + 1, both
        lines.append(
            f"{round_:>5} {r.framing:<11} {r.rows:>10,} {r.rows / r.produce_seconds:>12,.0f}"
            f" {r.rows / r.consume_seconds:>12,.0f} {both:>10,.0f}"
            f" {r.topic_bytes / r.rows:>6.0f} {both / base_both:>6.1f}x"
        )
    return "\n".join(lines)


def main() -> None:
    from bench.peers import env
    from bench.tpch import load, scale_for
    from dataplump.services.kafka import KafkaManager, free_port
    from dataplump.testing.databases import PostgresServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="lineitem rows")
    parser.add_argument(
        "--chunk", type=int, default=10_000, help="rows per transaction (and per Arrow record)"
    )
    parser.add_argument(
        "--repeat", type=int, default=2, help="rounds of all candidates (the first warms up)"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    server = PostgresServer.from_env()
    server.ensure_running()
    url = server.create_database()
    try:
        env.ensure()  # tpchgen-cli lives in the bench env
        loaded = load(url, env.tpchgen(), scale_for(args.rows), args.rows)
        started = time.perf_counter()
        table = read_lineitem(url)
        print(
            f"{loaded:,} lineitem rows read in {time.perf_counter() - started:.1f} s"
            f" (not counted); load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        with tempfile.TemporaryDirectory(prefix="dp-framing-") as tmp:
            kafka = KafkaManager(Path(tmp) / "kafka", port=free_port())
            kafka.install()
            try:
                results = measure(kafka.up().bootstrap, table, args.chunk, args.repeat)
            finally:
                kafka.down()
    finally:
        server.drop_database(url)
    print(text_table(results))
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"framing-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    meta = {
        "rows": table.num_rows,
        "chunk": args.chunk,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
    }
    out.write_text(json.dumps({"meta": meta, "results": [r.__dict__ for r in results]}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
