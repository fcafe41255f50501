"""Reflect the tables of a source database: columns as extraction carries them, keys,
foreign keys, row counts and a sample of rows.

The catalog (table names, primary keys, unique constraints, foreign keys) comes from
SQLAlchemy's inspector; the columns and their Arrow types come from the source backend
itself (:func:`dataplump.sources.open_source`), so a proposed contract declares exactly
the types extraction will produce, and a table extraction cannot read is found here with
the source's own message. The sample is the first rows of an ordinary full read.

    >>> # tables = reflect_database("sqlite:////tmp/shop.db", None, None, sample_rows=1000)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from warnings import catch_warnings, simplefilter

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool

from dataplump.config.models import SecretUrl, SourceConfig, TableConfig
from dataplump.scaffold.errors import ScaffoldError
from dataplump.sources import BACKENDS, SourceColumn, SourceError, open_source
from dataplump.sources.errors import TransientSourceError, wrap_error

__all__ = ["ForeignKey", "ReflectedTable", "Skipped", "catalog_engine", "reflect_database"]


@dataclass(frozen=True)
class ForeignKey:
    """A single-column foreign key: ``column`` refers to ``parent``.``field``."""

    column: str
    parent: str
    field: str
    orphans: int | None = None
    """Rows whose non-null ``column`` has no match in the parent (None: not counted)."""


@dataclass
class ReflectedTable:
    """One source table DataPlump can extract, as the catalog and a sample show it."""

    name: str
    columns: tuple[SourceColumn, ...]
    """Every column, typed as extraction carries it (see :class:`SourceColumn`)."""
    primary_key: tuple[str, ...]
    key_source: str
    """Where the key comes from: ``primary key`` or ``unique constraint <name>``."""
    foreign_keys: tuple[ForeignKey, ...] = ()
    row_count: int = 0
    """Rows of the table when it was reflected."""
    sample: pa.Table = field(default_factory=lambda: pa.table({}))
    """The first rows of a full read (in key order), at most the sample size."""

    @property
    def sampled_all(self) -> bool:
        """The sample holds every row of the table (when it was counted)."""
        return bool(self.sample.num_rows >= self.row_count)


@dataclass(frozen=True)
class Skipped:
    """A table that is left out, and why (one line ending with what to do)."""

    name: str
    reason: str


# Kafka topic names allow these characters only; a table is part of its topics' names.
_TOPIC_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def catalog_engine(url: URL) -> Engine:
    """An engine for catalog queries with the driver DataPlump uses for the backend
    (SQLite is opened read-only). Raises :class:`ScaffoldError` for an unknown backend."""
    backend = url.get_backend_name()
    if backend not in BACKENDS:
        raise ScaffoldError(
            f"DataPlump reads PostgreSQL, MySQL/MariaDB and SQLite, not `{backend}`: use a"
            " `postgresql+psycopg://`, `mysql+pymysql://` or `sqlite:///` URL"
        )
    _, _, extra = BACKENDS[backend]
    if backend == "sqlite":
        database = url.database or ""
        if not database or database == ":memory:" or not Path(database).is_file():
            raise ScaffoldError(
                f"SQLite database file `{database or ':memory:'}` does not exist: give the"
                " file of an existing database, e.g. `sqlite:///shop.db`"
            )
        uri = f"file:{quote(str(Path(database).resolve()))}?mode=ro"
        return sa.create_engine(
            "sqlite://",
            poolclass=NullPool,
            creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False),
        )
    drivername = {"postgresql": "postgresql+psycopg"}.get(backend, "mysql+pymysql")
    try:
        return sa.create_engine(
            url.set(drivername=drivername),
            poolclass=NullPool,
            connect_args={"connect_timeout": 10},
        )
    except ImportError as exc:
        raise ScaffoldError(
            f"reading {backend} needs the package `{exc.name}`, which is not installed:"
            f" run `pip install 'dataplump[{extra}]'`"
        ) from None


@contextmanager
def _wrapped(action: str, url: URL) -> Iterator[None]:
    try:
        yield
    except (sa_exc.SQLAlchemyError, OSError) as exc:
        error = wrap_error(exc, action=action, url=url)
        raise ScaffoldError(str(error)) from None


def reflect_database(
    url: str,
    schema: str | None,
    tables: Sequence[str] | None,
    *,
    sample_rows: int,
) -> tuple[list[ReflectedTable], list[Skipped]]:
    """The tables of the database at ``url`` (all of ``schema``'s base tables, or the
    ``tables`` named, views included), and the ones that cannot be extracted as they are.

    Raises :class:`ScaffoldError` when the database cannot be read at all, or when
    ``tables`` names one that does not exist.
    """
    parsed = sa.make_url(url)
    engine = catalog_engine(parsed)
    try:
        with _wrapped("reading the catalog", parsed), engine.connect() as conn:
            inspector = sa.inspect(conn)
            with catch_warnings():  # reflection warns about types it does not know
                simplefilter("ignore", sa_exc.SAWarning)
                names = sorted(inspector.get_table_names(schema))
                views = sorted(inspector.get_view_names(schema))
                chosen = _choose(names, views, tables, schema)
                catalog = {name: _catalog(inspector, name, schema) for name in chosen}
            counts = {
                name: int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(sa.table(name, schema=schema))
                    ).scalar_one()
                )
                for name in chosen
            }
    finally:
        engine.dispose()
    reflected: list[ReflectedTable] = []
    skipped: list[Skipped] = []
    for name in chosen:
        key, key_source, foreign_keys = catalog[name]
        found = _reflect_table(url, schema, name, key, key_source, foreign_keys, sample_rows)
        if isinstance(found, ReflectedTable):
            found.row_count = counts[name]
        if isinstance(found, ReflectedTable):
            reflected.append(found)
        else:
            skipped.append(found)
    _count_orphans(parsed, schema, reflected)
    return reflected, skipped


def _choose(
    names: list[str], views: list[str], wanted: Sequence[str] | None, schema: str | None
) -> list[str]:
    if not wanted:
        if not names:
            where = f"schema `{schema}`" if schema else "the default schema"
            raise ScaffoldError(
                f"the database has no tables in {where}"
                + ("" if schema else "; name one with --schema")
            )
        return names
    known = [*names, *views]
    missing = [name for name in wanted if name not in known]
    if missing:
        from difflib import get_close_matches

        close = get_close_matches(missing[0], known, n=1) or [
            n for n in known if n.lower() == missing[0].lower()
        ]
        hint = f"did you mean `{close[0]}`? " if close else ""
        shown = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
        raise ScaffoldError(f"no table `{missing[0]}` in the database; {hint}(tables: {shown})")
    return list(dict.fromkeys(wanted))


def _catalog(
    inspector: Any, name: str, schema: str | None
) -> tuple[tuple[str, ...], str, tuple[ForeignKey, ...]]:
    """(key columns, where the key comes from, single-column foreign keys)."""
    pk = tuple(inspector.get_pk_constraint(name, schema).get("constrained_columns") or ())
    key_source = "primary key"
    if not pk:
        nullable = {c["name"]: c.get("nullable", True) for c in inspector.get_columns(name, schema)}
        try:
            uniques = inspector.get_unique_constraints(name, schema)
        except NotImplementedError:
            uniques = []
        for unique in uniques:
            unique_columns = tuple(unique.get("column_names") or ())
            if unique_columns and not any(nullable.get(c, True) for c in unique_columns):
                pk, key_source = (
                    unique_columns,
                    f"unique constraint {unique.get('name') or ''}".strip(),
                )
                break
    foreign_keys = []
    for fk in inspector.get_foreign_keys(name, schema):
        columns, referred = fk.get("constrained_columns") or [], fk.get("referred_columns") or []
        same_schema = fk.get("referred_schema") in (None, schema)
        if len(columns) == 1 and len(referred) == 1 and same_schema:
            foreign_keys.append(ForeignKey(columns[0], fk["referred_table"], referred[0]))
    return pk, key_source, tuple(foreign_keys)


def _reflect_table(
    url: str,
    schema: str | None,
    name: str,
    key: tuple[str, ...],
    key_source: str,
    foreign_keys: tuple[ForeignKey, ...],
    sample_rows: int,
) -> ReflectedTable | Skipped:
    if not set(name) <= _TOPIC_SAFE or len(name) > 200:
        return Skipped(
            name,
            "its name is part of Kafka topic names (`<pipeline>.<table>.active`), which allow"
            " only letters, digits, `.`, `_` and `-`: rename the table, or create a view"
            " with such a name and add it under `tables:` with its `primary_key`",
        )
    if not key:
        return Skipped(
            name,
            "it has no primary key (nor a unique constraint on NOT NULL columns), which"
            " DataPlump needs to key and order its rows: add one, or add the table under"
            " `tables:` yourself with `primary_key: [columns...]`",
        )
    source_config = SourceConfig.model_validate({"url": SecretUrl(url), "schema": schema})
    table_config = TableConfig(primary_key=key, batch_size=max(sample_rows, 1))
    try:
        with open_source(source_config, name, table_config) as source:
            columns = source.columns
            with source.read() as read:
                first = next(read, None)
            sample = pa.Table.from_batches([first]) if first is not None else source.schema
            if isinstance(sample, pa.Schema):
                sample = sample.empty_table()
    except (SourceError, TransientSourceError) as exc:
        if isinstance(exc, TransientSourceError):
            raise ScaffoldError(str(exc)) from None
        return Skipped(name, str(exc))
    return ReflectedTable(name, columns, key, key_source, foreign_keys, sample=sample)


def _count_orphans(url: URL, schema: str | None, tables: list[ReflectedTable]) -> None:
    """Count, for each foreign key between two reflected tables, the child rows whose
    value the parent lacks (SQLite, for one, does not enforce foreign keys)."""
    by_name = {t.name: t for t in tables}
    wanted = [(t, fk) for t in tables for fk in t.foreign_keys if fk.parent in by_name]
    if not wanted:
        return
    engine = catalog_engine(url)
    try:
        with _wrapped("checking foreign keys", url), engine.connect() as conn:
            for table, fk in wanted:
                child = sa.table(table.name, sa.column(fk.column), schema=schema)
                parent = sa.table(fk.parent, sa.column(fk.field), schema=schema)
                value, match = child.c[fk.column], parent.c[fk.field]
                query = (
                    sa.select(sa.func.count())
                    .select_from(child)
                    .where(value.is_not(None), ~sa.exists().where(match == value))
                )
                orphans = int(conn.execute(query).scalar_one())
                table.foreign_keys = tuple(
                    ForeignKey(f.column, f.parent, f.field, orphans) if f == fk else f
                    for f in table.foreign_keys
                )
    finally:
        engine.dispose()
