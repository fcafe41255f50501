"""The source seam: read one table of a SQL database as bounded Arrow record batches.

::

    from dataplump.sources import open_source

    with open_source(config.source, "orders", config.tables["orders"]) as source:
        with source.read(since=stored_watermark) as read:
            for batch in read:            # pyarrow.RecordBatch, at most batch_size rows
                produce(batch)            # ... and store read.watermark in the same transaction
            alerts(source.warnings + read.warnings)

- :func:`open_source` picks the backend from the URL (``postgresql``, ``mysql``/
  ``mariadb``, ``sqlite``), connects, and checks the table, its key, its cursor and its
  column types against the catalog: :class:`Source`.
- :meth:`Source.read` reads after a :class:`Watermark` (``None``: from the start) in a
  fixed order and returns a :class:`SourceRead`, an iterator of record batches whose
  ``watermark`` follows the batches delivered.
- :class:`SourceWarning` is something to alert about (a watermark in the future, rows
  dated in the future, a key that differs from the declared one); reading goes on.
- Every failure is a :class:`SourceError` (terminal: fix the config or the database) or
  a :class:`TransientSourceError` (retry later); no driver exception leaves this package.

How each database is read, the type mapping and the watermark semantics are in
``docs/sources.md``; the measurements behind the choice of read paths in
:mod:`dataplump.sources.postgres` and :mod:`dataplump.sources.mysql`.
"""

from __future__ import annotations

import importlib

from sqlalchemy import exc as sa_exc
from sqlalchemy import make_url

from dataplump.config.models import SourceConfig, TableConfig
from dataplump.sources.base import (
    CursorKind,
    Source,
    SourceColumn,
    SourceRead,
    SourceWarning,
    WarningKind,
)
from dataplump.sources.errors import SourceError, TransientSourceError
from dataplump.sources.watermark import Value, Watermark

__all__ = [
    "BACKENDS",
    "CursorKind",
    "Source",
    "SourceColumn",
    "SourceError",
    "SourceRead",
    "SourceWarning",
    "TransientSourceError",
    "Value",
    "WarningKind",
    "Watermark",
    "open_source",
]

BACKENDS: dict[str, tuple[str, str, str]] = {
    "postgresql": ("dataplump.sources.postgres", "PostgresSource", "postgres"),
    "mysql": ("dataplump.sources.mysql", "MySQLSource", "mysql"),
    "mariadb": ("dataplump.sources.mysql", "MySQLSource", "mysql"),
    "sqlite": ("dataplump.sources.sqlite", "SQLiteSource", ""),
}
"""URL backend name -> (module, class, the dataplump extra that installs its drivers)."""


def open_source(source: SourceConfig, table: str, config: TableConfig) -> Source:
    """Open ``table`` of the ``source`` database for reading as ``config`` says.

    Connects, finds the table (or view), maps its columns to Arrow types and checks the
    key and cursor columns. Raises :class:`SourceError` when that cannot work as
    configured and :class:`TransientSourceError` when the database cannot be reached.
    """
    try:
        url = make_url(source.url.get_secret_value())
    except (sa_exc.ArgumentError, ValueError):
        raise SourceError(f"`source.url` is not a SQLAlchemy URL: {source.masked_url()}") from None
    backend = url.get_backend_name()
    if backend not in BACKENDS:
        raise SourceError(
            f"DataPlump reads PostgreSQL, MySQL/MariaDB and SQLite, not `{backend}`"
            f" (`source.url` {source.masked_url()}): use a `postgresql+psycopg://`,"
            " `mysql+pymysql://` or `sqlite:///` URL",
            table=table,
        )
    module_name, class_name, extra = BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SourceError(
            f"reading {backend} needs the package `{exc.name}`, which is not installed:"
            f" run `pip install 'dataplump[{extra}]'`",
            table=table,
        ) from None
    cls: type[Source] = getattr(module, class_name)
    return cls(source, table, config)
