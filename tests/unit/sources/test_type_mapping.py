"""Catalog types map to Arrow types faithfully, or are refused with a hint."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dataplump.sources import mysql, postgres, sqlite


def _pg_numeric(precision: int, scale: int) -> int:
    return ((precision << 16) | (scale & 0x7FF)) + 4


@pytest.mark.parametrize(
    ("typname", "typtype", "category", "typmod", "expected"),
    [
        ("int2", "b", "N", -1, pa.int16()),
        ("int8", "b", "N", -1, pa.int64()),
        ("numeric", "b", "N", _pg_numeric(15, 2), pa.decimal128(15, 2)),
        ("numeric", "b", "N", 983046, pa.decimal128(15, 2)),  # as ADBC reports numeric(15,2)
        ("numeric", "b", "N", _pg_numeric(38, 0), pa.decimal128(38, 0)),
        ("numeric", "b", "N", _pg_numeric(39, 10), pa.decimal256(39, 10)),
        ("numeric", "b", "N", _pg_numeric(5, -2), pa.decimal128(5, -2)),
        ("bpchar", "b", "S", 8, pa.string()),
        ("timestamptz", "b", "D", -1, pa.timestamp("us", tz="UTC")),
        ("timestamp", "b", "D", -1, pa.timestamp("us")),
        ("jsonb", "b", "U", -1, pa.string()),
        ("mood", "e", "E", -1, pa.string()),
    ],
)
def test_postgres(
    typname: str, typtype: str, category: str, typmod: int, expected: pa.DataType
) -> None:
    assert postgres.arrow_type(typname, typtype, category, typmod) == (expected, "")


@pytest.mark.parametrize(
    ("typname", "category", "typmod", "hint"),
    [
        ("numeric", "N", -1, "declare its precision and scale"),
        ("numeric", "N", _pg_numeric(100, 2), "cast it to a numeric of at most 76 digits"),
        ("_int4", "A", -1, "cast it to text or json"),
        ("point", "G", -1, ""),
        ("interval", "T", -1, "cast it to text or to seconds"),
        ("money", "N", -1, "cast it to numeric(p,2)"),
    ],
)
def test_postgres_not_carried(typname: str, category: str, typmod: int, hint: str) -> None:
    carried, got = postgres.arrow_type(typname, "b", category, typmod)
    assert carried is None
    assert got.startswith(hint)


@pytest.mark.parametrize(
    ("data_type", "column_type", "precision", "scale", "expected"),
    [
        ("tinyint", "tinyint(1)", 3, 0, pa.bool_()),
        ("tinyint", "tinyint(4)", 3, 0, pa.int8()),
        ("tinyint", "tinyint(1) unsigned", 3, 0, pa.uint8()),
        ("int", "int(10) unsigned", 10, 0, pa.uint32()),
        ("bigint", "bigint(20) unsigned", 20, 0, pa.uint64()),
        ("decimal", "decimal(15,2)", 15, 2, pa.decimal128(15, 2)),
        ("decimal", "decimal(65,30)", 65, 30, pa.decimal256(65, 30)),
        ("bit", "bit(1)", 1, None, pa.bool_()),
        ("timestamp", "timestamp(6)", None, None, pa.timestamp("us", tz="UTC")),
        ("datetime", "datetime", None, None, pa.timestamp("us")),
        ("longtext", "longtext", None, None, pa.string()),
        ("YEAR", "year(4)", None, None, pa.int16()),
    ],
)
def test_mysql(
    data_type: str, column_type: str, precision: int, scale: int, expected: pa.DataType
) -> None:
    assert mysql.arrow_type(data_type, column_type, precision, scale) == (expected, "")


@pytest.mark.parametrize("data_type", ["set", "bit", "geometry", "point"])
def test_mysql_not_carried(data_type: str) -> None:
    column_type = "bit(8)" if data_type == "bit" else data_type
    assert mysql.arrow_type(data_type, column_type, None, None)[0] is None


@pytest.mark.parametrize(
    ("declared", "expected", "raw"),
    [
        ("INTEGER", pa.int64(), "int"),
        ("int", pa.int64(), "int"),
        ("UNSIGNED BIG INT", pa.int64(), "int"),
        ("BOOLEAN", pa.bool_(), "int"),
        ("double  precision", pa.float64(), "float"),
        ("NUMERIC(15, 2)", pa.decimal128(15, 2), "text"),
        ("DECIMAL(40,2)", pa.decimal256(40, 2), "text"),
        ("VARCHAR(20)", pa.string(), "text"),
        ("CHARACTER(4)", pa.string(), "text"),
        ("BLOB", pa.binary(), "blob"),
        ("DATE", pa.date32(), "text"),
        ("DATETIME", pa.timestamp("us"), "text"),
        ("TIME", pa.time64("us"), "time"),
    ],
)
def test_sqlite(declared: str, expected: pa.DataType, raw: str) -> None:
    assert sqlite.arrow_type(declared) == (expected, raw, "")


@pytest.mark.parametrize(
    ("declared", "hint"),
    [("", "declare its type"), ("NUMERIC", "declare its precision"), ("GEOMETRY", "")],
)
def test_sqlite_not_carried(declared: str, hint: str) -> None:
    carried, _, got = sqlite.arrow_type(declared)
    assert carried is None
    assert got.startswith(hint)
