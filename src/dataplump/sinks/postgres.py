"""PostgreSQL warehouse sink: COPY (through a temp table to upsert), offsets, one transaction.

Each :meth:`PostgresSink.write` is **one transaction** on one psycopg connection::

    SELECT pg_advisory_xact_lock(<hash of schema.table>)      -- fence other writers
    CREATE SCHEMA / TABLE IF NOT EXISTS ...; ALTER TABLE ...   -- first batch, new columns
    SELECT topic, partition, next_offset FROM _dataplump_offsets WHERE sink_table = ...
        -- rows below these offsets are dropped (in Arrow), merge keeps the newest per key
    COPY target (...) FROM STDIN (FORMAT csv)                  -- append: Arrow's CSV writer
    -- merge: COPY into a temp table, then upsert from it
    CREATE TEMP TABLE _dp_stage (LIKE target) ON COMMIT DROP
    COPY _dp_stage (...) FROM STDIN (FORMAT csv)
    INSERT INTO target SELECT ... FROM _dp_stage ON CONFLICT (pk) DO UPDATE SET ...
    INSERT INTO _dataplump_offsets ... ON CONFLICT DO UPDATE SET next_offset = GREATEST(...)
    COMMIT

so readers see the rows and the offsets together or not at all, and a second writer of
the same table waits for the lock and then re-reads the offsets, dropping what the
first one committed. The table is created from the Arrow schema of the first batch
(:func:`pg_type` is the mapping); ``docs/load-postgres.md`` has the whole story.

No psycopg error leaves this module: each becomes a :class:`SinkError` (terminal: a
value that does not fit, a changed type) or a :class:`TransientSinkError` (server down
or restarting, lock timeout, deadlock), one line, with the URL's password masked.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from dataplump.config.models import SinkConfig, masked_url
from dataplump.sinks.base import (
    LINEAGE_COLUMNS,
    OFFSET,
    PARTITION,
    TOPIC,
    Offsets,
    Sink,
    SinkError,
    SinkTarget,
    TransientSinkError,
    WriteResult,
)
from dataplump.sources.errors import classify, redact

__all__ = ["JSON_METADATA", "OFFSETS_TABLE", "PostgresSink", "pg_type"]

OFFSETS_TABLE = "_dataplump_offsets"
"""Table (in the sink's schema) holding the next Kafka offset of every sink table."""
JSON_METADATA = {b"dataplump.type": b"json"}
"""Field metadata marking a string column as JSON text: it becomes ``jsonb``. Fields with
``dataplump.db_type`` ``json``/``jsonb`` (from a PostgreSQL source) and the ``arrow.json``
extension type are JSON too."""
CONNECT_TIMEOUT_SECONDS = 10
LOCK_TIMEOUT = "60s"
"""How long a write waits for another writer of the same table (then: transient error)."""
CSV_CHUNK_ROWS = 20_000
"""Rows encoded to CSV per ``COPY`` write: bounds the client's buffer."""
_STAGE = "_dp_stage"

_INT_RANK = {"smallint": 1, "integer": 2, "bigint": 3}
_INT_DIGITS = {"smallint": 5, "integer": 10, "bigint": 19}
_NUMERIC = re.compile(r"numeric\((\d+),(-?\d+)\)")
_PRECISION = re.compile(r"\(\d+\)")
_COPY_COLUMN = re.compile(r"COPY \S+, line \d+, column (\S+?):")


def _is_json(field: pa.Field) -> bool:
    metadata = field.metadata or {}
    if metadata.get(b"dataplump.type", b"").lower() == b"json":
        return True
    if metadata.get(b"dataplump.db_type", b"").lower() in (b"json", b"jsonb"):
        return True
    return (
        isinstance(field.type, pa.BaseExtensionType) and field.type.extension_name == "arrow.json"
    )


def pg_type(field: pa.Field) -> str:
    """The PostgreSQL type of an Arrow field, spelt as ``format_type()`` shows it.

    >>> pg_type(pa.field("amount", pa.decimal128(12, 2)))
    'numeric(12,2)'
    >>> pg_type(pa.field("at", pa.timestamp("us", "UTC")))
    'timestamp with time zone'

    Raises :class:`SinkError` for a type the sink does not carry (lists, structs, ...).
    """
    t = field.type
    if isinstance(t, pa.BaseExtensionType):
        t = t.storage_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        bits = t.bit_width + (1 if pa.types.is_unsigned_integer(t) else 0)
        if bits <= 16:
            return "smallint"
        if bits <= 32:
            return "integer"
        return "bigint" if bits <= 64 else "numeric(20,0)"
    if pa.types.is_floating(t):
        return "double precision" if t.bit_width == 64 else "real"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "jsonb" if _is_json(field) else "text"
    if (
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
        or pa.types.is_binary_view(t)
    ):
        return "bytea"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_time(t):
        return "time without time zone"
    if pa.types.is_null(t):
        return "text"
    raise SinkError(
        f"column `{field.name}` has Arrow type {t}, which the PostgreSQL sink does not carry:"
        " cast it to a string (JSON text) in a transform step"
    )


def _accepts(existing: str, new: str) -> bool:
    """Whether a column of type ``existing`` holds every value of type ``new`` as is."""
    existing, new = _PRECISION.sub("", existing), _PRECISION.sub("", new)
    if existing == new:
        return True
    if existing in _INT_RANK and new in _INT_RANK:
        return _INT_RANK[existing] >= _INT_RANK[new]
    held = _NUMERIC.fullmatch(existing)
    if held is not None:
        whole, scale = int(held[1]) - int(held[2]), int(held[2])
        if new in _INT_DIGITS:
            return whole >= _INT_DIGITS[new]
        if given := _NUMERIC.fullmatch(new):
            return scale >= int(given[2]) and whole >= int(given[1]) - int(given[2])
        return False
    if existing == "numeric":  # unconstrained
        return new in _INT_DIGITS or new.startswith("numeric")
    if existing == "double precision":
        return new == "real"
    textual = {"text", "jsonb", "json", "character varying"}
    return existing in textual and new in {"text", "jsonb"}


def connect(url: URL, application_name: str) -> psycopg.Connection[Any]:
    """A connection to the warehouse of ``url``, its query (``sslmode``, ...) passed on."""
    params: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    params.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    return psycopg.connect(
        host=url.host or "localhost",
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname=url.database,
        application_name=application_name,
        **params,
    )


@dataclass(frozen=True)
class _Column:
    name: str
    type: str


class PostgresSink(Sink):
    """A table in a PostgreSQL warehouse (see the module docstring)."""

    def __init__(self, name: str, config: SinkConfig, target: SinkTarget) -> None:
        super().__init__(name, config, target)
        if config.url is None:
            raise SinkError(f"sink `{name}` of kind `postgres` needs `url`")
        self._url: URL = make_url(config.url.get_secret_value())
        self.schema = config.db_schema or "public"
        self.mode = "append" if target.mode == "append" else config.mode
        if self.mode == "merge" and not target.primary_key:
            raise SinkError(
                f"sink `{name}`: table `{target.table}` has no primary key, so it cannot be"
                " merged: declare `primary_key` for the table or set the sink's `mode: append`"
            )
        self._conn: psycopg.Connection[Any] | None = None
        digest = hashlib.blake2b(
            f"dataplump.sink:{self.schema}.{target.table}".encode(), digest_size=8
        ).digest()
        self._lock_key = int.from_bytes(digest, "big", signed=True)

    # -- the seam -----------------------------------------------------------------------

    def describe(self) -> str:
        masked = masked_url(self._url)
        return f"{self.name} (postgres {masked}, table {self._where})"

    def committed(self) -> Offsets:
        with self._transaction("reading the committed offsets") as conn:
            if not self._exists(conn, OFFSETS_TABLE):
                return {}
            return self._read_offsets(conn)

    def write(self, rows: pa.Table, offsets: Offsets) -> WriteResult:
        for column in (TOPIC, PARTITION, OFFSET):
            if column not in rows.column_names:
                raise SinkError(
                    f"{self._where}: the rows have no lineage column `{column}` (the loader adds"
                    f" {', '.join(LINEAGE_COLUMNS)})"
                )
        missing = [k for k in self.target.primary_key if k not in rows.column_names]
        if self.mode == "merge" and missing:
            raise SinkError(
                f"{self._where}: the rows lack primary key column(s) {', '.join(missing)}"
            )
        columns = [_Column(f.name, pg_type(f)) for f in rows.schema]
        with self._transaction(f"loading {len(rows)} rows into {self._where}") as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            self._ensure_offsets_table(conn)
            self._ensure_table(conn, columns)
            stored = self._read_offsets(conn)
            fresh = _drop_committed(rows, stored)
            skipped = len(rows) - len(fresh)
            if self.mode == "merge":
                fresh = _newest_per_key(fresh, self.target.primary_key)
            if len(fresh):
                self._load(conn, fresh)
            self._store_offsets(conn, offsets)
        return WriteResult(written=len(fresh), skipped=skipped)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- connection and errors ------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"`{self.schema}.{self.target.table}`"

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._conn = connect(self._url, f"dataplump sink {self.name}")
        return self._conn

    @contextmanager
    def _transaction(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = self._connect()
            with conn.transaction():
                conn.execute(
                    sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT))
                )
                yield conn
        except psycopg.Error as exc:
            if self._conn is not None and (self._conn.broken or self._conn.closed):
                self._conn = None
            raise self._wrap(exc, action) from None

    def _wrap(self, exc: psycopg.Error, action: str) -> SinkError | TransientSinkError:
        diag = exc.diag
        message = diag.message_primary or str(exc) or type(exc).__name__
        sqlstate = diag.sqlstate or exc.sqlstate
        kind = classify(str(exc) or message, sqlstate=sqlstate)
        detail = redact(message, self._url)
        masked = masked_url(self._url)
        where = f"{self._url.host or 'localhost'}:{self._url.port or 5432}"
        # A refused or failed TLS handshake is a setting to fix: retrying it only delays
        # the same error (it used to be retried as "unreachable or restarting").
        if kind == "tls_required":
            return SinkError(
                f"sink `{self.name}`: PostgreSQL at {where} takes only encrypted connections"
                f" ({detail}): add `sslmode=verify-full&sslrootcert=<CA file>` (or"
                f" `sslmode=require`) to the sink's `url` ({masked})"
            )
        if kind == "tls":
            return SinkError(
                f"sink `{self.name}`: the TLS connection to PostgreSQL at {where} failed"
                f" ({detail}): check `sslmode` and `sslrootcert` in the sink's `url` and the"
                f" server's certificate ({masked})"
            )
        if kind in ("unreachable", "transient") or isinstance(exc, psycopg.OperationalError):
            if kind in ("auth", "no_database", "unknown_host"):
                return SinkError(
                    f"sink `{self.name}`: PostgreSQL at {where} refused the connection"
                    f" ({detail}): check the sink's `url` ({masked})"
                )
            return TransientSinkError(
                f"sink `{self.name}`: {action} failed, PostgreSQL at {where} is unreachable"
                f" or restarting ({detail}); nothing was committed, retry later ({masked})"
            )
        column = diag.column_name
        if column is None and diag.context and (found := _COPY_COLUMN.search(diag.context)):
            column = found.group(1).strip('"')
        at = f" column `{column}`:" if column else ""
        more = f" ({redact(diag.message_detail, self._url)})" if diag.message_detail else ""
        return SinkError(
            f"sink `{self.name}`: {action} failed:{at} {detail}{more}; nothing was committed,"
            " fix the data or the table"
        )

    # -- catalog --------------------------------------------------------------------------

    def _exists(self, conn: psycopg.Connection[Any], table: str) -> bool:
        found = conn.execute(
            "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
            (self.schema, table),
        ).fetchone()
        return bool(found and found[0])

    def _ensure_offsets_table(self, conn: psycopg.Connection[Any]) -> None:
        if self._exists(conn, OFFSETS_TABLE):
            return
        # Writers of other tables of the schema hold other locks: serialize the creation.
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s)", (_hash(f"dataplump.schema:{self.schema}"),)
        )
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (sink_table text NOT NULL, topic text NOT NULL,"
                " partition int NOT NULL, next_offset bigint NOT NULL,"
                " PRIMARY KEY (sink_table, topic, partition))"
            ).format(sql.Identifier(self.schema, OFFSETS_TABLE))
        )

    def _columns(self, conn: psycopg.Connection[Any]) -> dict[str, str]:
        rows = conn.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod)"
            " FROM pg_attribute a"
            " WHERE a.attrelid = format('%%I.%%I', %s::text, %s::text)::regclass"
            " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            (self.schema, self.target.table),
        ).fetchall()
        return {name: type_ for name, type_ in rows}

    def _ensure_table(self, conn: psycopg.Connection[Any], columns: Sequence[_Column]) -> None:
        table = sql.Identifier(self.schema, self.target.table)
        if not self._exists(conn, self.target.table):
            parts = [
                sql.SQL("{} {}").format(sql.Identifier(c.name), sql.SQL(c.type)) for c in columns
            ]
            if self.mode == "merge":
                parts.append(
                    sql.SQL("PRIMARY KEY ({})").format(
                        sql.SQL(", ").join(map(sql.Identifier, self.target.primary_key))
                    )
                )
            conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(parts)))
            return
        existing = self._columns(conn)
        for column in columns:
            old = existing.get(column.name)
            if old is None:
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                        table, sql.Identifier(column.name), sql.SQL(column.type)
                    )
                )
            elif not _accepts(old, column.type):
                if not self.config.allow_type_changes:
                    raise SinkError(
                        f"sink `{self.name}`: column `{column.name}` of {self._where} is"
                        f" {old} but the rows bring {column.type}: set `allow_type_changes:"
                        " true` on the sink to alter the column, or cast the column back in a"
                        " transform step"
                    )
                name = sql.Identifier(column.name)
                conn.execute(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {} USING {}::{}").format(
                        table, name, sql.SQL(column.type), name, sql.SQL(column.type)
                    )
                )

    def _read_offsets(self, conn: psycopg.Connection[Any]) -> Offsets:
        rows = conn.execute(
            sql.SQL("SELECT topic, partition, next_offset FROM {} WHERE sink_table = %s").format(
                sql.Identifier(self.schema, OFFSETS_TABLE)
            ),
            (self.target.table,),
        ).fetchall()
        return {(topic, partition): next_offset for topic, partition, next_offset in rows}

    def _store_offsets(self, conn: psycopg.Connection[Any], offsets: Offsets) -> None:
        if not offsets:
            return
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL(
                    "INSERT INTO {0} AS o (sink_table, topic, partition, next_offset)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (sink_table, topic, partition)"
                    " DO UPDATE SET next_offset = GREATEST(o.next_offset, EXCLUDED.next_offset)"
                ).format(sql.Identifier(self.schema, OFFSETS_TABLE)),
                [(self.target.table, t, p, n) for (t, p), n in offsets.items()],
            )

    # -- loading --------------------------------------------------------------------------

    def _load(self, conn: psycopg.Connection[Any], rows: pa.Table) -> None:
        table = sql.Identifier(self.schema, self.target.table)
        names = sql.SQL(", ").join(sql.Identifier(n) for n in rows.column_names)
        if self.mode == "append":  # nothing to reconcile: COPY straight into the table
            self._copy(conn, table, names, rows)
            return
        stage = sql.Identifier(_STAGE)
        conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DROP").format(stage, table))
        self._copy(conn, stage, names, rows)
        key = self.target.primary_key
        rest = [n for n in rows.column_names if n not in key]
        keys = sql.SQL(", ").join(map(sql.Identifier, key))
        insert = sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(table, names, names, stage)
        if rest:
            sets = sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(n), sql.Identifier(n))
                for n in rest
            )
            insert += sql.SQL(" ON CONFLICT ({}) DO UPDATE SET {}").format(keys, sets)
        else:
            insert += sql.SQL(" ON CONFLICT ({}) DO NOTHING").format(keys)
        conn.execute(insert)

    @staticmethod
    def _copy(
        conn: psycopg.Connection[Any], table: sql.Identifier, names: sql.Composable, rows: pa.Table
    ) -> None:
        with (
            conn.cursor() as cur,
            cur.copy(sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(table, names)) as copy,
        ):
            for chunk in _csv_chunks(rows):
                copy.write(chunk)


