"""Benchmark: load 1,000,000 rows into PostgreSQL, DataPlump's sink against the plain way.

    .venv/bin/python bench/load_postgres.py [--rows 1000000] [--batch 100000]
                                            [--only NAME ...]

Builds ``--rows`` rows of 10 columns (``id bigint`` key, 3 more integers, 2
``decimal(15,2)``, 2 strings, 2 ``timestamptz``) plus the 7 lineage columns, in Arrow
batches of ``--batch`` rows, and loads them into a fresh database on the local test
server (``dataplump.testing.databases``), **each candidate in its own subprocess** so the
peak RSS (``ru_maxrss``) is its own. Merge candidates load keys ``i % (rows / 2)``, so
half of the rows update a row of an earlier batch. Candidates:

  sink-append      ``PostgresSink.write`` in append mode (COPY csv into a temp table,
                   INSERT, offsets, one transaction per batch)
  sink-merge       the same in merge mode (dedupe by key in Arrow, INSERT ... ON CONFLICT)
  executemany      the plain way: Python rows from ``to_pylist()``, psycopg
                   ``executemany(INSERT ...)``, one commit per batch
  executemany-merge  ``executemany(INSERT ... ON CONFLICT (id) DO UPDATE ...)``
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy.engine import make_url

from dataplump.config.models import SinkConfig
from dataplump.sinks import LINEAGE_COLUMNS, SinkTarget
from dataplump.sinks.postgres import PostgresSink
from dataplump.testing.databases import PostgresServer

CANDIDATES = ("sink-append", "sink-merge", "executemany", "executemany-merge")
TOPIC = "bench.orders.processed"


def _money(units: np.ndarray) -> pa.Array:
    """Whole amounts as ``decimal(15,2)``."""
    return (
        pa.array(units, pa.int64())
        .cast(pa.decimal128(19, 0))
        .cast(pa.decimal128(15, 2), safe=False)
    )


GENERATING = [0.0]
"""Seconds spent building batches, taken off the load time."""


def batches(rows: int, size: int, *, merge: bool) -> Iterator[pa.Table]:
    """``rows`` rows in Arrow tables of ``size``, lineage columns included."""
    made = _batches(rows, size, merge=merge)
    while True:
        start = time.perf_counter()
        table = next(made, None)
        GENERATING[0] += time.perf_counter() - start
        if table is None:
            return
        yield table


def _batches(rows: int, size: int, *, merge: bool) -> Iterator[pa.Table]:
    rng = np.random.default_rng(7)
    base = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    for start in range(0, rows, size):
        n = min(size, rows - start)
        offsets = np.arange(start, start + n, dtype=np.int64)
        ids = offsets % (rows // 2) if merge else offsets
        cents = rng.integers(0, 10**11, n)
        at = pa.array(base + offsets * 1000, pa.timestamp("us", "UTC"))
        data = {
            "id": pa.array(ids, pa.int64()),
            "customer": pa.array(rng.integers(0, 100_000, n), pa.int64()),
            "qty": pa.array(rng.integers(0, 1000, n).astype(np.int32)),
            "status_code": pa.array(rng.integers(0, 10, n).astype(np.int32)),
            "amount": _money(cents),
            "tax": _money(cents // 5),
            "name": pc.binary_join_element_wise("customer ", pa.array(ids).cast(pa.string()), ""),
            "note": pa.repeat("standard delivery", n),
            "created_at": at,
            "updated_at": at,
        }
        lineage = {
            "_dp_source": pa.repeat("orders", n),
            "_dp_pk": pa.array(ids).cast(pa.string()),
            "_dp_extracted_at": at,
            "_dp_run": pa.repeat("bench", n),
            "_dp_topic": pa.repeat(TOPIC, n),
            "_dp_partition": pa.array(np.zeros(n, np.int32)),
            "_dp_offset": pa.array(offsets),
        }
        table = pa.table(data | lineage)
        yield table.cast(
            pa.schema([*table.schema][:10] + [pa.field(k, t) for k, t in LINEAGE_COLUMNS.items()])
        )


def run_sink(url: str, rows: int, size: int, mode: str) -> int:
    config = SinkConfig.model_validate({"kind": "postgres", "url": url, "mode": mode})
    key = ("id",) if mode == "merge" else ()
    sink = PostgresSink("bench", config, SinkTarget("bench", "orders", key, mode=mode))
    written = 0
    for table in batches(rows, size, merge=mode == "merge"):
        offset = table["_dp_offset"][-1].as_py() + 1
        written += sink.write(table, {(TOPIC, 0): offset}).written
    sink.close()
    return written


def run_executemany(url: str, rows: int, size: int, merge: bool) -> int:
    u = make_url(url)
    columns = [f.name for f in next(batches(1, 1, merge=False)).schema]
    names = ", ".join(columns)
    types = ["bigint", "bigint", "int", "int", "numeric(15,2)", "numeric(15,2)", "text", "text"]
    types += ["timestamptz", "timestamptz", "text", "text", "timestamptz", "text", "text", "int"]
    types += ["bigint"]
    definition = ", ".join(f"{c} {t}" for c, t in zip(columns, types, strict=True))
    insert = f"INSERT INTO orders ({names}) VALUES ({', '.join(['%s'] * len(columns))})"  # noqa: S608 (fixed names)
    if merge:
        definition += ", PRIMARY KEY (id)"
        sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[1:])
        insert += f" ON CONFLICT (id) DO UPDATE SET {sets}"
    written = 0
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database
    ) as conn:
        conn.execute(f"CREATE TABLE orders ({definition})")
        conn.commit()
        for table in batches(rows, size, merge=merge):
            values = [tuple(r.values()) for r in table.to_pylist()]
            with conn.cursor() as cur:
                cur.executemany(insert, values)
            conn.commit()
            written += len(values)
    return written


def child(name: str, rows: int, size: int) -> None:
    server = PostgresServer.from_env()
    server.ensure_running()
    with server.fresh_database() as url:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        if name.startswith("sink-"):
            written = run_sink(url, rows, size, name.removeprefix("sink-"))
        else:
            written = run_executemany(url, rows, size, merge=name.endswith("merge"))
        seconds = time.perf_counter() - start - GENERATING[0]
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "written": written, "before": before, "peak": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--only", nargs="*", choices=CANDIDATES, default=list(CANDIDATES))
    parser.add_argument("--child", choices=CANDIDATES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rows, args.batch)
        return
    print(f"{args.rows:,} rows, batches of {args.batch:,}, 10 columns + 7 lineage")
    print(f"{'candidate':<18} {'rows/s':>10} {'seconds':>8} {'peak RSS':>9} {'start RSS':>9}")
    for name in args.only:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                "--rows",
                str(args.rows),
                "--batch",
                str(args.batch),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(
            f"{name:<18} {args.rows / r['seconds']:>10,.0f} {r['seconds']:>8.1f}"
            f" {r['peak'] // 1024:>6} MB {r['before'] // 1024:>6} MB",
            flush=True,
        )


if __name__ == "__main__":
    main()
