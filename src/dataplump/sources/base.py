"""The :class:`Source` base: catalog checks, read planning, SQL generation, Arrow conforming.

A backend (``postgres.py``, ``mysql.py``, ``sqlite.py``) supplies four things, the
only abstract methods:

- :meth:`Source._load_columns` — the table's columns from the database catalog, each
  mapped to the Arrow type DataPlump carries it as (or marked as not carried);
- :meth:`Source._clock` — the database's "now" (UTC and local), for the lag window;
- :meth:`Source._placeholder` — how a watermark value enters the SQL (a bound parameter);
- :meth:`Source._stream` — run the data query and yield Arrow record batches of any size.

Everything else is shared and happens here, in this order:

1. **open** (:func:`dataplump.sources.open_source`): connect, find the table (or view;
   "did you mean" otherwise), load its columns, refuse a type DataPlump cannot carry,
   check ``primary_key`` and ``cursor`` against the catalog, note warnings
   (:attr:`Source.warnings`).
2. **read** (:meth:`Source.read`): fix the upper bound of this read (database now minus
   ``lag_seconds`` for a timestamp cursor, ``MAX(cursor)`` for a number cursor), cap a
   watermark that lies past it, sample rows whose cursor lies in the future, and build::

       SELECT <columns> FROM <table>
       WHERE (<cursor>, <pk...>) > (<watermark>)  AND <cursor> <= <upper bound>
       ORDER BY <cursor>, <pk...>

   (``full`` mode: ``WHERE (<pk...>) > (<watermark pk>) ORDER BY <pk...>``).
3. **stream**: conform each batch to :attr:`Source.schema` (casts checked for loss),
   refuse NULL keys, re-cut into batches of exactly ``batch_size`` rows (the last one
   smaller), and track the watermark of the last row delivered.

Identifiers are always quoted by the SQLAlchemy dialect's identifier preparer; values
always go through the backend's :meth:`~Source._placeholder`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from difflib import get_close_matches
from types import TracebackType
from typing import Any, ClassVar, Literal, Self
from warnings import catch_warnings, simplefilter

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.pool import NullPool

from dataplump.config.models import SourceConfig, TableConfig, masked_url
from dataplump.sources.errors import SourceError, TransientSourceError, wrap_error
from dataplump.sources.watermark import Value, Watermark

__all__ = [
    "CursorKind",
    "Source",
    "SourceColumn",
    "SourceRead",
    "SourceWarning",
    "WarningKind",
    "keyset_predicate",
    "rechunk",
    "select_statement",
]

log = logging.getLogger("dataplump.sources")

CursorKind = Literal["number", "timestamp", "timestamptz"]
"""How a cursor column orders changes: an increasing number (integer or decimal), a
timestamp without time zone (compared with the database's local now) or with zone."""

WarningKind = Literal[
    "future_watermark",
    "future_rows",
    "no_primary_key",
    "primary_key_mismatch",
    "nullable_cursor",
    "nullable_key",
]
"""What a :class:`SourceWarning` is about (see ``docs/sources.md``)."""

SAMPLE_KEYS = 5
"""How many keys a warning about rows quotes at most."""

_LIST_NAMES = 12


@dataclass(frozen=True)
class SourceWarning:
    """Something the caller should raise as an alert; reading goes on regardless."""

    table: str
    """The source table."""
    kind: WarningKind
    """What the warning is about."""
    message: str
    """One line for people, ending with what to do."""
    sample_keys: tuple[tuple[Value, ...], ...] = ()
    """Primary keys of up to five rows concerned, when the warning is about rows."""


@dataclass(frozen=True)
class SourceColumn:
    """One column as the catalog declares it and as DataPlump carries it."""

    name: str
    """Column name, exactly as in the database."""
    db_type: str
    """The type as the database names it, e.g. ``numeric(15,2)``, ``character(4)``."""
    arrow_type: pa.DataType | None
    """The Arrow type of the column in every batch; ``None`` if DataPlump cannot carry it."""
    nullable: bool = True
    """The catalog allows NULL (always true for a view's columns on some databases)."""
    pad: bool = False
    """``CHAR(n)``: trailing pad spaces are stripped, as SQL comparisons ignore them."""
    orderable: bool = True
    """The database orders and compares the column consistently, so it can be a key or
    cursor column (not so: PostgreSQL ``json``, MySQL ``ENUM``, ordered by position but
    compared as text)."""
    hint: str = ""
    """For a type DataPlump cannot carry: how to fix it, when there is a better hint than
    "cast it in a view or drop it"."""

    @property
    def cursor_kind(self) -> CursorKind | None:
        """How this column can order changes as a cursor; ``None``: it cannot."""
        t = self.arrow_type
        if t is None or not self.orderable:
            return None
        if pa.types.is_integer(t) or pa.types.is_decimal(t):
            return "number"
        if pa.types.is_timestamp(t):
            return "timestamp" if t.tz is None else "timestamptz"
        return None

    @property
    def field(self) -> pa.Field:
        """The Arrow field: name, type, nullability and the database type as metadata."""
        return pa.field(
            self.name,
            self.arrow_type,
            nullable=self.nullable,
            metadata={"dataplump.db_type": self.db_type},
        )


def keyset_predicate(columns: Sequence[str], values: Sequence[str], *, row_values: bool) -> str:
    """SQL true for rows after ``values`` in the order of ``columns`` (both already SQL).

    With ``row_values`` the database compares row values, ``(a, b) > (x, y)``; without,
    the comparison is expanded, led by ``a >= x`` so an index on ``a`` is used::

        >>> keyset_predicate(["a", "b"], ["?", "?"], row_values=True)
        '(a, b) > (?, ?)'
        >>> keyset_predicate(["a", "b"], ["1", "2"], row_values=False)
        'a >= 1 AND (a > 1 OR (a = 1 AND b > 2))'

    ``values`` may be shorter than ``columns`` (a capped watermark): only that prefix
    is compared.
    """
    if not values or len(values) > len(columns):
        raise ValueError("keyset_predicate needs 1 to len(columns) values")
    columns = columns[: len(values)]
    if len(columns) == 1:
        return f"{columns[0]} > {values[0]}"
    if row_values:
        return f"({', '.join(columns)}) > ({', '.join(values)})"
    expanded = f"{columns[-1]} > {values[-1]}"
    for column, value in zip(reversed(columns[:-1]), reversed(values[:-1]), strict=True):
        expanded = f"{column} > {value} OR ({column} = {value} AND {expanded})"
        expanded = f"({expanded})"
    return f"{columns[0]} >= {values[0]} AND {expanded}"


def select_statement(
    *, select: Sequence[str], table: str, where: Sequence[str], order_by: Sequence[str]
) -> str:
    """``SELECT ... FROM ... [WHERE a AND b] ORDER BY ...`` from parts already in SQL."""
    sql = f"SELECT {', '.join(select)} FROM {table}"  # noqa: S608 - quoted names, placeholders
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + f" ORDER BY {', '.join(order_by)}"


def rechunk(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.RecordBatch]:
    """Re-cut ``batches`` into batches of exactly ``size`` rows (the last may be smaller).

    Holds at most ``size`` rows plus one incoming batch; empty batches are dropped.
    """
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        offset = 0
        while offset < batch.num_rows:
            take = min(size - held, batch.num_rows - offset)
            pending.append(batch.slice(offset, take))
            held += take
            offset += take
            if held == size:
                yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)
                pending, held = [], 0
    if held:
        yield pending[0] if len(pending) == 1 else pa.concat_batches(pending)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LIST_NAMES])
    more = len(names) - _LIST_NAMES
    return shown + (f" ... and {more} more" if more > 0 else "") if names else "none"


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    close = (
        get_close_matches(name, options, n=1)
        or [o for o in options if o.lower() == name.lower()][:1]
    )
    return f"did you mean `{close[0]}`? " if close else ""