def _hash(text: str) -> int:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _drop_committed(rows: pa.Table, stored: Offsets) -> pa.Table:
    """``rows`` without those whose offset is below the stored next offset of their partition."""
    if not stored or not len(rows):
        return rows
    stale = pa.array([False] * len(rows))
    topic, partition, offset = rows[TOPIC], rows[PARTITION], rows[OFFSET]
    for (t, p), next_offset in stored.items():
        hit = pc.and_(
            pc.and_(pc.equal(topic, t), pc.equal(partition, p)), pc.less(offset, next_offset)
        )
        stale = pc.or_(stale, pc.fill_null(hit, False))
    return rows.filter(pc.invert(stale))


def _newest_per_key(rows: pa.Table, key: Sequence[str]) -> pa.Table:
    """One row per ``key``: the one with the highest ``_dp_offset`` (the last one on ties)."""
    if len(rows) < 2:
        return rows
    ordered = rows.take(pc.sort_indices(rows, [(OFFSET, "ascending")]))
    index = pa.array(range(len(ordered)), pa.int64())
    keys = ordered.select(list(key)).append_column("_dp_row", index)
    last = keys.group_by(list(key), use_threads=False).aggregate([("_dp_row", "last")])
    if len(last) == len(ordered):
        return rows
    picked = last["_dp_row_last"]
    return ordered.take(pc.take(picked, pc.sort_indices(picked)))


