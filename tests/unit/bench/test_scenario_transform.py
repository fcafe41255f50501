"""Scenario 3's pieces that need no service: the Quix app's logic against the SQL, and
the peak-memory sampler."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa
from bench.peers.quix_transform import derive, keep, valid
from bench.scenario_transform import SQL

ROWS: list[dict[str, Any]] = [
    {"l_orderkey": 1, "l_partkey": 7, "l_suppkey": 3, "l_linenumber": 1,
     "l_quantity": "17.00", "l_extendedprice": "21168.23", "l_discount": "0.04",
     "l_tax": "0.02", "l_returnflag": "N", "l_linestatus": "O", "l_shipdate": "1996-03-13",
     "l_commitdate": "1996-02-12", "l_receiptdate": "1996-03-22",
     "l_shipinstruct": "DELIVER IN PERSON", "l_shipmode": "TRUCK", "l_comment": "x"},
    {"l_orderkey": 1, "l_partkey": 8, "l_suppkey": 4, "l_linenumber": 2,
     "l_quantity": "46.00", "l_extendedprice": "45983.16", "l_discount": "0.10",
     "l_tax": "0.08", "l_returnflag": "R", "l_linestatus": "F", "l_shipdate": "1994-01-02",
     "l_commitdate": "1994-01-01", "l_receiptdate": "1994-01-20",
     "l_shipinstruct": "NONE", "l_shipmode": "MAIL", "l_comment": "y"},
    {"l_orderkey": 2, "l_partkey": 9, "l_suppkey": 5, "l_linenumber": 1,
     "l_quantity": "3.00", "l_extendedprice": "3003.00", "l_discount": "0.00",
     "l_tax": "0.00", "l_returnflag": "A", "l_linestatus": "F", "l_shipdate": "1995-05-05",
     "l_commitdate": "1995-05-01", "l_receiptdate": "1995-05-09",
     "l_shipinstruct": "NONE", "l_shipmode": "AIR", "l_comment": "z"},
]  # fmt: skip
DECIMALS = ("l_quantity", "l_extendedprice", "l_discount", "l_tax")


def test_quix_logic_gives_the_sqls_rows_and_values() -> None:
    kinds = {"l_orderkey": pa.int64(), "l_partkey": pa.int64(), "l_suppkey": pa.int64(),
             "l_linenumber": pa.int32()}  # fmt: skip
    schema = pa.schema(
        (name, pa.decimal128(15, 2) if name in DECIMALS else kinds.get(name, pa.string()))
        for name in ROWS[0]
    )
    table = pa.Table.from_pylist(
        [{k: Decimal(str(v)) if k in DECIMALS else v for k, v in row.items()} for row in ROWS],
        schema=schema,
    )
    with duckdb.connect() as con:
        con.register("batch", table)
        sql = con.sql(SQL).to_arrow_table().to_pylist()
    quix = [derive(row) for row in ROWS if keep(row)]
    assert [r["l_linenumber"] for r in sql] == [r["l_linenumber"] for r in quix] == [1, 2]
    for ours, theirs in zip(sql, quix, strict=True):
        assert ours["disc_price"] == Decimal(theirs["disc_price"])
        assert ours["charge"] == Decimal(theirs["charge"])
        assert ours["flag_status"] == theirs["flag_status"]
    assert [valid(row) for row in quix] == [True, False]  # 46 > 45
