"""Every carried type round-trips with its exact Arrow type; decimals stay Decimal."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa

from dataplump.sources import SourceError
from tests.integration.sources.conftest import Db, read_all

# (column, SQL type, SQL literal, Arrow type, value read back)
PG_TYPES: list[tuple[str, str, str, pa.DataType, Any]] = [
    ("b", "boolean", "true", pa.bool_(), True),
    ("i2", "smallint", "-32768", pa.int16(), -32768),
    ("i4", "integer", "2147483647", pa.int32(), 2147483647),
    ("i8", "bigint", "-9223372036854775808", pa.int64(), -9223372036854775808),
    ("f4", "real", "1.5", pa.float32(), 1.5),
    ("f8", "double precision", "0.1", pa.float64(), 0.1),
    ("money", "numeric(15,2)", "1234567890123.45", pa.decimal128(15, 2),
     Decimal("1234567890123.45")),
    ("neg", "numeric(15,2)", "-0.10", pa.decimal128(15, 2), Decimal("-0.10")),
    ("big", "numeric(40,10)", "123456789012345678901234567890.0123456789",
     pa.decimal256(40, 10), Decimal("123456789012345678901234567890.0123456789")),
    ("dom", "amount", "7.5", pa.decimal128(12, 3), Decimal("7.500")),
    ("t", "text", "'héllo, ''world''\n'", pa.string(), "héllo, 'world'\n"),
    ("vc", "varchar(5)", "'ab  '", pa.string(), "ab  "),
    ("ch", "char(4)", "'ab'", pa.string(), "ab"),
    ("d", "date", "'2024-02-29'", pa.date32(), date(2024, 2, 29)),
    ("tm", "time", "'23:59:59.999999'", pa.time64("us"), time(23, 59, 59, 999999)),
    ("ts", "timestamp", "'2024-01-02 03:04:05.123456'", pa.timestamp("us"),
     datetime(2024, 1, 2, 3, 4, 5, 123456)),
    ("tz", "timestamptz", "'2024-01-02 03:04:05.123456+02'", pa.timestamp("us", tz="UTC"),
     datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=UTC)),
    ("j", "json", """'{"b": 1,  "a": [1, 2]}'""", pa.string(), '{"b": 1,  "a": [1, 2]}'),
    ("jb", "jsonb", """'{"b": 1,  "a": [1, 2]}'""", pa.string(), '{"a": [1, 2], "b": 1}'),
    ("by", "bytea", "'\\x00ff10'", pa.binary(), b"\x00\xff\x10"),
    ("u", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", pa.string(),
     "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("e", "mood", "'happy'", pa.string(), "happy"),
]  # fmt: skip

MARIADB_TYPES: list[tuple[str, str, str, pa.DataType, Any]] = [
    ("b", "boolean", "true", pa.bool_(), True),
    ("bit1", "bit(1)", "1", pa.bool_(), True),
    ("ti", "tinyint", "-128", pa.int8(), -128),
    ("tiu", "tinyint unsigned", "255", pa.uint8(), 255),
    ("si", "smallint", "-32768", pa.int16(), -32768),
    ("mi", "mediumint", "-8388608", pa.int32(), -8388608),
    ("i", "int", "-2147483648", pa.int32(), -2147483648),
    ("iu", "int unsigned", "4294967295", pa.uint32(), 4294967295),
    ("bi", "bigint", "-9223372036854775808", pa.int64(), -9223372036854775808),
    ("biu", "bigint unsigned", "18446744073709551615", pa.uint64(), 18446744073709551615),
    ("f", "float", "1.5", pa.float32(), 1.5),
    ("d", "double", "0.1", pa.float64(), 0.1),
    ("money", "decimal(15,2)", "1234567890123.45", pa.decimal128(15, 2),
     Decimal("1234567890123.45")),
    ("big", "decimal(40,20)", "12345678901234567890.12345678901234567890",
     pa.decimal256(40, 20), Decimal("12345678901234567890.12345678901234567890")),
    ("ch", "char(4)", "'ab'", pa.string(), "ab"),
    ("vc", "varchar(5)", "'ab  '", pa.string(), "ab  "),
    ("t", "text", "'héllo, ''world''\\n'", pa.string(), "héllo, 'world'\n"),
    ("j", "json", """'{"a": [1, 2]}'""", pa.string(), '{"a": [1, 2]}'),
    ("e", "enum('sad','happy')", "'happy'", pa.string(), "happy"),
    ("bn", "binary(3)", "x'00ff'", pa.binary(), b"\x00\xff\x00"),
    ("vb", "varbinary(5)", "x'00ff10'", pa.binary(), b"\x00\xff\x10"),
    ("bl", "blob", "x'0001'", pa.binary(), b"\x00\x01"),
    ("dt", "date", "'2024-02-29'", pa.date32(), date(2024, 2, 29)),
    ("tm", "time(6)", "'23:59:59.999999'", pa.time64("us"), time(23, 59, 59, 999999)),
    ("ts", "datetime(6)", "'2024-01-02 03:04:05.123456'", pa.timestamp("us"),
     datetime(2024, 1, 2, 3, 4, 5, 123456)),
    ("tz", "timestamp(6) null", "'2024-01-02 03:04:05.123456'", pa.timestamp("us", tz="UTC"),
     datetime(2024, 1, 1, 22, 4, 5, 123456, tzinfo=UTC)),  # written at +05:00
    ("yr", "year", "2024", pa.int16(), 2024),
]  # fmt: skip

SQLITE_TYPES: list[tuple[str, str, str, pa.DataType, Any]] = [
    ("b", "BOOLEAN", "1", pa.bool_(), True),
    ("i", "INTEGER", "-9223372036854775808", pa.int64(), -9223372036854775808),
    ("bi", "BIGINT", "42", pa.int64(), 42),
    ("f", "REAL", "0.1", pa.float64(), 0.1),
    ("money", "NUMERIC(15,2)", "'1234567890123.45'", pa.decimal128(15, 2),
     Decimal("1234567890123.45")),
    ("cents", "DECIMAL(10,2)", "0.1", pa.decimal128(10, 2), Decimal("0.10")),
    ("ch", "CHAR(4)", "'ab  '", pa.string(), "ab"),
    ("vc", "VARCHAR(5)", "'ab  '", pa.string(), "ab  "),
    ("t", "TEXT", "'héllo, ''world''\n'", pa.string(), "héllo, 'world'\n"),
    ("j", "JSON", """'{"a": [1, 2]}'""", pa.string(), '{"a": [1, 2]}'),
    ("bl", "BLOB", "x'00ff10'", pa.binary(), b"\x00\xff\x10"),
    ("d", "DATE", "'2024-02-29'", pa.date32(), date(2024, 2, 29)),
    ("tm", "TIME", "'23:59:59.999999'", pa.time64("us"), time(23, 59, 59, 999999)),
    ("ts", "DATETIME", "'2024-01-02 03:04:05.123456'", pa.timestamp("us"),
     datetime(2024, 1, 2, 3, 4, 5, 123456)),
    ("ts2", "TIMESTAMP", "'2024-01-02T03:04:05'", pa.timestamp("us"),
     datetime(2024, 1, 2, 3, 4, 5)),
]  # fmt: skip

TYPES = {"postgres": PG_TYPES, "mariadb": MARIADB_TYPES, "sqlite": SQLITE_TYPES}


def _create(db: Db) -> list[tuple[str, str, str, pa.DataType, Any]]:
    types = TYPES[db.kind]
    setup = []
    if db.kind == "postgres":
        setup = [
            "CREATE TYPE mood AS ENUM ('sad', 'happy')",
            "CREATE DOMAIN amount AS numeric(12,3) CHECK (VALUE >= 0)",
        ]
    columns = ", ".join(f"{db.q(name)} {sql_type}" for name, sql_type, *_ in types)
    names = ", ".join(db.q(name) for name, *_ in types)
    literals = ", ".join(literal for _, _, literal, *_ in types)
    nulls = ", ".join("NULL" for _ in types)
    statements = [*setup, f"CREATE TABLE alltypes (id INTEGER NOT NULL PRIMARY KEY, {columns})"]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement))
        if db.kind == "mariadb":  # TIMESTAMP written in another zone is read as UTC
            conn.execute(sa.text("SET time_zone = '+05:00'"))
        for values in (f"1, {literals}", f"2, {nulls}"):
            conn.execute(sa.text(f"INSERT INTO alltypes (id, {names}) VALUES ({values})"))  # noqa: S608
    return types


def test_every_type_round_trips(db: Db) -> None:
    types = _create(db)
    with db.open("alltypes", primary_key="id") as source:
        expected_schema = {name: arrow for name, _, _, arrow, _ in types}
        for name, arrow in expected_schema.items():
            assert source.schema.field(name).type == arrow, name
        table, _ = read_all(source)
    assert table.num_rows == 2
    row, nulls = table.slice(0, 1).to_pylist()[0], table.slice(1, 1).to_pylist()[0]
    for name, _, _, arrow, value in types:
        assert table.schema.field(name).type == arrow, name
        assert row[name] == value, name
        assert type(row[name]) is type(value), name
        assert nulls[name] is None, name


def test_types_are_declared_for_an_empty_table(db: Db) -> None:
    types = _create(db)
    db.run("DELETE FROM alltypes")
    with db.open("alltypes", primary_key="id") as source:
        table, _ = read_all(source)
    assert table.num_rows == 0
    assert [f.type for f in table.schema][1:] == [arrow for _, _, _, arrow, _ in types]
    assert table.schema.field("id").metadata == {b"dataplump.db_type": _int_name(db)}


def _int_name(db: Db) -> bytes:
    return {"postgres": b"integer", "mariadb": b"int(11)", "sqlite": b"INTEGER"}[db.kind]


UNSUPPORTED = {
    "postgres": [("p", "point"), ("arr", "integer[]"), ("iv", "interval"), ("n", "numeric")],
    "mariadb": [("s", "set('a','b')"), ("g", "point"), ("bits", "bit(8)")],
    "sqlite": [("x", ""), ("n", "NUMERIC")],
}


def test_a_type_dataplump_cannot_carry_is_named(db: Db) -> None:
    bad = UNSUPPORTED[db.kind]
    columns = ", ".join(f"{db.q(name)} {sql_type}" for name, sql_type in bad)
    db.run(f"CREATE TABLE shapes (id INTEGER NOT NULL PRIMARY KEY, {columns})")
    with pytest.raises(SourceError) as caught:
        db.open("shapes", primary_key="id")
    message = str(caught.value)
    first_name, first_type = bad[0]
    shown = {"": "(no type)", "set('a','b')": "set('a','b')"}.get(first_type, first_type)
    assert message.startswith(
        f"column `{first_name}` of `shapes` has type `{shown}`, which DataPlump cannot carry: "
    )
    for name, _ in bad[1:]:
        assert f"`{name}`" in message
    assert "\n" not in message


def test_postgres_nan_in_a_numeric_column_is_refused_by_name(postgres_url: str) -> None:
    db = Db("postgres", postgres_url)
    db.run(
        "CREATE TABLE prices (id integer PRIMARY KEY, price numeric(10,2))",
        "INSERT INTO prices VALUES (1, 1.5), (2, 'NaN')",
    )
    with db.open("prices", primary_key="id") as source, pytest.raises(SourceError) as caught:
        read_all(source)
    assert str(caught.value).startswith("column `price` of `prices` (numeric(10,2)) holds a value")
    assert "NaN" in str(caught.value)
    db.engine.dispose()


def test_sqlite_value_that_does_not_fit_its_declared_type_is_named(sqlite_url: str) -> None:
    db = Db("sqlite", sqlite_url)
    db.run(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, qty INTEGER)",
        "INSERT INTO t VALUES (1, 5), (2, 'many')",
    )
    with db.open("t", primary_key="id") as source, pytest.raises(SourceError) as caught:
        read_all(source)
    assert str(caught.value).startswith("column `qty` of `t` (INTEGER) holds 'many'")
