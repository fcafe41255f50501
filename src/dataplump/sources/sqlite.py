"""SQLite source: Python's ``sqlite3`` module, read-only, ``batch_size`` rows per fetch.

SQLite runs in-process, so there is no wire to be fast on: rows come from
``cursor.fetchmany(batch_size)`` with real bound parameters (``?``) and become Arrow
arrays column by column. The database file is opened read-only (``mode=ro``) and must
exist.

SQLite has *type affinity*, not types: DataPlump goes by the declared type of each
column (``INTEGER``, ``NUMERIC(15,2)``, ``VARCHAR(20)``, ``DATETIME``, ...) and refuses
a column whose stored value does not fit it, naming the column. Dates and times are
ISO-8601 text (as SQLAlchemy and ``CURRENT_TIMESTAMP`` write them). Because text is
compared as text, a timestamp cursor is ordered and compared in a normalised form,
``YYYY-MM-DD HH:MM:SS.ffffff``, so ``2024-05-01 12:00:00`` and
``2024-05-01T12:00:00.000000`` are the same instant; that expression cannot use an
index, so for large SQLite tables prefer an integer cursor.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataplump.sources.base import Source, SourceColumn
from dataplump.sources.errors import SourceError
from dataplump.sources.watermark import Value

__all__ = ["SQLiteSource", "arrow_type"]

RawKind = Literal["int", "float", "text", "blob", "time"]
"""How values of a column come out of ``sqlite3`` before Arrow casts them."""

_INTEGERS = {"INT", "INTEGER", "TINYINT", "SMALLINT", "MEDIUMINT", "BIGINT", "INT2", "INT8"}
_INTEGERS |= {"UNSIGNED BIG INT"}
_FLOATS = {"REAL", "DOUBLE", "DOUBLE PRECISION", "FLOAT"}
_FIXED_CHARS = {"CHAR", "CHARACTER", "NCHAR", "NATIVE CHARACTER"}
_TEXTS = {"VARCHAR", "VARYING CHARACTER", "NVARCHAR", "TEXT", "CLOB", "STRING", "JSON"}
_TEXTS |= {"TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "UUID", "ENUM"}
_DECLARED = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")
_SECONDS = re.compile(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


def arrow_type(declared: str) -> tuple[pa.DataType | None, RawKind, str]:
    """Arrow type and raw kind for a SQLite declared type, or ``(None, _, hint)``."""
    found = _DECLARED.match(declared or "")
    if not found:
        hint = "declare its type (e.g. INTEGER, TEXT, NUMERIC(15,2), DATETIME)"
        return None, "text", hint if not declared.strip() else ""
    name = " ".join(found.group(1).upper().split())
    precision, scale = found.group(2), found.group(3)
    if name in ("BOOLEAN", "BOOL"):
        return pa.bool_(), "int", ""
    if name in _INTEGERS:
        return pa.int64(), "int", ""
    if name in _FLOATS:
        return pa.float64(), "float", ""
    if name in ("NUMERIC", "DECIMAL"):
        if precision is None:
            return None, "text", "declare its precision and scale, e.g. NUMERIC(15,2)"
        p, s = int(precision), int(scale or 0)
        if not 1 <= p <= 76 or s > p:
            return None, "text", "declare a precision of 1 to 76 digits"
        return (pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)), "text", ""
    if name in _FIXED_CHARS or name in _TEXTS:
        return pa.string(), "text", ""
    if name in ("BLOB", "BINARY", "VARBINARY"):
        return pa.binary(), "blob", ""
    if name == "DATE":
        return pa.date32(), "text", ""
    if name in ("DATETIME", "TIMESTAMP"):
        return pa.timestamp("us"), "text", ""
    if name == "TIME":
        return pa.time64("us"), "time", ""
    return None, "text", ""


def _normalised_timestamp(column_sql: str) -> str:
    """SQL turning ISO-8601 text into ``YYYY-MM-DD HH:MM:SS.ffffff`` (same instant, same text)."""
    c = f"replace({column_sql}, 'T', ' ')"
    return f"substr(CASE WHEN length({c}) = 19 THEN {c} || '.' ELSE {c} END || '000000', 1, 26)"


def _text(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_value(value: Value) -> Any:
    """``value`` as sqlite3 binds it against the column's stored form."""
    if isinstance(value, datetime):
        return _text(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


class SQLiteSource(Source):
    """A SQLite table or view (see the module docstring for how it is read)."""

    database = "SQLite"
    drivername = "sqlite"
    row_values = True  # SQLite >= 3.15
    driver_errors = (sqlite3.Error,)

    def _engine_args(self) -> dict[str, Any]:
        database = self.url.database
        if not database or database == ":memory:":
            raise SourceError(
                "`source.url` names an in-memory SQLite database, which has no tables to"
                " read: give a file, e.g. `sqlite:///demo.db`",
                table=self.table,
            )
        path = Path(database)
        if not path.is_file():
            raise SourceError(
                f"SQLite database file `{path}` does not exist: check `source.url` (relative"
                " paths start at the working directory)",
                table=self.table,
            )
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, check_same_thread=False)

        return {"creator": connect}

    def _load_columns(self, conn: Connection, schema: str | None) -> list[SourceColumn]:
        rows = conn.execute(
            sa.text(
                'SELECT name, type, "notnull", pk FROM pragma_table_xinfo(:table, :schema)'
                " WHERE hidden != 1 ORDER BY cid"
            ),
            {"table": self.table, "schema": schema or "main"},
        ).all()
        self._raw: list[RawKind] = []
        columns = []
        for name, declared, notnull, pk in rows:
            carried, raw, hint = arrow_type(declared or "")
            self._raw.append(raw)
            fixed = (_DECLARED.match(declared or "") or [None, ""])[1] or ""
            columns.append(
                SourceColumn(
                    name=name,
                    db_type=declared or "(no type)",
                    arrow_type=carried,
                    nullable=not notnull and not (pk and (declared or "").upper() == "INTEGER"),
                    pad=" ".join(fixed.upper().split()) in _FIXED_CHARS,
                    hint=hint,
                )
            )
        return columns

    def _select_expression(self, column: SourceColumn) -> str:
        name = self._quote(column.name)
        if column.arrow_type is not None and pa.types.is_decimal(column.arrow_type):
            return f"CAST({name} AS TEXT) AS {name}"
        return name

    def _order_expression(self, column: SourceColumn) -> str:
        name = self._quote(column.name)
        if column.arrow_type is not None and pa.types.is_timestamp(column.arrow_type):
            return _normalised_timestamp(name)
        return name

    def _clock(self, conn: Connection) -> tuple[datetime, datetime]:
        """SQLite's clock is the machine's; ``CURRENT_TIMESTAMP`` is UTC, so local is UTC."""
        text = conn.execute(sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        now = datetime.fromisoformat(text)
        return now.replace(tzinfo=UTC), now

    def _aux_value(self, column: SourceColumn, value: Value) -> Any:
        return _sqlite_value(value)

    def _placeholder(self, column: SourceColumn, value: Value, params: list[Any]) -> str:
        params.append(_sqlite_value(value))
        return "?"

    def _stream(self, sql: str, params: list[Any]) -> Iterator[pa.RecordBatch]:
        conn = self._engine.raw_connection()
        try:
            cursor = conn.cursor()
            cursor.execute(sql, params)
            names = [c.name for c in self.columns]
            while rows := cursor.fetchmany(self.config.batch_size):
                arrays = [
                    self._array(column, raw, values)
                    for column, raw, values in zip(
                        self.columns, self._raw, zip(*rows, strict=True), strict=True
                    )
                ]
                yield pa.RecordBatch.from_arrays(arrays, names=names)
        finally:
            conn.close()

    def _array(self, column: SourceColumn, raw: RawKind, values: tuple[Any, ...]) -> pa.Array:
        try:
            if raw == "time":
                return pa.array(
                    [None if v is None else time.fromisoformat(v) for v in values], pa.time64("us")
                )
            kind = {"int": pa.int64(), "float": pa.float64(), "text": pa.string()}.get(
                raw, pa.binary()
            )
            if column.arrow_type is not None and pa.types.is_timestamp(column.arrow_type):
                return pa.array(
                    [None if v is None else _timestamp_text(v) for v in values], pa.string()
                )
            return pa.array(values, kind)
        except (pa.ArrowException, TypeError, ValueError) as exc:
            bad = next((v for v in values if v is not None and not _fits_raw(raw, v)), None)
            shown = repr(bad) if bad is not None else "a value"
            raise SourceError(
                f"column `{column.name}` of `{self.table}` ({column.db_type}) holds {shown},"
                f" which is not {column.arrow_type} ({type(exc).__name__}: {exc}); fix the"
                " value or cast the column in a view",
                table=self.table,
            ) from None


def _timestamp_text(value: Any) -> str:
    """ISO-8601 text Arrow can parse: ``T`` or space separator, no zone suffix."""
    if not isinstance(value, str) or not _SECONDS.match(value):
        raise ValueError(f"expected ISO-8601 text like 2024-05-01 12:00:00, got {value!r}")
    return value


def _fits_raw(raw: RawKind, value: Any) -> bool:
    if raw == "int":
        return isinstance(value, int)
    if raw == "float":
        return isinstance(value, int | float)
    if raw == "blob":
        return isinstance(value, bytes)
    if raw == "time":
        try:
            time.fromisoformat(value)
        except (TypeError, ValueError):
            return False
        return True
    return isinstance(value, str)
