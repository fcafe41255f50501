"""The hand-written floor: ConnectorX read -> Polars checks -> ``write_deltalake``.

    .cache/bench-venv/bin/python bench/peers/floor_lake.py URL LAKE_DIR

The least work that reads the table, applies the same checks as DataPlump's contract
(``bench/tpch.py`` LINEITEM_CONTRACT), splits off failing rows and writes the rest to
Delta: the physical floor on this machine for reading plus writing.
"""

from __future__ import annotations

import json
import sys
import time


def main(url: str, lake: str) -> None:
    import connectorx as cx
    import polars as pl
    from deltalake import write_deltalake

    started = time.perf_counter()
    uri = url.replace("postgresql+psycopg://", "postgresql://")
    frame = pl.DataFrame(cx.read_sql(uri, "SELECT * FROM lineitem", return_type="arrow"))
    ok = (
        pl.col("l_orderkey").is_not_null()
        & (pl.col("l_orderkey") >= 1)
        & pl.col("l_linenumber").is_not_null()
        & pl.col("l_linenumber").is_between(1, 7)
        & pl.col("l_quantity").cast(pl.Float64).is_between(1, 50)
        & pl.col("l_discount").cast(pl.Float64).is_between(0, 0.1)
        & pl.col("l_tax").cast(pl.Float64).is_between(0, 0.08)
        & pl.col("l_returnflag").str.contains("^[ANR]$")
        & pl.col("l_shipmode").is_not_null()
        & (pl.col("l_comment").str.len_chars() <= 44)
    )
    checked = frame.with_columns(ok.fill_null(True).alias("_ok"))
    valid = checked.filter(pl.col("_ok")).drop("_ok")
    invalid = checked.height - valid.height
    write_deltalake(f"{lake}/floor", valid.to_arrow(), mode="append")
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": frame.height, "seconds": seconds, "invalid": invalid}))


if __name__ == "__main__":
    main(*sys.argv[1:])
