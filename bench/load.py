"""Benchmark: 1,000,000 processed records from Kafka into Delta and PostgreSQL via the loader.

    .venv/bin/python bench/load.py [--rows N] [--only delta-append,delta-merge,...]
                                   [--bootstrap HOST:PORT]

Starts a managed Kafka broker (``dataplump.services.kafka``) on a free port with a
temporary data dir (or uses ``--bootstrap``), and fills ``<pipeline>.orders.processed``
exactly as the transformation writes it: ``encode_keys``/``encode_rows`` of
:mod:`dataplump.bus.records`, the schema published on ``<pipeline>.schemas`` in the same
transaction, the lineage headers plus ``dp.schema``, ``dp.transformed_at`` and
``dp.transform.run``, ``Producer.produce_many`` in transactions of 10,000 records (the
transformation's default poll). Rows have 10 columns (integers, text, two decimals, two
timestamps, a boolean, a double); key ``id = i % (rows / 2)``, so in merge mode the second
half of the topic updates the rows of the first half.

Each candidate runs **in its own subprocess** (its peak RSS is its own: psutil, sampled
every 2 ms, from before the loader starts to the end of its run):

  delta-append     ``Loader(...).run(once=True)`` as ``dataplump load --once --no-ops``
                   does, into a ``kind: delta, mode: append`` sink
  delta-merge      the same, ``mode: merge`` (upsert by ``id``)
  delta-write      peer: the same rows with their lineage columns, built in memory, in one
                   ``write_deltalake`` call (the library's own speed; the difference is the
                   loader's overhead: Kafka, decoding, per-poll commits)
  postgres-append  the loader into a ``kind: postgres, mode: append`` sink (fresh database
                   on the local test server, ``dataplump.testing.databases``)
  postgres-merge   the same, ``mode: merge``
  postgres-copy    peer: the same rows from memory, Arrow's CSV writer into one psycopg
                   ``COPY ... FROM STDIN (FORMAT csv)`` of a plain table, one transaction
  postgres-adbc    peer: the same rows from memory in one ADBC ``adbc_ingest`` call (COPY
                   BINARY)

Each loader run checks the rows its sink holds afterwards (outside the timing).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.contract_check import peak_rss
from dataplump.bus.kafka import Headers, Producer, create_topics
from dataplump.bus.records import encode_keys, encode_rows, lineage_headers
from dataplump.bus.schemas import HEADER_SCHEMA, SchemaRegistry
from dataplump.pipeline import topics
from dataplump.pipeline.transform import HEADER_TRANSFORM_RUN, HEADER_TRANSFORMED_AT
from dataplump.sinks.base import LINEAGE_COLUMNS

LOADERS = ("delta-append", "delta-merge", "postgres-append", "postgres-merge")
PEERS = ("delta-write", "postgres-copy", "postgres-adbc")
CANDIDATES = (
    "delta-append",
    "delta-merge",
    "delta-write",
    "postgres-append",
    "postgres-merge",
    "postgres-copy",
    "postgres-adbc",
)
TABLE = "orders"
TRANSACTION = 10_000
"""Records per producer transaction (the transformation's default ``max_records``)."""
EXTRACTED_AT = "2024-01-03T00:00:00+00:00"
RUN = "bench-extract"

ROWS_SQL = """
SELECT (i % {half})::BIGINT AS id,
       (hash(i) % 10000)::BIGINT AS customer_id,
       ['new', 'paid', 'shipped', 'done'][1 + i % 4] AS status,
       ((i % 100000) / 100 + 1)::DECIMAL(12,2) AS amount,
       ((i % 1000) / 1000)::DECIMAL(5,3) AS tax_rate,
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i * 7) AS ordered_at,
       TIMESTAMPTZ '2024-01-02 00:00:00+00' + to_seconds(i * 5) AS updated_at,
       i % 3 = 0 AS gift,
       ((i % 997) * 1.5)::DOUBLE AS weight,
       'note ' || i AS note
FROM range({start}, {stop}) t(i)
ORDER BY i
"""


def generate(rows: int, start: int = 0, stop: int | None = None) -> pa.Table:
    """Rows ``start``..``stop`` of the ``rows`` processed rows (as the transform outputs them)."""
    stop = rows if stop is None else stop
    sql = ROWS_SQL.format(half=max(1, rows // 2), start=start, stop=stop)
    table = duckdb.sql(sql).to_arrow_table()
    schema = pa.schema(
        [
            pa.field(f.name, pa.timestamp("us", "UTC"))
            if pa.types.is_timestamp(f.type)
            else pa.field(f.name, pa.string() if pa.types.is_string(f.type) else f.type)
            for f in table.schema
        ]
    )
    return table.cast(schema)


def with_lineage(data: pa.Table, topic: str) -> pa.Table:
    """``data`` with the lineage columns the loader adds (for the peers)."""
    n = data.num_rows
    keys = pa.array(encode_keys(data, ["id"]), pa.binary()).cast(pa.string())
    columns = {
        "_dp_source": pa.repeat(TABLE, n),
        "_dp_pk": keys,
        "_dp_extracted_at": pa.repeat(pa.scalar(EXTRACTED_AT), n).cast(
            LINEAGE_COLUMNS["_dp_extracted_at"]
        ),
        "_dp_run": pa.repeat(RUN, n),
        "_dp_topic": pa.repeat(topic, n),
        "_dp_partition": pa.repeat(pa.scalar(0, pa.int32()), n),
        "_dp_offset": pa.array(range(n), pa.int64()),
    }
    for name, array in columns.items():
        data = data.append_column(
            pa.field(name, LINEAGE_COLUMNS[name]), array.cast(LINEAGE_COLUMNS[name])
        )
    return data


# -- the topic -----------------------------------------------------------------------------


def produce(bootstrap: str, pipeline: str, rows: int) -> float:
    """Fill ``<pipeline>.orders.processed`` as the transformation does; return the seconds."""
    topic = topics.processed(pipeline, TABLE)
    create_topics(bootstrap, [topic])
    registry = SchemaRegistry(bootstrap, pipeline)
    registry.ensure_topic()
    producer = Producer(bootstrap, transactional_id=f"dataplump.{pipeline}.transform.0")
    transform_run = f"bench-transform-{uuid.uuid4().hex[:8]}"
    start = time.perf_counter()
    for first in range(0, rows, TRANSACTION):
        output = generate(rows, first, min(rows, first + TRANSACTION))
        with producer.transaction():
            keys, values = encode_keys(output, ["id"]), encode_rows(output)
            extra: Headers = [
                (HEADER_SCHEMA, registry.publish(producer, output.schema).encode()),
                (HEADER_TRANSFORMED_AT, datetime.now(UTC).isoformat().encode()),
                (HEADER_TRANSFORM_RUN, transform_run.encode()),
            ]
            producer.produce_many(
                topic,
                (
                    (key, value, [*lineage_headers(TABLE, key, EXTRACTED_AT, RUN), *extra])
                    for key, value in zip(keys, values, strict=True)
                ),
            )
    return time.perf_counter() - start


# -- candidates (in a child process) -----------------------------------------------------


def pipeline_file(folder: Path, bootstrap: str, pipeline: str, sink: dict[str, Any]) -> Path:
    config = {
        "pipeline": {"name": pipeline},
        "source": {"url": f"sqlite:///{folder / 'unused.db'}"},
        "kafka": {"bootstrap_servers": bootstrap},
        "tables": {TABLE: {"primary_key": "id"}},
        "sinks": {"bench": sink},
    }
    path = folder / "dataplump.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def run_loader(
    bootstrap: str, pipeline: str, rows: int, name: str, url: str | None
) -> dict[str, Any]:
    from dataplump.config import load_config
    from dataplump.pipeline.load import Loader

    kind, mode = name.split("-")
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder) / "lake"
        sink: dict[str, Any] = {"kind": kind, "mode": mode}
        sink |= {"path": str(lake)} if kind == "delta" else {"url": url}
        config = load_config(pipeline_file(Path(folder), bootstrap, pipeline, sink))
        with peak_rss() as rss:
            start = time.perf_counter()
            counts = Loader(config, bootstrap, ops=False).run(once=True)
            seconds = time.perf_counter() - start
        consumed = sum(c.consumed for c in counts)
        held = count_rows(kind, lake / TABLE, url)
    expected = rows if mode == "append" else min(rows, max(1, rows // 2))
    if consumed != rows or held != expected:
        raise SystemExit(
            f"{name}: consumed {consumed:,}, sink holds {held:,}; expected {expected:,}"
        )
    return {"seconds": seconds, "rows": consumed, **rss}


def count_rows(kind: str, table: Path, url: str | None) -> int:
    if kind == "delta":
        import polars as pl

        return int(pl.scan_delta(str(table)).select(pl.len()).collect().item())
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url or "")
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
    ) as conn:
        found = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()  # noqa: S608 (fixed)
        return int(found[0]) if found else 0


def run_delta_write(pipeline: str, rows: int) -> dict[str, Any]:
    from deltalake import write_deltalake

    with tempfile.TemporaryDirectory() as folder, peak_rss() as rss:
        data = with_lineage(generate(rows), topics.processed(pipeline, TABLE))
        start = time.perf_counter()
        write_deltalake(str(Path(folder) / TABLE), data, mode="append")
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": rows, **rss}


def _csv(data: pa.Table, size: int = 20_000) -> Iterator[bytes]:
    import pyarrow.csv as pa_csv

    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    for start in range(0, data.num_rows, size):
        out = pa.BufferOutputStream()
        pa_csv.write_csv(data.slice(start, size), out, options)
        yield out.getvalue().to_pybytes()


def run_postgres_peer(pipeline: str, rows: int, name: str, url: str) -> dict[str, Any]:
    import psycopg
    from sqlalchemy.engine import make_url

    from dataplump.sinks.postgres import pg_type

    u = make_url(url)
    with peak_rss() as rss:
        data = with_lineage(generate(rows), topics.processed(pipeline, TABLE))
        if name == "postgres-adbc":
            import adbc_driver_postgresql.dbapi as adbc

            uri = f"postgresql://{u.username}:{u.password}@{u.host}:{u.port}/{u.database}"
            start = time.perf_counter()
            with adbc.connect(uri) as conn, conn.cursor() as cur:
                cur.adbc_ingest(TABLE, data, mode="create")
                conn.commit()
            seconds = time.perf_counter() - start
        else:
            definition = ", ".join(f'"{f.name}" {pg_type(f)}' for f in data.schema)
            start = time.perf_counter()
            with psycopg.connect(
                host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
            ) as conn:
                conn.execute(f"CREATE TABLE {TABLE} ({definition})")
                with (
                    conn.cursor() as cur,
                    cur.copy(f"COPY {TABLE} FROM STDIN (FORMAT csv)") as copy,
                ):
                    for chunk in _csv(data):
                        copy.write(chunk)
            seconds = time.perf_counter() - start
    held = count_rows("postgres", Path(), url)
    if held != rows:
        raise SystemExit(f"{name}: the table holds {held:,} rows, expected {rows:,}")
    return {"seconds": seconds, "rows": rows, **rss}


def child(name: str, bootstrap: str, pipeline: str, rows: int) -> dict[str, Any]:
    if name == "delta-write":
        return run_delta_write(pipeline, rows)
    if name.startswith("delta-"):
        return run_loader(bootstrap, pipeline, rows, name, None)
    from dataplump.testing.databases import PostgresServer

    server = PostgresServer.from_env()
    server.ensure_running()
    with server.fresh_database() as url:
        if name in PEERS:
            return run_postgres_peer(pipeline, rows, name, url)
        return run_loader(bootstrap, pipeline, rows, name, url)


# -- the run -------------------------------------------------------------------------------


def report(name: str, r: dict[str, Any]) -> None:
    peer = "  (peer)" if name in PEERS else ""
    print(
        f"{name:<16} {r['rows']:>10,} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>10,.0f}"
        f" {r['peak'] / 2**20:>8,.0f} MiB {r['start'] / 2**20:>6,.0f} MiB{peer}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--only",
        default=",".join(CANDIDATES),
        help=f"comma-separated candidates, of: {', '.join(CANDIDATES)}",
    )
    parser.add_argument("--bootstrap", help="an existing Kafka instead of a managed broker")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--pipeline", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.bootstrap, args.pipeline, args.rows)))
        return
    chosen = [c.strip() for c in args.only.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CANDIDATES]
    if unknown:
        parser.error(
            f"unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(CANDIDATES)}"
        )
    with tempfile.TemporaryDirectory(prefix="dataplump-bench-kafka-") as folder:
        manager = None
        bootstrap = args.bootstrap
        if bootstrap is None:
            from dataplump.services.kafka import KafkaManager, free_port

            manager = KafkaManager(Path(folder), port=free_port())
            manager.install()
            bootstrap = manager.up().bootstrap
        try:
            bench(args.rows, chosen, bootstrap)
        finally:
            if manager is not None:
                manager.down()


def bench(rows: int, chosen: list[str], bootstrap: str) -> None:
    pipeline = f"bench{uuid.uuid4().hex[:8]}"
    load = os.getloadavg()[0]
    print(f"{rows:,} rows, 10 columns + 7 lineage; {os.cpu_count()} cores, load {load:.1f}")
    if any(c in LOADERS for c in chosen):
        seconds = produce(bootstrap, pipeline, rows)
        print(f"produced {pipeline}.{TABLE}.processed: {rows / seconds:,.0f} records/s")
    print(
        f"{'candidate':<16} {'rows':>10} {'seconds':>8} {'rows/s':>10}"
        f" {'peak RSS':>12} {'start':>10}"
    )
    for name in chosen:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                "--rows",
                str(rows),
                "--bootstrap",
                bootstrap,
                "--pipeline",
                pipeline,
            ],
            check=False,
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            print(f"{name:<16} failed:\n{out.stderr[-3000:]}{out.stdout[-1000:]}", flush=True)
            continue
        report(name, json.loads(out.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
