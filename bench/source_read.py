"""Benchmark: read a 1,000,000-row table into Arrow, DataPlump's source against its peers.

    .venv/bin/python bench/source_read.py [--rows 1000000] [--batch 10000] [--repeat 1]
                                          [--database postgres|mariadb|both] [--only NAME ...]

Creates a fresh database on the local test server (``dataplump.testing.databases``), fills
``bench`` with ``--rows`` rows of 10 columns (``id bigint`` key, 3 more integers, 2
``numeric(15,2)``, 2 ``text``, 2 ``timestamptz``/``timestamp(6)``), then reads the whole
table with each candidate, **each in its own subprocess** so the peak RSS (the kernel's
high-water mark, ``ru_maxrss``) is that candidate's alone. It prints rows/s, peak RSS, the
RSS before reading (interpreter + every candidate's imports) and the biggest batch, and drops
the database. With ``--repeat N`` each candidate runs N times: ``rows/s`` is the median,
``best`` the fastest run (the VM is shared, so single runs vary by +-30%).

Every candidate ends with Arrow data of the table's declared types where it can:

PostgreSQL
  dataplump          ``open_source(...).read()``: ADBC streaming COPY, NUMERIC as text cast
                     to decimal128(15,2), re-cut to ``--batch`` rows (the chosen path)
  dataplump-incr     the same in ``incremental`` mode on ``updated_at`` (no index: the
                     server sorts the table first)
  adbc-stream        ADBC ``fetch_record_batch()`` on ``SELECT *``: NUMERIC stays ADBC's
                     opaque string type (no conversion), ~16 MB batches
  connectorx         ConnectorX ``read_sql(return_type="arrow")``: the whole table at once,
                     NUMERIC as decimal128(38,10)
  connectorx-stream  ConnectorX ``return_type="arrow_stream"``, ``--batch`` rows per batch
  copy-csv           psycopg ``COPY ... TO STDOUT (FORMAT csv)`` fed to pyarrow's streaming
                     CSV reader with the declared types
  copy-binary        psycopg ``COPY ... (FORMAT binary)``, rows decoded by psycopg into Python
                     tuples, ``--batch`` at a time into Arrow
  psycopg-rows       the naive way: a psycopg cursor, Python rows, ``--batch`` at a time into
                     Arrow (the client buffers the whole result)

MariaDB (``--database mariadb``)
  dataplump          ``open_source(...).read()``: ConnectorX ``arrow_stream``
  connectorx         ConnectorX, the whole table at once
  pymysql-rows       PyMySQL unbuffered cursor (``SSCursor``), Python rows into Arrow
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

# Every candidate's imports are done before any reads, so "before" is the same for all.
import adbc_driver_postgresql.dbapi as adbc_pg  # type: ignore[import-untyped]
import connectorx
import psutil  # type: ignore[import-untyped]
import psycopg
import pyarrow as pa
import pymysql  # type: ignore[import-untyped]
import pymysql.cursors  # type: ignore[import-untyped]
import sqlalchemy as sa
from pyarrow import csv

from dataplump.config.models import SourceConfig, TableConfig
from dataplump.sources import open_source
from dataplump.testing.databases import MariaDBServer, PostgresServer

PG_COLUMNS = """id bigint PRIMARY KEY, a integer, b bigint, c smallint, amount numeric(15,2),
price numeric(15,2), name text, note text, created_at timestamptz, updated_at timestamptz"""
PG_FILL = """INSERT INTO bench SELECT g, g % 1000, g * 7, (g % 100)::smallint,
(g % 100000) / 100.0, g / 7.0, 'name ' || g, md5(g::text),
'2024-01-01'::timestamptz + g * interval '1 second',
'2024-06-01'::timestamptz + (g / 3) * interval '1 second'
FROM generate_series(1, :rows) g"""
MY_COLUMNS = """id bigint PRIMARY KEY, a int, b bigint, c smallint, amount decimal(15,2),
price decimal(15,2), name text, note text, created_at datetime(6), updated_at timestamp(6) NULL"""
MY_FILL = """INSERT INTO bench SELECT seq, seq % 1000, seq * 7, seq % 100,
(seq % 100000) / 100.0, seq / 7.0, concat('name ', seq), md5(seq),
'2024-01-01' + interval seq second, '2024-06-01' + interval (seq div 3) second
FROM seq_1_to_{rows}"""

ARROW_TYPES = {
    "id": pa.int64(),
    "a": pa.int32(),
    "b": pa.int64(),
    "c": pa.int16(),
    "amount": pa.decimal128(15, 2),
    "price": pa.decimal128(15, 2),
    "name": pa.string(),
    "note": pa.string(),
    "created_at": pa.timestamp("us", tz="UTC"),
    "updated_at": pa.timestamp("us", tz="UTC"),
}
SELECT = "SELECT * FROM bench ORDER BY id"


# --- candidates (each runs in a subprocess and yields its batches) ---------------------


def _dataplump(url: str, batch: int, incremental: bool = False) -> Iterator[pa.RecordBatch]:
    config: dict[str, Any] = {"primary_key": "id", "batch_size": batch}
    if incremental:
        config |= {"mode": "incremental", "cursor": "updated_at"}
    source = SourceConfig.model_validate({"url": url})
    with open_source(source, "bench", TableConfig.model_validate(config)) as src:
        yield from src.read()


def _libpq(url: str) -> str:
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _adbc_stream(url: str, batch: int) -> Iterator[pa.RecordBatch]:
    with adbc_pg.connect(_libpq(url)) as conn, conn.cursor() as cursor:
        cursor.execute(SELECT)
        yield from cursor.fetch_record_batch()


def _connectorx(url: str, batch: int) -> Iterator[pa.RecordBatch]:
    scheme = "postgresql" if url.startswith("postgresql") else "mysql"
    cx_url = sa.make_url(url).set(drivername=scheme).render_as_string(hide_password=False)
    table = connectorx.read_sql(cx_url, SELECT, return_type="arrow")
    yield from table.to_batches()


def _connectorx_stream(url: str, batch: int) -> Iterator[pa.RecordBatch]:
    reader = connectorx.read_sql(_libpq(url), SELECT, return_type="arrow_stream", batch_size=batch)
    yield from reader


class _Chunks(io.RawIOBase):
    """A file over an iterator of byte chunks (psycopg's COPY), for pyarrow's CSV reader."""

    def __init__(self, chunks: Iterator[Any]) -> None:
        self._chunks = chunks
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._left:
            try:
                self._left = memoryview(bytes(next(self._chunks)))
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._left))
        buffer[:n] = self._left[:n]
        self._left = self._left[n:]
        return n


def _copy_csv(url: str, batch: int) -> Iterator[pa.RecordBatch]:
    with psycopg.connect(_libpq(url)) as conn, conn.cursor() as cursor:
        conn.execute("SET TimeZone = 'UTC'")
        with cursor.copy(f"COPY ({SELECT}) TO STDOUT (FORMAT csv)") as copy:
            reader = csv.open_csv(
                io.BufferedReader(_Chunks(iter(copy)), 1 << 20),
                read_options=csv.ReadOptions(column_names=list(ARROW_TYPES)),
                convert_options=csv.ConvertOptions(
                    column_types=ARROW_TYPES, quoted_strings_can_be_null=False
                ),
                parse_options=csv.ParseOptions(newlines_in_values=True),
            )
            yield from reader


def _to_batch(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    arrays = [pa.array(c, t) for c, t in zip(columns, ARROW_TYPES.values(), strict=True)]
    return pa.RecordBatch.from_arrays(arrays, names=list(ARROW_TYPES))


def _copy_binary(url: str, batch: int) -> Iterator[pa.RecordBatch]:
    types = ["int8", "int4", "int8", "int2", "numeric", "numeric", "text", "text"]
    types += ["timestamptz", "timestamptz"]
    with (
        psycopg.connect(_libpq(url)) as conn,
        conn.cursor() as cursor,
        cursor.copy(f"COPY ({SELECT}) TO STDOUT (FORMAT binary)") as copy,
    ):
        copy.set_types(types)
        rows: list[tuple[Any, ...]] = []
        for row in copy.rows():
            rows.append(row)
            if len(rows) == batch:
                yield _to_batch(rows)
                rows = []
        if rows:
            yield _to_batch(rows)


def _psycopg_rows(url: str, batch: int) -> Iterator[pa.RecordBatch]:
    with psycopg.connect(_libpq(url)) as conn, conn.cursor() as cursor:
        cursor.execute(SELECT)
        while rows := cursor.fetchmany(batch):
            yield _to_batch(rows)


def _pymysql_rows(url: str, batch: int) -> Iterator[pa.RecordBatch]:
    u = sa.make_url(url)
    conn = pymysql.connect(
        host=u.host,
        port=u.port,
        user=u.username,
        password=u.password,
        database=u.database,
        cursorclass=pymysql.cursors.SSCursor,
        init_command="SET time_zone = '+00:00'",
    )
    try:
        cursor = conn.cursor()
        cursor.execute(SELECT)
        while rows := cursor.fetchmany(batch):
            yield _to_batch(rows)
    finally:
        conn.close()


CANDIDATES: dict[str, dict[str, Callable[[str, int], Iterator[pa.RecordBatch]]]] = {
    "postgres": {
        "dataplump": _dataplump,
        "dataplump-incr": lambda url, batch: _dataplump(url, batch, incremental=True),
        "adbc-stream": _adbc_stream,
        "connectorx": _connectorx,
        "connectorx-stream": _connectorx_stream,
        "copy-csv": _copy_csv,
        "copy-binary": _copy_binary,
        "psycopg-rows": _psycopg_rows,
    },
    "mariadb": {
        "dataplump": _dataplump,
        "connectorx": _connectorx,
        "pymysql-rows": _pymysql_rows,
    },
}


def run_candidate(database: str, name: str, url: str, batch: int) -> dict[str, Any]:
    """Read the table with one candidate in this process; rows, time and memory."""
    read = CANDIDATES[database][name]
    before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    rows = batches = biggest = 0
    types: list[str] = []
    for batch_ in read(url, batch):
        rows += batch_.num_rows
        batches += 1
        biggest = max(biggest, batch_.num_rows)
        types = types or [str(t) for t in batch_.schema.types]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "rows": rows,
        "seconds": seconds,
        "peak_rss": peak,
        "rss_before": before,
        "batches": batches,
        "biggest": biggest,
        "types": types,
    }


def _fill(database: str, url: str, rows: int) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if database == "postgres":
            conn.execute(sa.text(f"CREATE TABLE bench ({PG_COLUMNS})"))
            conn.execute(sa.text(PG_FILL), {"rows": rows})
        else:
            conn.execute(sa.text("SET time_zone = '+00:00'"))
            conn.execute(sa.text(f"CREATE TABLE bench ({MY_COLUMNS})"))
            conn.execute(sa.text(MY_FILL.format(rows=int(rows))))
    # VACUUM sets PostgreSQL's hint bits now, or the first candidate to read would pay for it.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            sa.text("ANALYZE TABLE bench" if database == "mariadb" else "VACUUM ANALYZE bench")
        )
        conn.execute(sa.text("SELECT count(*), max(note) FROM bench"))  # warm the cache
    engine.dispose()


def bench(database: str, args: argparse.Namespace) -> None:
    server = PostgresServer.from_env() if database == "postgres" else MariaDBServer.from_env()
    server.ensure_running()
    with server.fresh_database() as url:
        started = time.perf_counter()
        _fill(database, url, args.rows)
        print(
            f"\n{database}: {args.rows:,} rows x 10 columns in {time.perf_counter() - started:.1f}s"
        )
        print(
            f"{'candidate':<18} {'rows/s':>11} {'best':>11} {'peak RSS':>9} {'before':>8}"
            f" {'batches':>8} {'biggest':>8}"
        )
        names = [n for n in CANDIDATES[database] if not args.only or n in args.only]
        for name in names:
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run(
                    [sys.executable, __file__, "--child", database, name, url, str(args.batch)],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if out.returncode != 0:
                    last = (out.stderr.strip().splitlines() or ["?"])[-1]
                    print(f"{name:<18} failed: {last}")
                    break
                runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            if not runs:
                continue
            r = runs[0]
            if r["rows"] != args.rows:
                print(f"{name:<18} read {r['rows']} rows, expected {args.rows}")
            speeds = [run["rows"] / run["seconds"] for run in runs]
            print(
                f"{name:<18} {statistics.median(speeds):>11,.0f} {max(speeds):>11,.0f}"
                f" {max(run['peak_rss'] for run in runs) / 2**20:>6.0f} MB"
                f" {r['rss_before'] / 2**20:>5.0f} MB {r['batches']:>8,} {r['biggest']:>8,}"
            )
            if args.types:
                print(f"{'':<18} {', '.join(r['types'])}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        database, name, url, batch = sys.argv[2:6]
        print(json.dumps(run_candidate(database, name, url, int(batch))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--database", choices=["postgres", "mariadb", "both"], default="postgres")
    parser.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    parser.add_argument("--types", action="store_true", help="print each candidate's Arrow types")
    args = parser.parse_args()
    for database in ("postgres", "mariadb") if args.database == "both" else (args.database,):
        bench(database, args)


if __name__ == "__main__":
    main()
