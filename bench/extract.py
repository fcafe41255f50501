"""Benchmark: PostgreSQL table -> validated Kafka topics, DataPlump against the naive loop.

    .venv/bin/python -m bench.extract [--rows 1000000] [--batch 50000]

Fills a fresh database on the local test server with ``--rows`` rows of 10 columns
(the table of ``bench/source_read.py``), starts a managed Kafka broker on a free port,
then moves the table to Kafka with each candidate, **each in its own subprocess** so
its peak RSS is its own:

dataplump   ``Extractor.run_once``: ADBC read, a contract of 10 rules (~5% of rows
            break ``max(c)``), lossless JSON, valid rows to ``.active``, invalid ones to
            ``.dlq`` with reasons, one Kafka transaction per batch with the watermark
naive       a psycopg server-side cursor, ``json.dumps`` per row, ``produce`` per row with
            the same lineage headers, an idempotent producer; no validation at all

It prints rows/s, seconds and peak RSS of each, and the ratio to DataPlump.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

CONTRACT = """
      version: bench
      columns:
        id: {type: int64, not_null: true, unique: true}
        a: {type: int32, min: 0, max: 999}
        b: {type: int64, not_null: true}
        c: {type: int16, max: 94}
        amount: {type: "decimal(15,2)", min: 0}
        price: {type: "decimal(15,2)", not_null: true}
        name: {type: string, pattern: "^name [0-9]+$"}
        note: {type: string, min_length: 32, max_length: 32}
        created_at: {type: timestamptz, not_null: true}
        updated_at: {type: timestamptz}
"""


def write_pipeline(folder: Path, url: str, bootstrap: str, batch: int) -> Path:
    file = folder / "dataplump.yaml"
    file.write_text(
        f"pipeline: {{name: bench{uuid.uuid4().hex[:6]}}}\n"
        f"source: {{url: '{url}'}}\n"
        f"kafka: {{bootstrap_servers: '{bootstrap}', topic: {{partitions: 2}}}}\n"
        f"tables:\n  bench:\n    primary_key: id\n    batch_size: {batch}\n"
        f"    contract:{CONTRACT}"
    )
    return file


def run_dataplump(pipeline: str) -> dict[str, float]:
    from dataplump.config import load_config
    from dataplump.pipeline.extract import Extractor

    config = load_config(pipeline)
    bootstrap = config.kafka.bootstrap_servers or ""
    extractor = Extractor(config, bootstrap)
    extractor.prepare()
    started = time.perf_counter()
    [counts] = extractor.run_once()
    seconds = time.perf_counter() - started
    return {"rows": counts.read, "seconds": seconds, "invalid": counts.invalid}


def run_naive(pipeline: str) -> dict[str, float]:
    import psycopg
    from sqlalchemy import make_url

    from dataplump.bus.kafka import Producer, create_topics
    from dataplump.config import load_config

    config = load_config(pipeline)
    bootstrap = config.kafka.bootstrap_servers or ""
    url = make_url(config.source.url.get_secret_value()).set(drivername="postgresql")
    table = next(iter(config.tables))
    topic = f"{config.name}.naive"
    create_topics(bootstrap, [topic], partitions=2)
    producer = Producer(bootstrap, extra={"linger.ms": "20"})
    started = time.perf_counter()
    rows = size = 0
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        cursor = conn.cursor(name="naive")
        cursor.itersize = 10_000
        cursor.execute(f"SELECT * FROM {table}")  # noqa: S608  # the pipeline's own table name
        names = [d.name for d in cursor.description or []]
        for row in cursor:
            value = json.dumps(dict(zip(names, row, strict=True)), default=str).encode()
            key = json.dumps({names[0]: row[0]}).encode()
            headers = [("dp.source", table.encode()), ("dp.pk", key), ("dp.run", b"naive")]
            producer.produce(topic, value, key=key, headers=headers)
            rows += 1
            size += len(value)
    producer.flush()
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "invalid": 0, "value_bytes": size}


CANDIDATES = {"dataplump": run_dataplump, "naive": run_naive}


def child(name: str, pipeline: str) -> None:
    result = CANDIDATES[name](pipeline)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--child", nargs=2, metavar=("NAME", "PIPELINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    import sqlalchemy as sa

    from bench.source_read import PG_COLUMNS, PG_FILL
    from dataplump.services.kafka import KafkaManager, free_port
    from dataplump.testing.databases import PostgresServer

    server = PostgresServer.from_env()
    server.ensure_running()
    url = server.create_database()
    with tempfile.TemporaryDirectory() as tmp:
        kafka = KafkaManager(Path(tmp) / "kafka", port=free_port())
        kafka.install()
        try:
            bootstrap = kafka.up().bootstrap
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.execute(sa.text(f"CREATE TABLE bench ({PG_COLUMNS})"))
                conn.execute(sa.text(PG_FILL), {"rows": args.rows})
                conn.execute(sa.text("ANALYZE bench"))
            engine.dispose()
            pipeline = write_pipeline(Path(tmp), url, bootstrap, args.batch)
            results = {}
            for name in CANDIDATES:
                out = subprocess.run(
                    [sys.executable, "-m", "bench.extract", "--child", name, str(pipeline)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            kafka.down()
            server.drop_database(url)
    base = results["dataplump"]["rows"] / results["dataplump"]["seconds"]
    print(
        f"{args.rows:,} rows, PostgreSQL -> Kafka (batch {args.batch:,}),"
        " 2 cores shared with the broker"
    )
    print(
        f"{'candidate':<12}{'rows':>10}{'invalid':>9}{'seconds':>9}{'rows/s':>11}"
        f"{'peak RSS':>10}{'ratio':>7}"
    )
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        print(
            f"{name:<12}{r['rows']:>10,}{r['invalid']:>9,}{r['seconds']:>9.1f}{rate:>11,.0f}"
            f"{r['peak_rss_mb']:>8.0f}MB{rate / base:>7.2f}"
        )


if __name__ == "__main__":
    main()
