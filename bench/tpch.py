"""TPC-H ``lineitem`` and ``orders`` in a fresh PostgreSQL database, deterministically.

The rows come from ``tpchgen-cli`` (installed in the bench's own environment, see
``bench/peers/env.py``): the same scale factor always gives the same bytes, so every
tool in a run, and every run, reads the same data. ``rows`` cuts ``lineitem`` to its
first N rows (by key) so a run can ask for an exact size rather than a scale.
"""

from __future__ import annotations

import math
import subprocess
import tempfile
from pathlib import Path

LINEITEM_ROWS_PER_SF = 6_001_215
"""lineitem rows at scale factor 1 (orders has a quarter of that)."""

DDL = {
    "orders": """
        o_orderkey BIGINT NOT NULL PRIMARY KEY, o_custkey BIGINT NOT NULL,
        o_orderstatus CHAR(1) NOT NULL, o_totalprice DECIMAL(15,2) NOT NULL,
        o_orderdate DATE NOT NULL, o_orderpriority VARCHAR(15) NOT NULL,
        o_clerk VARCHAR(15) NOT NULL, o_shippriority INTEGER NOT NULL,
        o_comment VARCHAR(79) NOT NULL""",
    "lineitem": """
        l_orderkey BIGINT NOT NULL, l_partkey BIGINT NOT NULL, l_suppkey BIGINT NOT NULL,
        l_linenumber INTEGER NOT NULL, l_quantity DECIMAL(15,2) NOT NULL,
        l_extendedprice DECIMAL(15,2) NOT NULL, l_discount DECIMAL(15,2) NOT NULL,
        l_tax DECIMAL(15,2) NOT NULL, l_returnflag CHAR(1) NOT NULL,
        l_linestatus CHAR(1) NOT NULL, l_shipdate DATE NOT NULL,
        l_commitdate DATE NOT NULL, l_receiptdate DATE NOT NULL,
        l_shipinstruct VARCHAR(25) NOT NULL, l_shipmode VARCHAR(10) NOT NULL,
        l_comment VARCHAR(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber)""",
}

LINEITEM_CONTRACT = """
      version: bench
      columns:
        l_orderkey: {type: int64, not_null: true, min: 1}
        l_linenumber: {type: int32, not_null: true, min: 1, max: 7}
        l_quantity: {type: "decimal(15,2)", min: 1, max: 50}
        l_discount: {type: "decimal(15,2)", min: 0, max: 0.1}
        l_tax: {type: "decimal(15,2)", min: 0, max: 0.08}
        l_returnflag: {type: string, pattern: "^[ANR]$"}
        l_shipmode: {type: string, not_null: true}
        l_comment: {type: string, max_length: 44}
"""
"""The checks every scenario-1 candidate applies (the floor repeats them in Polars)."""


def scale_for(rows: int) -> float:
    """The smallest scale factor (in steps of 0.01) with at least ``rows`` lineitem rows."""
    return max(0.01, math.ceil(rows / LINEITEM_ROWS_PER_SF * 100) / 100)


def generate(tpchgen: Path, scale: float, folder: Path) -> dict[str, Path]:
    """Write ``orders.csv`` and ``lineitem.csv`` at ``scale`` into ``folder``."""
    subprocess.run(
        [str(tpchgen), "csv", "-s", str(scale), "--tables=lineitem,orders", "-o", str(folder)],
        check=True,
        capture_output=True,
    )
    return {name: folder / f"{name}.csv" for name in DDL}


def load(url: str, tpchgen: Path, scale: float, rows: int | None) -> int:
    """Create and fill both tables in the database at ``url``; return lineitem's row count.

    COPY from CSV, then (with ``rows``) deletes lineitem rows past the first N by key,
    so the cut is the same every time.
    """
    import psycopg
    from sqlalchemy import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory() as tmp:
        files = generate(tpchgen, scale, Path(tmp))
        with psycopg.connect(dsn) as conn:
            for name, columns in DDL.items():
                conn.execute(f"CREATE TABLE {name} ({columns})")
                with (
                    conn.cursor().copy(f"COPY {name} FROM STDIN (FORMAT csv, HEADER true)") as copy,
                    files[name].open("rb") as src,
                ):
                    while chunk := src.read(1 << 20):
                        copy.write(chunk)
            if rows is not None:
                # Past the N-th key, compared as a row: one pass. (`NOT IN (SELECT ...
                # LIMIT N)` is a hashed subplan only while N keys fit in work_mem; at
                # 500,000 rows it rescanned the subquery per row and ran for over 20 min.)
                conn.execute(
                    "DELETE FROM lineitem WHERE (l_orderkey, l_linenumber) > ("
                    " SELECT l_orderkey, l_linenumber FROM lineitem"
                    " ORDER BY l_orderkey, l_linenumber OFFSET %s LIMIT 1)",
                    (rows - 1,),
                )
            conn.execute("ANALYZE")
            row = conn.execute("SELECT count(*) FROM lineitem").fetchone()
    return int(row[0]) if row else 0