def _is_binary(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t))


def _csv_ready(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` in a type Arrow's CSV writer renders as PostgreSQL's COPY reads it."""
    t = column.type
    if isinstance(t, pa.BaseExtensionType):
        column = pa.chunked_array([c.storage for c in column.chunks], t.storage_type)
        t = t.storage_type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = t.value_type
    if pa.types.is_string_view(t) or pa.types.is_null(t):
        return column.cast(pa.string())
    if pa.types.is_timestamp(t) and t.tz is not None:
        # Arrow's CSV writer formats a zoned timestamp through the time zone database
        # (~12 µs a value): write the UTC wall time with an explicit `+00` instead (~1 µs).
        utc = column.cast(pa.timestamp(t.unit)).cast(pa.string())
        return pc.binary_join_element_wise(utc, "+00", "")
    if pa.types.is_binary_view(t) or pa.types.is_fixed_size_binary(t) or _is_binary(t):
        # bytea's text input: \x followed by hex digits.
        values = [None if v is None else "\\x" + v.hex() for v in column.to_pylist()]
        return pa.chunked_array([pa.array(values, pa.string())])
    return column


def _csv_chunks(rows: pa.Table) -> Iterator[bytes]:
    """``rows`` as CSV for ``COPY ... (FORMAT csv)``: unquoted empty is NULL, strings quoted."""
    ready = pa.table({name: _csv_ready(rows[name]) for name in rows.column_names})
    for name in ready.column_names:
        column = ready[name]
        textual = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        if textual and pc.any(pc.match_substring(column, "\x00")).as_py():
            raise SinkError(
                f"column `{name}` holds a NUL character (\\x00), which PostgreSQL text"
                " cannot store: remove it in a transform step (e.g. replace it with '')"
            )
    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
    for start in range(0, len(ready), CSV_CHUNK_ROWS):
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(ready.slice(start, CSV_CHUNK_ROWS), sink, options)
        yield sink.getvalue().to_pybytes()
