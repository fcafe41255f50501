"""Store Arrow tables in the shop database, fast, with each database's bulk path.

| database | path |
|---|---|
| SQLite | ``executemany`` of tuples on the ``sqlite3`` connection (in-process: no wire) |
| PostgreSQL (psycopg 3) | ``COPY ... FROM STDIN (FORMAT csv)`` fed by Arrow's CSV writer |
| MariaDB / MySQL, others | ``executemany``; PyMySQL turns it into multi-row ``INSERT``\\ s |

Timestamps, dates and decimals are turned into ISO / plain text by Arrow (vectorized)
before they reach a driver, so every database parses the same text and no Python
``datetime`` or ``Decimal`` is built per value.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

__all__ = ["CHUNK_ROWS", "insert_rows", "update_rows"]

CHUNK_ROWS = 20_000
"""Rows per driver call (bounds the Python objects alive at once)."""


def _as_text(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind) or pa.types.is_decimal(kind):
        return pc.cast(column, pa.string())  # 2024-05-01 10:00:00.250000, 2024-05-01, 12.50
    return column


def _tuples(table: pa.Table) -> Iterator[list[tuple[Any, ...]]]:
    for start in range(0, table.num_rows, CHUNK_ROWS):
        chunk = table.slice(start, CHUNK_ROWS)
        columns = [_as_text(chunk.column(i)).to_pylist() for i in range(chunk.num_columns)]
        yield list(zip(*columns, strict=True))


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def insert_rows(conn: sa.Connection, name: str, table: pa.Table) -> None:
    """Insert every row of ``table`` into table ``name`` (columns by name), in ``conn``'s
    transaction. Driver errors leave as ``sqlalchemy.exc.SQLAlchemyError``."""
    if table.num_rows == 0:
        return
    columns = ", ".join(_quote(conn, c) for c in table.column_names)
    target = f"{_quote(conn, name)} ({columns})"
    raw = conn.connection.driver_connection
    if conn.dialect.name == "postgresql" and _is_psycopg(raw):
        _copy_csv(raw, target, table)
        return
    if conn.dialect.name in ("mysql", "mariadb"):
        _insert_literals(conn, target, table)
        return
    marks = ", ".join(["?" if conn.dialect.paramstyle == "qmark" else "%s"] * table.num_columns)
    sql = f"INSERT INTO {target} VALUES ({marks})"  # noqa: S608 - names are the shop's own
    for rows in _tuples(table):
        conn.exec_driver_sql(sql, rows)


def _literal(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """MySQL literals of a column: numbers as digits, text quoted and escaped, NULL."""
    if pa.types.is_integer(column.type):
        text = pc.cast(column, pa.string())
    else:
        text = _as_text(column)
        for old, new in (("\\", "\\\\"), ("'", "\\'"), ("\x00", "\\0")):
            text = pc.replace_substring(text, old, new)
        text = pc.binary_join_element_wise("'", text, "'", "")
    return pc.fill_null(text, "NULL")


def _insert_literals(conn: sa.Connection, target: str, table: pa.Table) -> None:
    """One multi-row ``INSERT`` per chunk, its text built by Arrow (MariaDB / MySQL):
    PyMySQL's ``executemany`` escapes each value in Python, twice as slow."""
    literals = [_literal(table.column(i)) for i in range(table.num_columns)]
    rows = pc.binary_join_element_wise("(", pc.binary_join_element_wise(*literals, ", "), ")", "")
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor:
        for start in range(0, len(rows), CHUNK_ROWS):
            values = ", ".join(rows.slice(start, CHUNK_ROWS).to_pylist())
            cursor.execute(f"INSERT INTO {target} VALUES {values}")  # noqa: S608


def _is_psycopg(raw: Any) -> bool:
    return type(raw).__module__.split(".")[0] == "psycopg"  # psycopg 3 (not psycopg2)


def _copy_csv(raw: Any, target: str, table: pa.Table) -> None:
    text = pa.table({c: _as_text(table.column(c)) for c in table.column_names})
    with raw.cursor() as cursor:
        for start in range(0, text.num_rows, 5 * CHUNK_ROWS):
            buffer = io.BytesIO()
            pacsv.write_csv(
                text.slice(start, 5 * CHUNK_ROWS),
                buffer,
                pacsv.WriteOptions(include_header=False, quoting_style="needed"),
            )
            with cursor.copy(f"COPY {target} FROM STDIN (FORMAT csv)") as copy:
                copy.write(buffer.getvalue())


def update_rows(
    conn: sa.Connection, name: str, key: str, columns: Sequence[str], table: pa.Table
) -> None:
    """``UPDATE name SET columns... WHERE key = ...`` for each row of ``table``
    (``executemany``)."""
    if table.num_rows == 0:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sets = ", ".join(f"{_quote(conn, c)} = {mark}" for c in columns)
    sql = f"UPDATE {_quote(conn, name)} SET {sets} WHERE {_quote(conn, key)} = {mark}"  # noqa: S608
    for rows in _tuples(table.select([*columns, key])):
        conn.exec_driver_sql(sql, rows)
