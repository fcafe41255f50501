"""MySQL and MariaDB source: one streamed ConnectorX query, values as typed literals.

The data query runs through ConnectorX's ``arrow_stream`` reader (Rust, binary
protocol), which yields Arrow record batches of ``batch_size`` rows as the server sends
them, with the session switched to UTC first (``SET time_zone = '+00:00'``) so
``TIMESTAMP`` values arrive as UTC instants and compare against UTC watermarks.

Measured with ``bench/source_read.py --database mariadb`` (1,000,000 rows x 10 columns,
MariaDB 10.11 on the same shared 2-CPU VM, median of 3 runs, peak RSS over the 191 MB of
the interpreter with all libraries imported)::

    candidate                                        rows/s   peak RSS   Arrow types
    this source (ConnectorX arrow_stream, 10k rows)  636,213  +25 MB     as declared
    ConnectorX, whole table                          573,834  +137 MB    decimal128(38,10)
    PyMySQL unbuffered cursor -> Python rows          40,571  +22 MB     as declared

A ``batch_size`` well under 10,000 slows ConnectorX's stream down (about 2.5x at 1,000).

ConnectorX takes no bind parameters, so the watermark values are written into the SQL
as literals built from their Python types, never from text a user typed: numbers from
``int``/``Decimal`` (digits only), times as ``TIMESTAMP'2024-05-01 12:00:00.000000'``
from ``datetime`` fields, strings and bytes **hex-encoded** (``_utf8mb4 X'616263'``,
``X'00ff'``), so no value can close a literal or change the statement. (PyMySQL, the
usual driver, "binds" by escaping values into the SQL text client-side too; hex is the
stricter of the two.)

MariaDB and MySQL do not use an index for a row-value comparison ``(a, b) > (x, y)``,
so it is expanded to ``a >= x AND (a > x OR (a = x AND b > y))``.

Catalog queries (``information_schema``, the primary key, ``NOW()``) go through
SQLAlchemy with PyMySQL, whatever driver the URL names.

Type decisions: ``TINYINT(1)`` and ``BIT(1)`` are booleans (as MySQL's own JDBC driver
reads them); ``DECIMAL`` is selected as text and cast to ``decimal128(p, s)`` (ConnectorX
would round it through ``decimal128(38, 10)``); ``ENUM`` is text but cannot be a key or
cursor (MySQL sorts it by position and compares it as text); ``SET``, ``BIT(n>1)`` and
spatial types are not carried.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataplump.sources.base import Source, SourceColumn
from dataplump.sources.errors import wrap_error
from dataplump.sources.watermark import Value

__all__ = ["MySQLSource", "arrow_type", "literal"]

CONNECT_TIMEOUT_SECONDS = 10

_INTEGERS = {
    "tinyint": (pa.int8(), pa.uint8()),
    "smallint": (pa.int16(), pa.uint16()),
    "mediumint": (pa.int32(), pa.uint32()),
    "int": (pa.int32(), pa.uint32()),
    "integer": (pa.int32(), pa.uint32()),
    "bigint": (pa.int64(), pa.uint64()),
}
_TYPES: dict[str, pa.DataType] = {
    "float": pa.float32(),
    "double": pa.float64(),
    "real": pa.float64(),
    "char": pa.string(),
    "varchar": pa.string(),
    "tinytext": pa.string(),
    "text": pa.string(),
    "mediumtext": pa.string(),
    "longtext": pa.string(),
    "json": pa.string(),
    "enum": pa.string(),
    "binary": pa.binary(),
    "varbinary": pa.binary(),
    "tinyblob": pa.binary(),
    "blob": pa.binary(),
    "mediumblob": pa.binary(),
    "longblob": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "datetime": pa.timestamp("us"),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "year": pa.int16(),
}
_HINTS = {
    "set": "cast it to CHAR in a view (a comma-separated list) or drop it",
    "bit": "cast it to UNSIGNED in a view or drop it",
}

_COLUMNS_SQL = sa.text(
    """
    SELECT column_name, data_type, column_type, numeric_precision, numeric_scale, is_nullable
    FROM information_schema.columns
    WHERE table_schema = COALESCE(:schema, DATABASE()) AND table_name = :table
    ORDER BY ordinal_position
    """
)


def arrow_type(
    data_type: str, column_type: str, precision: int | None, scale: int | None
) -> tuple[pa.DataType | None, str]:
    """Arrow type for a MySQL/MariaDB column, or ``(None, hint)`` if not carried."""
    data_type, column_type = data_type.lower(), column_type.lower()
    if data_type in _INTEGERS:
        if (
            data_type == "tinyint"
            and column_type.startswith("tinyint(1)")
            and ("unsigned" not in column_type)
        ):
            return pa.bool_(), ""
        signed, unsigned = _INTEGERS[data_type]
        return (unsigned if "unsigned" in column_type else signed), ""
    if data_type in ("decimal", "numeric"):
        p, s = precision or 10, scale or 0
        return (pa.decimal128(p, s) if p <= 38 else pa.decimal256(p, s)), ""
    if data_type == "bit":
        return (pa.bool_(), "") if column_type == "bit(1)" else (None, _HINTS["bit"])
    found = _TYPES.get(data_type)
    return (found, "") if found is not None else (None, _HINTS.get(data_type, ""))


def literal(value: Value) -> str:
    """``value`` as a MySQL literal built from its type: digits, fixed formats or hex.

    >>> literal("it's")
    "_utf8mb4 X'69742773'"
    >>> literal(datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    "TIMESTAMP'2024-05-01 12:00:00.000000'"
    """
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot compare with {value}")
        return format(value, "f")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot compare with {value}")
        return repr(float(value))
    if isinstance(value, str):
        return f"_utf8mb4 X'{value.encode('utf-8').hex()}'"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, datetime):
        if value.tzinfo is not None:  # TIMESTAMP columns: the session is in UTC
            value = value.astimezone(UTC).replace(tzinfo=None)
        return f"TIMESTAMP'{value.strftime('%Y-%m-%d %H:%M:%S.%f')}'"
    if isinstance(value, date):
        return f"DATE'{value.strftime('%Y-%m-%d')}'"
    if isinstance(value, time):
        return f"TIME'{value.strftime('%H:%M:%S.%f')}'"
    raise TypeError(f"cannot write a {type(value).__name__} as a MySQL literal")


class MySQLSource(Source):
    """A MySQL or MariaDB table or view (see the module docstring for how it is read)."""

    database = "MySQL/MariaDB"
    drivername = "mysql+pymysql"
    extra = "mysql"
    row_values = False
    # ConnectorX reports server and connection errors as RuntimeError.
    driver_errors = (RuntimeError,)

    def _engine_args(self) -> dict[str, Any]:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS}}

    def _load_columns(self, conn: Connection, schema: str | None) -> list[SourceColumn]:
        rows = conn.execute(_COLUMNS_SQL, {"table": self.table, "schema": schema}).all()
        self._selects: dict[str, str] = {}
        columns = []
        for name, data_type, column_type, precision, scale, nullable in rows:
            carried, hint = arrow_type(data_type, column_type, precision, scale)
            quoted = self._quote(name)
            if data_type.lower() in ("decimal", "numeric"):
                self._selects[name] = f"CAST({quoted} AS CHAR) AS {quoted}"
            elif data_type.lower() == "bit":
                self._selects[name] = f"CAST({quoted} AS UNSIGNED) AS {quoted}"
            columns.append(
                SourceColumn(
                    name=name,
                    db_type=column_type,
                    arrow_type=carried,
                    nullable=nullable == "YES",
                    pad=data_type.lower() == "char",
                    orderable=data_type.lower() not in ("enum", "json"),
                    hint=hint,
                )
            )
        return columns

    def _select_expression(self, column: SourceColumn) -> str:
        return self._selects.get(column.name) or self._quote(column.name)

    def _clock(self, conn: Connection) -> tuple[datetime, datetime]:
        """Now in UTC and in the server's time zone; then switches the session to UTC."""
        utc, local = conn.execute(sa.text("SELECT UTC_TIMESTAMP(6), NOW(6)")).one()
        conn.execute(sa.text("SET time_zone = '+00:00'"))
        return utc.replace(tzinfo=UTC), local

    def _aux_value(self, column: SourceColumn, value: Value) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def _placeholder(self, column: SourceColumn, value: Value, params: list[Any]) -> str:
        return literal(value)

    def _connectorx_url(self) -> str:
        url = self.url.set(drivername="mysql", query={})
        return url.render_as_string(hide_password=False)

    def _stream(self, sql: str, params: list[Any]) -> Iterator[pa.RecordBatch]:
        import connectorx

        try:
            reader = connectorx.read_sql(
                self._connectorx_url(),
                sql,
                return_type="arrow_stream",
                batch_size=self.config.batch_size,
                pre_execution_query=["SET time_zone = '+00:00'"],
            )
            yield from reader
        except BaseException as exc:
            # A Rust panic in ConnectorX surfaces as pyo3's PanicException (a BaseException).
            if type(exc).__name__ == "PanicException":
                raise wrap_error(
                    RuntimeError(f"ConnectorX: {exc}"),
                    action=f"reading `{self.table}`",
                    url=self.url,
                    table=self.table,
                ) from None
            raise
