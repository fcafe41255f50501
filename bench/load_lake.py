"""Benchmark: 1,000,000 rows into Delta through ``DeltaSink.write``, append and merge.

    .venv/bin/python bench/load_lake.py [--rows N] [--batch N]

Rows have 10 data columns (integers, text, two decimals, two timestamps, a boolean, a
double) plus the lineage columns, and are written in batches of ``--batch`` rows with
their offsets, as the loader does. The peer in the same run is one ``write_deltalake``
call with the whole table from memory: the library's own speed, so the difference is the
sink's overhead (offset filtering, fencing, per-batch commits). Merge upserts the same
keys again (every batch matches rows already stored). Each phase prints rows/s and the
peak RSS (psutil, sampled every 2 ms).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import types
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import write_deltalake

from bench.contract_check import peak_rss
from dataplump.sinks.base import LINEAGE_COLUMNS, SinkTarget
from dataplump.sinks.delta import DeltaSink

TOPIC = "bench.orders.processed"
ROWS_SQL = """
SELECT i::BIGINT AS id,
       (hash(i) % 10000)::BIGINT AS customer_id,
       ['new', 'paid', 'shipped', 'done'][1 + i % 4] AS status,
       ((i % 100000) / 100 + 1)::DECIMAL(12,2) AS amount,
       ((i % 1000) / 1000)::DECIMAL(5,3) AS tax_rate,
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_seconds(i * 7) AS ordered_at,
       TIMESTAMPTZ '2024-01-02 00:00:00+00' + to_seconds(i * 5) AS updated_at,
       i % 3 = 0 AS gift,
       (i % 997) * 1.5 AS weight,
       'note ' || i AS note,
       'orders' AS _dp_source,
       i::VARCHAR AS _dp_pk,
       TIMESTAMPTZ '2024-01-03 00:00:00+00' AS _dp_extracted_at,
       'bench' AS _dp_run,
       '{topic}' AS _dp_topic,
       0::INTEGER AS _dp_partition,
       i::BIGINT AS _dp_offset
FROM range({rows}) t(i)
"""


def generate(rows: int) -> pa.Table:
    table = duckdb.sql(ROWS_SQL.format(rows=rows, topic=TOPIC)).to_arrow_table()
    schema = pa.schema(
        [
            pa.field(f.name, LINEAGE_COLUMNS.get(f.name, f.type))
            if not pa.types.is_timestamp(f.type)
            else pa.field(f.name, pa.timestamp("us", "UTC"))
            for f in table.schema
        ]
    )
    return table.cast(schema)


def through_sink(data: pa.Table, lake: Path, mode: str, batch: int, passes: int) -> float:
    config = types.SimpleNamespace(kind="delta", path=lake, allow_type_changes=False)
    key = ("id",) if mode == "merge" else ()
    sink = DeltaSink("bench", config, SinkTarget("bench", mode, key, (), mode))  # type: ignore[arg-type]
    start = time.perf_counter()
    for round_ in range(passes):
        shift = round_ * data.num_rows
        for offset in range(0, data.num_rows, batch):
            rows = data.slice(offset, batch)
            if shift:
                rows = rows.set_column(
                    rows.num_columns - 1,
                    "_dp_offset",
                    pa.compute.add(rows["_dp_offset"], shift),
                )
            sink.write(rows, {(TOPIC, 0): shift + offset + rows.num_rows})
    elapsed = time.perf_counter() - start
    sink.close()
    return elapsed


def report(label: str, rows: int, seconds: float, rss: dict[str, int]) -> None:
    print(
        f"{label:<40} {rows:>9,} rows {seconds:7.2f} s {rows / seconds:>11,.0f} rows/s"
        f"  peak RSS {rss['peak'] / 2**20:,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, nargs="+", default=[50_000, 100_000])
    args = parser.parse_args()
    data = generate(args.rows)
    print(f"{args.rows:,} rows, {data.num_columns} columns, {data.nbytes / 2**20:,.0f} MiB")
    with tempfile.TemporaryDirectory() as folder:
        lake = Path(folder)
        gc.collect()
        with peak_rss() as rss:
            start = time.perf_counter()
            write_deltalake(str(lake / "peer"), data, mode="append")
            seconds = time.perf_counter() - start
        report("peer: one write_deltalake call", args.rows, seconds, rss)
        for batch in args.batch:
            for mode in ("append", "merge"):
                gc.collect()
                # merge: the first pass inserts, the second upserts every key again
                passes = 2 if mode == "merge" else 1
                with peak_rss() as rss:
                    seconds = through_sink(data, lake / f"{mode}{batch}", mode, batch, passes)
                report(f"DeltaSink.write {mode}, batch {batch:,}", args.rows * passes, seconds, rss)


if __name__ == "__main__":
    main()
