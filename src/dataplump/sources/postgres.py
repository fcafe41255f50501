"""PostgreSQL source: ADBC streaming ``COPY ... TO STDOUT (FORMAT binary)``, bound values.

The data query runs through the ADBC PostgreSQL driver, which wraps it in
``COPY (<query>) TO STDOUT (FORMAT binary)`` and decodes the stream into Arrow record
batches of about 4 MiB as they arrive (re-cut to ``batch_size`` rows by the base), so
memory stays flat however large the table.
ADBC streams only queries *without* bind parameters (with parameters it materialises
the whole result as one batch), so watermark values are bound to session settings
first, in a statement of their own with real parameters::

    SELECT set_config('dataplump.p0', $1, false), set_config('dataplump.p1', $2, false)

and the query reads them back typed as the column is::

    ... WHERE ("updated_at", "id") > (CAST(current_setting('dataplump.p0') AS timestamp with
    time zone), CAST(current_setting('dataplump.p1') AS bigint)) ...

``current_setting`` is stable, so the row comparison is still an index condition on a
``(cursor, key)`` index (checked with ``EXPLAIN``).
Catalog queries (columns, primary key, ``now()``, the sample of future rows) go through
SQLAlchemy with psycopg 3, whatever driver the URL names.

NUMERIC is selected as text and cast to ``decimal128(p, s)`` by Arrow: the driver's own
NUMERIC decoding returns an opaque string type and is the slowest part of a read
(with ``numeric::text`` on the server and Arrow's cast, a read is ~1.4x faster than
ADBC's own ``SELECT *`` that does not even convert). ``CHAR(n)``, ``json``,
``jsonb``, ``uuid`` and enums are selected as text too.

Measured with ``bench/source_read.py`` (1,000,000 rows x 10 columns: ``bigint`` key,
3 more integers, 2 ``numeric(15,2)``, 2 ``text``, 2 ``timestamptz``; PostgreSQL 15 on the
same shared 2-CPU VM; each candidate in its own process; median of 3 runs; peak RSS over
the 191 MB of an interpreter with every candidate's libraries imported)::

    candidate                                       rows/s   peak RSS   Arrow types
    this source, full (COPY stream, numeric::text)  733,714  +30 MB     as declared
    this source, incremental, no index (sort)       326,949  +32 MB     as declared
    ADBC fetch_record_batch(), SELECT *             511,167  +40 MB     NUMERIC opaque string
    ConnectorX, whole table                         391,215  +133 MB    decimal128(38,10)
    ConnectorX arrow_stream (10,000 rows)           429,869  +21 MB     ints int64, (38,10)
    psycopg COPY csv -> pyarrow CSV reader          241,778  +56 MB     as declared
    psycopg COPY binary -> Python rows -> Arrow      88,640  +18 MB     as declared
    psycopg cursor -> Python rows -> Arrow          115,566  +318 MB    as declared

Peak RSS stays flat with the table size (222, 221, 224 MB at 0.2, 1 and 3 million rows)
where the plain cursor grows (271, 509, 1,107 MB). ``docs/sources.md`` has the details.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc_pg  # type: ignore[import-untyped]
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from dataplump.sources.base import Source, SourceColumn
from dataplump.sources.watermark import Value

__all__ = ["PostgresSource", "arrow_type"]

CONNECT_TIMEOUT_SECONDS = 10
BATCH_HINT_BYTES = 4 << 20
"""Size of the record batches ADBC decodes the COPY stream into (its default is 16 MiB):
peak memory is about two of these plus one output batch; 1-16 MiB read equally fast."""

# Base type name (pg_type.typname) -> Arrow type. Domains are mapped by their base type.
_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bpchar": pa.string(),
    "name": pa.string(),
    "citext": pa.string(),
    "uuid": pa.string(),
    "json": pa.string(),
    "jsonb": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}
# Selected as text: the driver would give an opaque, padded or slow-to-decode value.
_AS_TEXT = {"numeric", "bpchar", "json", "jsonb", "uuid", "citext", "name"}
_HINTS = {
    "money": "cast it to numeric(p,2) in a view or drop it",
    "timetz": "cast it to time or text in a view or drop it",
    "interval": "cast it to text or to seconds (extract(epoch from ...)) in a view or drop it",
}

_COLUMNS_SQL = sa.text(
    """
    SELECT a.attname,
           format_type(a.atttypid, a.atttypmod),
           bt.typname,
           bt.typtype,
           bt.typcategory,
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END,
           NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull))
    FROM pg_catalog.pg_attribute a
    JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
    JOIN pg_catalog.pg_type bt
      ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
    WHERE c.relname = :table AND n.nspname = COALESCE(:schema, current_schema())
      AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attnum
    """
)


def _numeric(typmod: int) -> tuple[int, int] | None:
    """(precision, scale) of a ``numeric`` typmod; ``None`` if unconstrained."""
    if typmod < 4:
        return None
    precision = ((typmod - 4) >> 16) & 0xFFFF
    scale = (typmod - 4) & 0x7FF
    if scale & 0x400:  # PostgreSQL 15+: negative scale, 11-bit two's complement
        scale -= 0x800
    return precision, scale


def arrow_type(
    typname: str, typtype: str, category: str, typmod: int
) -> tuple[pa.DataType | None, str]:
    """Arrow type for a PostgreSQL base type, or ``(None, hint)`` if not carried."""
    if category == "A":
        return None, "cast it to text or json in a view (or unnest it) or drop it"
    if typname == "numeric":
        numeric = _numeric(typmod)
        if numeric is None:
            return None, (
                "declare its precision and scale (e.g. numeric(18,2)) or cast it in a view"
                " (CAST(x AS numeric(38,10))); unconstrained numeric has no exact Arrow type"
            )
        precision, scale = numeric
        if precision <= 38:
            return pa.decimal128(precision, scale), ""
        if precision <= 76:
            return pa.decimal256(precision, scale), ""
        return None, "cast it to a numeric of at most 76 digits in a view or drop it"
    if typtype == "e":  # enum: text, ordered by the enum's order both in ORDER BY and `>`
        return pa.string(), ""
    found = _TYPES.get(typname)
    if found is None:
        return None, _HINTS.get(typname, "")
    return found, ""


def _as_text(value: Value) -> str:
    """``value`` as PostgreSQL text input for the column's type."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal | int | str):
        return str(value)
    raise TypeError(f"cannot bind {type(value).__name__}")