@dataclass
class _Plan:
    """One read: the SQL, its parameters and what was decided on the way."""

    sql: str
    params: list[Any]
    since: Watermark | None
    start: Watermark | None
    upper_bound: Value | None
    warnings: list[SourceWarning] = field(default_factory=list)


class SourceRead(Iterator[pa.RecordBatch]):
    """One read of a table: an iterator of record batches that tracks its watermark.

    Made by :meth:`Source.read`, which has already fixed the bounds, so
    :attr:`warnings`, :attr:`upper_bound` and :attr:`watermark` are set before the
    first batch. After each batch, :attr:`watermark` is that batch's last row:
    store it together with the batch's records. If the read yields nothing but
    :attr:`watermark` differs from the ``since`` it was given (a capped watermark),
    store it too. Close the read (or use ``with``) to stop early.
    """

    def __init__(self, source: Source, plan: _Plan) -> None:
        self._source = source
        self._plan = plan
        self._batches: Iterator[pa.RecordBatch] | None = None
        self._closed = False
        self.since = plan.since
        """The watermark this read was asked to start after."""
        self.watermark: Watermark | None = plan.start
        """Where the rows delivered so far end: ``since`` (or its capped value) at first,
        then the last row of the last batch yielded."""
        self.upper_bound = plan.upper_bound
        """Largest cursor value this read delivers (``None`` in ``full`` mode)."""
        self.warnings: list[SourceWarning] = plan.warnings
        """Warnings found when the read was planned (future watermark or rows)."""
        self.rows = 0
        """Rows delivered so far."""

    @property
    def sql(self) -> str:
        """The data query (values appear as the backend's placeholders)."""
        return self._plan.sql

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> pa.RecordBatch:
        if self._closed:
            raise StopIteration
        if self._batches is None:
            self._batches = self._source._batches(self._plan)
        try:
            batch = next(self._batches)
        except BaseException:  # the end, an error or an interrupt: release the connection
            self.close()
            raise
        self.rows += batch.num_rows
        self.watermark = self._source.watermark(batch)
        return batch

    def close(self) -> None:
        """Stop the read and release its connection; safe to call twice."""
        self._closed = True
        if self._batches is not None and hasattr(self._batches, "close"):
            batches, self._batches = self._batches, None
            batches.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Source(ABC):
    """One source table, read as Arrow record batches of at most ``batch_size`` rows.

    Made by :func:`dataplump.sources.open_source`, which connects and checks the table
    against the config: every failure there is a
    :class:`~dataplump.sources.errors.SourceError` (fix the config or the database)
    or a :class:`~dataplump.sources.errors.TransientSourceError` (retry later).
    Close it (or use ``with``) to release its connections.
    """

    database: ClassVar[str]
    """The database's name for people, e.g. ``PostgreSQL``."""
    drivername: ClassVar[str]
    """SQLAlchemy driver DataPlump uses for catalog queries, whatever the URL names."""
    row_values: ClassVar[bool] = True
    """The database compares row values with an index (``(a, b) > (x, y)``)."""
    driver_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    """Exception types of the backend's drivers, wrapped into source errors."""
    extra: ClassVar[str] = ""
    """The ``dataplump`` extra that installs the backend's drivers."""

    def __init__(self, source: SourceConfig, table: str, config: TableConfig) -> None:
        self.table = table
        """The source table's name, as in the database (the key under ``tables:``)."""
        self.config = config
        """The table's config."""
        self.url: URL = sa.make_url(source.url.get_secret_value()).set(drivername=self.drivername)
        """The source URL with DataPlump's driver; holds the password: never print it."""
        self.db_schema = source.db_schema
        """Schema the table lives in (``None``: the connection's default)."""
        self.warnings: list[SourceWarning] = []
        """Warnings found when the table was opened (keys, nullable cursor)."""
        self.columns: tuple[SourceColumn, ...] = ()
        """The table's columns, in table order."""
        self.schema: pa.Schema = pa.schema([])
        """The Arrow schema of every batch read, built from the catalog."""
        self._engine: Engine = self._create_engine()
        self._quote: Callable[[str], str] = (
            self._engine.dialect.identifier_preparer.quote_identifier
        )
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    # --- hooks -------------------------------------------------------------------------

    @abstractmethod
    def _load_columns(self, conn: Connection, schema: str | None) -> list[SourceColumn]:
        """The table's columns from the catalog, in table order, with their Arrow types."""

    @abstractmethod
    def _clock(self, conn: Connection) -> tuple[datetime, datetime]:
        """The database's now: (UTC, with tzinfo) and (local wall clock, naive)."""

    @abstractmethod
    def _placeholder(self, column: SourceColumn, value: Value, params: list[Any]) -> str:
        """SQL standing for ``value`` (of ``column``'s type) in the data query.

        Append to ``params`` whatever :meth:`_stream` needs to bind it.
        """

    @abstractmethod
    def _stream(self, sql: str, params: list[Any]) -> Iterator[pa.RecordBatch]:
        """Run the data query; yield record batches of any size whose columns are, by
        position, those of :meth:`_select_list`. Release the connection when closed."""

    def _select_expression(self, column: SourceColumn) -> str:
        """SQL selecting ``column`` in a form :meth:`_stream` reads well (default: itself)."""
        return self._quote(column.name)

    def _order_expression(self, column: SourceColumn) -> str:
        """SQL ordering and comparing ``column`` as a key or cursor (default: itself)."""
        return self._quote(column.name)

    def _engine_args(self) -> dict[str, Any]:
        """Extra ``create_engine`` arguments (connect timeouts, creators)."""
        return {}

    def _aux_value(self, column: SourceColumn, value: Value) -> Any:
        """``value`` as the SQLAlchemy driver binds it in the small catalog-side queries."""
        return value

    def _table_names(self, conn: Connection, schema: str | None) -> list[str]:
        """Tables and views the table name may refer to."""
        inspector = sa.inspect(conn)
        return sorted({*inspector.get_table_names(schema), *inspector.get_view_names(schema)})

    # --- public ------------------------------------------------------------------------

    @property
    def cursor(self) -> SourceColumn | None:
        """The cursor column (``incremental`` mode), else ``None``."""
        return None if self.config.cursor is None else self._column(self.config.cursor)

    @property
    def key(self) -> tuple[SourceColumn, ...]:
        """The primary-key columns, in config order."""
        return tuple(self._column(name) for name in self.config.primary_key)

    def read(self, since: Watermark | None = None) -> SourceRead:
        """Read the table after ``since`` (``None``: from the start), in a fixed order.

        ``full`` mode orders by the primary key and reads the whole table (after
        ``since``'s key, to resume a snapshot). ``incremental`` mode orders by cursor,
        then key, and reads rows after ``since`` up to this read's upper bound. The
        bounds are fixed now; the rows are read as the result is iterated.
        """
        self._check_watermark(since)
        plan = self._plan(since)
        for warning in plan.warnings:
            log.warning("%s", warning.message)
        return SourceRead(self, plan)

    def count_through(self, watermark: Watermark) -> int:
        """Rows whose (cursor, key) is at or before ``watermark`` now (``incremental`` mode).

        What the extraction stage's late-row check compares between two moments: rows
        that appear at or behind a watermark already passed were never read
        (``docs/sources.md``, "Late rows"). Rows with a NULL cursor are not counted.
        """
        cursor = self.cursor
        if cursor is None or watermark.cursor is None:
            raise ValueError("count_through needs an incremental table and a cursor value")
        order = [cursor, *self.key]
        values: list[Value] = [watermark.cursor, *(watermark.pk or ())]
        params = {
            f"w{i}": self._aux_value(column, value)
            for i, (column, value) in enumerate(zip(order, values, strict=False))
        }
        after = keyset_predicate(
            [_bindable(self._order_expression(c)) for c in order],
            [f":w{i}" for i in range(len(values))],
            row_values=self.row_values,
        )
        column = _bindable(self._order_expression(cursor))
        sql = (
            f"SELECT COUNT(*) FROM {_bindable(self._table_sql())}"  # noqa: S608 - quoted
            f" WHERE {column} IS NOT NULL AND NOT ({after})"
        )
        with self._connect(f"counting the rows of {self._label} behind its watermark") as conn:
            return int(conn.execute(sa.text(sql), params).scalar_one())

    def watermark(self, batch: pa.RecordBatch) -> Watermark:
        """The watermark after ``batch``'s last row (a batch this source yielded)."""
        last = batch.num_rows - 1
        if last < 0:
            raise ValueError("an empty batch has no watermark")
        cursor = None
        if self.config.cursor is not None:
            cursor = batch.column(self._index[self.config.cursor])[last].as_py()
        pk = tuple(batch.column(self._index[n])[last].as_py() for n in self.config.primary_key)
        return Watermark(cursor=cursor, pk=pk)

    def close(self) -> None:
        """Release the connections; safe to call twice."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        masked = masked_url(self.url)
        return f"<{type(self).__name__} {self.table!r} of {masked}>"

    # --- shared machinery --------------------------------------------------------------

    def _create_engine(self) -> Engine:
        try:
            return sa.create_engine(self.url, poolclass=NullPool, **self._engine_args())
        except ImportError as exc:
            raise SourceError(
                f"reading {self.database} needs the package `{exc.name}`, which is not"
                f" installed: run `pip install 'dataplump[{self.extra}]'`",
                table=self.table,
            ) from None
        except sa_exc.SQLAlchemyError as exc:
            raise SourceError(
                f"cannot use `source.url` ({masked_url(self.url)}): {type(exc).__name__}: {exc}",
                table=self.table,
            ) from None

    @property
    def _label(self) -> str:
        return f"`{self.table}`"

    def _error(self, message: str) -> SourceError:
        return SourceError(message, table=self.table)

    @contextmanager
    def _wrapped(self, action: str) -> Iterator[None]:
        """Turn driver, SQLAlchemy and Arrow errors raised inside into source errors."""
        try:
            yield
        except (SourceError, TransientSourceError):
            raise
        except (sa_exc.SQLAlchemyError, pa.ArrowException, OSError, *self.driver_errors) as exc:
            raise wrap_error(exc, action=action, url=self.url, table=self.table) from None

    @contextmanager
    def _connect(self, action: str) -> Iterator[Connection]:
        with self._wrapped(action), self._engine.connect() as conn:
            yield conn

    def _table_sql(self) -> str:
        name = self._quote(self.table)
        return f"{self._quote(self.db_schema)}.{name}" if self.db_schema else name

    def _column(self, name: str) -> SourceColumn:
        return self.columns[self._index[name]]

    def _open(self) -> None:
        where = f"schema `{self.db_schema}`" if self.db_schema else "the default schema"
        with self._connect(f"opening {self._label}") as conn:
            names = self._table_names(conn, self.db_schema)
            if self.table not in names:
                raise self._error(
                    f"table {self._label} not found in {where} of {self.database} database"
                    f" `{self.url.database}`: {_did_you_mean(self.table, names)}"
                    f"(tables: {_names(names)}); fix the name under `tables:` or set"
                    " `source.schema`"
                )
            columns = self._load_columns(conn, self.db_schema)
            with catch_warnings():  # reflection warns about types it does not know
                simplefilter("ignore", sa_exc.SAWarning)
                declared = sa.inspect(conn).get_pk_constraint(self.table, self.db_schema)
        self.columns = tuple(columns)
        self._index = {c.name: i for i, c in enumerate(self.columns)}
        self._check_types()
        self._check_key(list(declared.get("constrained_columns") or []))
        self._check_cursor()
        self.schema = pa.schema([c.field for c in self.columns])
        for warning in self.warnings:
            log.warning("%s", warning.message)

    def _check_types(self) -> None:
        bad = [c for c in self.columns if c.arrow_type is None]
        if not bad:
            return
        first = bad[0]
        fix = first.hint or "cast it in a view or drop it"
        more = ", ".join(f"`{c.name}` ({c.db_type})" for c in bad[1:])
        raise self._error(
            f"column `{first.name}` of {self._label} has type `{first.db_type}`, which"
            f" DataPlump cannot carry: {fix}" + (f" (and also: {more})" if more else "")
        )

    def _check_key(self, declared: list[str]) -> None:
        names = [c.name for c in self.columns]
        for name in self.config.primary_key:
            if name not in self._index:
                raise self._error(
                    f"primary key column `{name}` of {self._label} does not exist:"
                    f" {_did_you_mean(name, names)}(columns: {_names(names)});"
                    f" fix `tables.{self.table}.primary_key`"
                )
            column = self._column(name)
            if column.cursor_kind is None and not self._orderable_key(column):
                raise self._error(
                    f"primary key column `{name}` of {self._label} has type"
                    f" `{column.db_type}`, which cannot order rows: name key columns of"
                    " number, text, date or time types"
                )
        configured = list(self.config.primary_key)
        if not declared:
            self._warn(
                "no_primary_key",
                f"{self._label} declares no primary key; DataPlump trusts"
                f" `primary_key: [{', '.join(configured)}]` to be unique and not null:"
                " a duplicate key is read once per row, a NULL key stops the read",
            )
        elif declared != configured:
            self._warn(
                "primary_key_mismatch",
                f"{self._label} declares primary key ({', '.join(declared)}) but the config"
                f" names ({', '.join(configured)}): DataPlump uses the config; if it is not"
                f" unique rows can be merged, so fix `tables.{self.table}.primary_key`",
            )
        nullable = [n for n in configured if self._column(n).nullable and n not in declared]
        if nullable and declared:
            self._warn(
                "nullable_key",
                f"key column(s) {', '.join(f'`{n}`' for n in nullable)} of {self._label}"
                " allow NULL; a row with a NULL key stops the read: declare them NOT NULL",
            )

    @staticmethod
    def _orderable_key(column: SourceColumn) -> bool:
        t = column.arrow_type
        return (
            t is not None
            and column.orderable
            and (
                pa.types.is_string(t)
                or pa.types.is_binary(t)
                or pa.types.is_date(t)
                or pa.types.is_time(t)
                or pa.types.is_boolean(t)
            )
        )

    def _check_cursor(self) -> None:
        name = self.config.cursor
        if name is None:
            return
        names = [c.name for c in self.columns]
        if name not in self._index:
            raise self._error(
                f"cursor column `{name}` of {self._label} does not exist:"
                f" {_did_you_mean(name, names)}(columns: {_names(names)});"
                f" fix `tables.{self.table}.cursor`"
            )
        column = self._column(name)
        kind = column.cursor_kind
        if kind is None:
            raise self._error(
                f"cursor column `{name}` of {self._label} has type `{column.db_type}`, which"
                " cannot order changes: use a timestamp or an increasing integer column as"
                f" `tables.{self.table}.cursor`"
            )
        if kind == "number" and self.config.lag_seconds:
            raise self._error(
                f"`tables.{self.table}.lag_seconds` applies to timestamp cursors, but cursor"
                f" `{name}` is `{column.db_type}`: remove `lag_seconds` or use a timestamp"
                " cursor"
            )
        if column.nullable:
            self._warn(
                "nullable_cursor",
                f"cursor column `{name}` of {self._label} allows NULL; rows where it is NULL"
                " are never read incrementally: declare it NOT NULL",
            )

    def _warn(
        self, kind: WarningKind, message: str, keys: Sequence[tuple[Value, ...]] = ()
    ) -> None:
        self.warnings.append(SourceWarning(self.table, kind, message, tuple(keys)))

    def _check_watermark(self, since: Watermark | None) -> None:
        if since is None:
            return
        key = self.key
        cursor = self.cursor
        problem = ""
        if cursor is None and since.cursor is not None:
            problem = "it has a cursor value but the table is read in `full` mode"
        elif cursor is not None and since.cursor is None:
            problem = "it has no cursor value but the table is read in `incremental` mode"
        elif since.pk is None and cursor is None:
            problem = "it has no key values"
        elif since.pk is not None and len(since.pk) != len(key):
            problem = f"it has {len(since.pk)} key values for {len(key)} key columns"
        elif cursor is not None and not _fits(cursor, since.cursor):
            problem = f"its cursor value {since.cursor!r} does not fit `{cursor.db_type}`"
        elif since.pk is not None:
            for column, value in zip(key, since.pk, strict=True):
                if not _fits(column, value):
                    problem = f"its key value {value!r} does not fit `{column.db_type}`"
                    break
        if problem:
            raise self._error(
                f"watermark {since} does not fit {self._label}: {problem}; was it stored"
                " under another config? Reset the table's watermark to read it again"
            )

    def _plan(self, since: Watermark | None) -> _Plan:
        cursor = self.cursor
        key = self.key
        order = ([cursor] if cursor is not None else []) + list(key)
        params: list[Any] = []
        where: list[str] = []
        warnings: list[SourceWarning] = []
        start = since
        upper: Value | None = None
        if cursor is not None:
            upper, start, warnings = self._bounds(cursor, since)
        if start is not None:
            values: list[Value] = list(start.pk or ())
            if cursor is not None and start.cursor is not None:
                values.insert(0, start.cursor)
            where.append(
                keyset_predicate(
                    [self._order_expression(c) for c in order],
                    [self._placeholder(c, v, params) for c, v in zip(order, values, strict=False)],
                    row_values=self.row_values,
                )
            )
        if cursor is not None:
            if upper is None:  # a number cursor on an empty table: nothing to read
                where.append("1 = 0")
            else:
                bound = self._placeholder(cursor, upper, params)
                where.append(f"{self._order_expression(cursor)} <= {bound}")
        sql = select_statement(
            select=[self._select_expression(c) for c in self.columns],
            table=self._table_sql(),
            where=where,
            order_by=[self._order_expression(c) for c in order],
        )
        return _Plan(sql, params, since, start, upper, warnings)

    def _bounds(
        self, cursor: SourceColumn, since: Watermark | None
    ) -> tuple[Value | None, Watermark | None, list[SourceWarning]]:
        """Upper bound of this read, the (possibly capped) start, and warnings."""
        warnings: list[SourceWarning] = []
        table, column = _bindable(self._table_sql()), _bindable(self._order_expression(cursor))
        with self._connect(f"planning a read of {self._label}") as conn:
            if cursor.cursor_kind == "number":
                maximum = sa.text(f"SELECT MAX({column}) FROM {table}")  # noqa: S608 - quoted
                upper = conn.execute(maximum).scalar()
                return upper, since, warnings
            now_utc, now_local = self._clock(conn)
            now: datetime = now_utc if cursor.cursor_kind == "timestamptz" else now_local
            upper = now - timedelta(seconds=self.config.lag_seconds)
            keys = _bindable(", ".join(self._quote(c.name) for c in self.key))
            future = conn.execute(
                sa.text(
                    f"SELECT {keys} FROM {table} WHERE {column} > :now"  # noqa: S608 - quoted
                    f" ORDER BY {column} LIMIT {SAMPLE_KEYS}"
                ),
                {"now": self._aux_value(cursor, now)},
            ).all()
        if future:
            sample = [tuple(row) for row in future]
            warnings.append(
                SourceWarning(
                    self.table,
                    "future_rows",
                    f"rows of {self._label} have `{cursor.name}` later than the database's"
                    f" now ({now.isoformat()}), e.g. key {_key_text(sample[0])}: they are held"
                    " back until the clock reaches them; fix the writer's clock or the values",
                    tuple(sample),
                )
            )
        start = since
        if since is not None and isinstance(since.cursor, datetime) and since.cursor > upper:
            start = Watermark(cursor=upper, pk=None)
            past = "the database's now" if since.cursor > now else "now minus `lag_seconds`"
            warnings.append(
                SourceWarning(
                    self.table,
                    "future_watermark",
                    f"the watermark of {self._label} ({since.cursor.isoformat()}) lies after"
                    f" {past} ({upper.isoformat()}): capped there, so rows between the two"
                    " may be read again but none is skipped; check the database's clock and"
                    " store the read's watermark",
                )
            )
        return upper, start, warnings

    def _batches(self, plan: _Plan) -> Iterator[pa.RecordBatch]:
        """The data of ``plan``: conformed, keys checked, cut to ``batch_size`` rows."""
        action = f"reading {self._label}"
        raw = self._stream(plan.sql, plan.params)

        def conformed() -> Iterator[pa.RecordBatch]:
            while True:
                with self._wrapped(action):
                    batch = next(raw, None)
                if batch is None:
                    return
                if batch.num_rows:
                    yield self._conform(batch)

        try:
            yield from rechunk(conformed(), self.config.batch_size)
        finally:
            close = getattr(raw, "close", None)
            if close is not None:
                with self._wrapped(action):
                    close()

    def _conform(self, raw: pa.RecordBatch) -> pa.RecordBatch:
        """``raw`` (columns by position) as a batch of :attr:`schema`, casts checked."""
        if raw.num_columns != len(self.columns):
            raise self._error(
                f"the read of {self._label} returned {raw.num_columns} columns, expected"
                f" {len(self.columns)}: did the table change while it was read? Retry"
            )
        arrays = []
        for column, array in zip(self.columns, raw.columns, strict=True):
            if isinstance(array.type, pa.BaseExtensionType):
                array = array.storage
            target = column.arrow_type
            if array.type != target:
                try:
                    array = array.cast(target)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise self._error(
                        f"column `{column.name}` of {self._label} ({column.db_type}) holds a"
                        f" value that does not fit {target}: {exc}; fix the value or cast"
                        " the column in a view"
                    ) from None
            if column.pad:
                array = pc.utf8_rtrim(array, characters=" ")
            arrays.append(array)
        for column in self.key:
            if arrays[self._index[column.name]].null_count:
                raise self._error(
                    f"key column `{column.name}` of {self._label} is NULL in a row: rows"
                    " cannot be keyed or ordered; fix the data or name another"
                    f" `tables.{self.table}.primary_key`"
                )
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _bindable(quoted: str) -> str:
    """Quoted SQL made safe for ``sa.text``, which reads ``:name`` as a bind parameter even
    inside a quoted identifier (a column named ``a:b``): its colons escaped."""
    return quoted.replace(":", "\\:")


def _key_text(key: tuple[Value, ...]) -> str:
    return str(key[0]) if len(key) == 1 else "(" + ", ".join(map(str, key)) + ")"


def _fits(column: SourceColumn, value: Value | None) -> bool:
    """``value`` has a Python type pyarrow gives for ``column``."""
    t = column.arrow_type
    if value is None or t is None:
        return False
    if pa.types.is_timestamp(t):
        return isinstance(value, datetime) and (value.tzinfo is None) == (t.tz is None)
    if pa.types.is_integer(t):
        return isinstance(value, int) and not isinstance(value, bool)
    if pa.types.is_decimal(t):
        return isinstance(value, Decimal | int) and not isinstance(value, bool)
    if pa.types.is_string(t):
        return isinstance(value, str)
    if pa.types.is_binary(t):
        return isinstance(value, bytes)
    return True
