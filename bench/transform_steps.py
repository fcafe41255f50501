"""Benchmark: a 1,000,000-row batch stream through one SQL step joining a reference table.

    .venv/bin/python bench/transform_steps.py [--rows N] [--batch N] [--reference-rows N]

The step joins each batch with a 10,000-row reference table (``customers``) and adds
three derived columns (a decimal product, a text concatenation, a date truncation)::

    SELECT o.*, c.country, c.segment,
           o.amount * c.discount AS discounted,
           c.country || '-' || o.status AS market,
           date_trunc('month', o.ordered_at) AS month
    FROM batch o LEFT JOIN customers c USING (customer_id)

It runs through ``TableTransform.apply`` (Arrow in, DuckDB, Arrow out, lineage kept), and
a peer in the same run does the same work per batch with pandas (``to_pandas`` with the
default types, ``merge``, the three columns, ``from_pandas``). Each phase prints rows/s
and the peak RSS sampled with psutil (see ``bench/contract_check.py``); both produce the
same rows (checked on the first batch).
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from bench.contract_check import peak_rss
from dataplump.config import PipelineConfig
from dataplump.engine import TableTransform

SQL = """
SELECT o.*, c.country, c.segment,
       o.amount * c.discount AS discounted,
       c.country || '-' || o.status AS market,
       date_trunc('month', o.ordered_at) AS month
FROM batch o LEFT JOIN customers c USING (customer_id)
"""

ORDERS_SQL = """
SELECT i::BIGINT AS id,
       (hash(i) % {customers})::BIGINT AS customer_id,
       ((i % 100000) / 100 + 1)::DECIMAL(12,2) AS amount,
       ['new', 'paid', 'shipped', 'done'][1 + i % 4] AS status,
       TIMESTAMP '2024-01-01' + to_seconds(i * 7) AS ordered_at,
       'note ' || i AS note
FROM range({rows}) t(i)
"""

CUSTOMERS_SQL = """
SELECT i::BIGINT AS customer_id,
       ['FR', 'DE', 'US', 'GB', 'ES'][1 + i % 5] AS country,
       ['retail', 'pro'][1 + i % 2] AS segment,
       (1 - (i % 20) / 100)::DECIMAL(4,2) AS discount
FROM range({rows}) t(i)
"""


def generate(sql: str, **sizes: int) -> pa.Table:
    with duckdb.connect() as con:
        return con.sql(sql.format(**sizes)).to_arrow_table().combine_chunks()


def batches(table: pa.Table, size: int) -> Iterator[pa.Table]:
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)


def pandas_peer(customers: pa.Table) -> Callable[[pa.Table], pa.Table]:
    frame = customers.to_pandas()

    def run(batch: pa.Table) -> pa.Table:
        df = batch.to_pandas()
        out = df.merge(frame, how="left", on="customer_id")
        out["discounted"] = out["amount"] * out["discount"]  # Decimal objects: exact, slow
        out["market"] = out["country"] + "-" + out["status"]
        out["month"] = out["ordered_at"].dt.to_period("M").dt.to_timestamp()
        out = out.drop(columns=["discount"])
        return pa.Table.from_pandas(out, preserve_index=False)

    return run


def measure(name: str, stream: Iterator[pa.Table], run: Callable[[pa.Table], Any]) -> None:
    gc.collect()
    rows = 0
    with peak_rss() as rss:
        start = time.perf_counter()
        for batch in stream:
            run(batch)
            rows += batch.num_rows
        elapsed = time.perf_counter() - start
    print(
        f"{name:<44} {rows / elapsed:>12,.0f} rows/s   {elapsed:6.2f} s"
        f"   peak RSS {rss['peak'] / 2**20:,.0f} MB (+{(rss['peak'] - rss['start']) / 2**20:,.0f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--reference-rows", type=int, default=10_000)
    args = parser.parse_args()

    orders = generate(ORDERS_SQL, rows=args.rows, customers=args.reference_rows)
    customers = generate(CUSTOMERS_SQL, rows=args.reference_rows)
    config = PipelineConfig.model_validate(
        {
            "pipeline": {"name": "bench"},
            "source": {"url": "sqlite:///unused.db"},
            "tables": {"orders": {"primary_key": "id"}},
            "transform": {"steps": {"orders": [{"sql": SQL}]}},
        }
    )

    class Fixed:  # the reference as ReferenceTables serves it once loaded: one Arrow table
        names = ("customers",)

        def register(self, con: duckdb.DuckDBPyConnection) -> None:
            con.register("customers", customers)

    transform = TableTransform.from_config(config, "orders", Fixed())  # type: ignore[arg-type]
    peer = pandas_peer(customers)

    first = orders.slice(0, 1000)
    ours = transform.apply(first).output.sort_by("id")
    theirs = peer(first).sort_by("id")
    assert ours.column_names == theirs.column_names, (ours.column_names, theirs.column_names)
    assert ours["discounted"].to_pylist() == [
        None if v is None else Decimal(v) for v in theirs["discounted"].to_pylist()
    ]
    assert ours["market"].to_pylist() == theirs["market"].to_pylist()
    assert ours["month"].to_pylist() == theirs["month"].to_pylist()

    print(
        f"{args.rows:,} rows in batches of {args.batch:,}, reference {args.reference_rows:,} rows;"
        f" duckdb {duckdb.__version__}, pandas {pd.__version__}, pyarrow {pa.__version__}"
    )
    measure(
        "TableTransform.apply (1 SQL step, DuckDB)", batches(orders, args.batch), transform.apply
    )
    measure("pandas per batch (merge + 3 columns)", batches(orders, args.batch), peer)
    transform.close()


if __name__ == "__main__":
    main()