class PostgresSource(Source):
    """A PostgreSQL table or view (see the module docstring for how it is read)."""

    database = "PostgreSQL"
    drivername = "postgresql+psycopg"
    extra = "postgres"
    row_values = True
    driver_errors = (adbc_driver_manager.Error,)

    def _engine_args(self) -> dict[str, Any]:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS}}

    def _table_names(self, conn: Connection, schema: str | None) -> list[str]:
        inspector = sa.inspect(conn)
        names = set(super()._table_names(conn, schema))
        names.update(inspector.get_materialized_view_names(schema))
        names.update(inspector.get_foreign_table_names(schema))  # type: ignore[attr-defined]
        return sorted(names)

    def _load_columns(self, conn: Connection, schema: str | None) -> list[SourceColumn]:
        rows = conn.execute(_COLUMNS_SQL, {"table": self.table, "schema": schema}).all()
        self._sql_types: dict[str, str] = {}
        self._text: set[str] = set()
        columns = []
        for name, sql_type, typname, typtype, category, typmod, nullable in rows:
            carried, hint = arrow_type(typname, typtype, category, typmod)
            self._sql_types[name] = sql_type
            if typname in _AS_TEXT or typtype == "e":
                self._text.add(name)
            columns.append(
                SourceColumn(
                    name=name,
                    db_type=sql_type,
                    arrow_type=carried,
                    nullable=bool(nullable),
                    pad=typname == "bpchar",
                    orderable=typname != "json",
                    hint=hint,
                )
            )
        return columns

    def _select_expression(self, column: SourceColumn) -> str:
        name = self._quote(column.name)
        return f"CAST({name} AS text) AS {name}" if column.name in self._text else name

    def _clock(self, conn: Connection) -> tuple[datetime, datetime]:
        now, local = conn.execute(sa.text("SELECT now(), localtimestamp")).one()
        return now.astimezone(UTC), local

    def _placeholder(self, column: SourceColumn, value: Value, params: list[Any]) -> str:
        params.append(_as_text(value))
        setting = f"dataplump.p{len(params) - 1}"
        return f"CAST(current_setting('{setting}') AS {self._sql_types[column.name]})"

    def _adbc_uri(self) -> str:
        url = self.url.set(drivername="postgresql")
        if "connect_timeout" not in url.query:
            url = url.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT_SECONDS)})
        return url.render_as_string(hide_password=False)

    def _stream(self, sql: str, params: list[Any]) -> Iterator[pa.RecordBatch]:
        conn = adbc_pg.connect(self._adbc_uri(), autocommit=True)
        try:
            cursor = conn.cursor()
            if params:
                settings = ", ".join(
                    f"set_config('dataplump.p{i}', ${i + 1}, false)" for i in range(len(params))
                )
                cursor.execute(f"SELECT {settings}", parameters=tuple(params))
                cursor.fetchall()
            cursor.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_HINT_BYTES)}
            )
            cursor.execute(sql)
            reader = cursor.fetch_record_batch()
            yield from reader
        finally:
            conn.close()
