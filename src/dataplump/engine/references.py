"""Reference tables: lookup tables declared in the config, loaded once, cached, refreshed.

::

    transform:
      references:
        customers: {table: customers, refresh_seconds: 300}   # from source.url
        countries: {csv: ref/countries.csv}
        regions:   {parquet: ref/regions.parquet}
        fx:        {delta: lake/fx}

A reference is loaded whole on first use (:meth:`ReferenceTables.get`) and kept as one
Arrow table. With ``refresh_seconds`` it is reloaded on the first use after it got that
old; if the reload fails, the loaded copy keeps serving (a warning is logged) and the
next reload is tried one interval later. Without ``refresh_seconds`` it is loaded once.

How each kind is read: ``table`` through :func:`dataplump.sources.open_source` (the
source's own Arrow read path and type mapping: PostgreSQL's COPY stream, SQLite, ...),
``csv`` with ``pyarrow.csv`` (types inferred), ``parquet`` with ``pyarrow.parquet``,
``delta`` with ``deltalake`` (the latest version).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from difflib import get_close_matches
from typing import TYPE_CHECKING

import pyarrow as pa

from dataplump.engine.errors import ReferenceLoadError, TransientReferenceLoadError
from dataplump.engine.python_steps import plain_types

if TYPE_CHECKING:
    import duckdb

    from dataplump.config.models import PipelineConfig, ReferenceConfig

log = logging.getLogger(__name__)

READ_BATCH_ROWS = 65_536
"""Rows per batch when a reference is read from the source database."""


@dataclass
class _Loaded:
    table: pa.Table
    loaded_at: float
    checked_at: float


class ReferenceTables:
    """The references of one pipeline config, loaded lazily and shared by its transforms.

    Thread-safe. ``clock`` (seconds, monotonic) is for tests.
    """

    def __init__(
        self, config: PipelineConfig, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._references = config.transform.references
        self._clock = clock
        self._loaded: dict[str, _Loaded] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        """The declared references, in config order."""
        return tuple(self._references)

    def get(self, name: str) -> pa.Table:
        """The reference ``name``, loading or refreshing it when due.

        Raises :class:`ReferenceLoadError` (terminal: fix the config, the file or the table)
        or :class:`TransientReferenceLoadError` (its database cannot be reached) when it
        cannot be loaded and no loaded copy exists.
        """
        if name not in self._references:
            close = get_close_matches(name, self.names, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ReferenceLoadError(
                f"no reference `{name}`; {hint}(references: {', '.join(self.names) or '-'})"
            )
        config = self._references[name]
        with self._lock:
            now = self._clock()
            entry = self._loaded.get(name)
            due = entry is not None and (
                config.refresh_seconds is not None
                and now - entry.checked_at >= config.refresh_seconds
            )
            if entry is not None and not due:
                return entry.table
            try:
                table = self._load(name, config)
            except (ReferenceLoadError, TransientReferenceLoadError) as exc:
                if entry is None:
                    raise
                entry.checked_at = now  # try again one interval later
                log.warning("%s; the copy loaded before keeps serving", exc)
                return entry.table
            self._loaded[name] = _Loaded(table, now, now)
            log.info("reference `%s` loaded: %d rows", name, table.num_rows)
            return table

    def loaded_at(self, name: str) -> float | None:
        """When ``name`` was last loaded (``clock`` seconds), or None if never."""
        entry = self._loaded.get(name)
        return entry.loaded_at if entry is not None else None

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        """Expose every reference to ``con`` as a relation named after it."""
        for name in self._references:
            con.register(name, self.get(name))

    # ---- loading ------------------------------------------------------------------

    def _load(self, name: str, config: ReferenceConfig) -> pa.Table:
        what = f"reference `{name}`"
        if config.table is not None:
            return self._load_table(what, config)
        path = config.csv or config.parquet or config.delta
        try:
            if config.csv is not None:
                from pyarrow import csv

                table = csv.read_csv(config.csv)
            elif config.parquet is not None:
                import pyarrow.parquet as pq

                table = pq.read_table(config.parquet)
            else:
                from deltalake import DeltaTable
                from deltalake.exceptions import DeltaError
                from polars.exceptions import PolarsError

                from dataplump.sinks.delta import read_delta  # not to_pyarrow_table: see it

                try:
                    table = read_delta(DeltaTable(str(config.delta)))
                except (DeltaError, PolarsError) as exc:
                    raise ReferenceLoadError(
                        f"{what}: cannot read the Delta table {path}: {_line(exc)}"
                    ) from None
        except (OSError, pa.ArrowException) as exc:
            raise ReferenceLoadError(f"{what}: cannot read {path}: {_line(exc)}") from None
        return plain_types(table.combine_chunks())

    def _load_table(self, what: str, config: ReferenceConfig) -> pa.Table:
        from dataplump.config.models import TableConfig
        from dataplump.sources import SourceError, TransientSourceError, open_source

        table = str(config.table)
        key = config.key
        if key is None and table in self._config.tables:
            key = self._config.tables[table].primary_key
        if key is None:
            raise ReferenceLoadError(
                f"{what}: table `{table}` is not under `tables:`, so name its key:"
                f" `{{table: {table}, key: id}}`"
            )
        source = self._config.source
        if config.db_schema is not None:
            source = source.model_copy(update={"db_schema": config.db_schema})
        try:
            with (
                open_source(
                    source, table, TableConfig(primary_key=key, batch_size=READ_BATCH_ROWS)
                ) as opened,
                opened.read() as read,
            ):
                return pa.Table.from_batches(list(read), schema=opened.schema).combine_chunks()
        except TransientSourceError as exc:
            raise TransientReferenceLoadError(f"{what}: {exc}") from None
        except SourceError as exc:
            raise ReferenceLoadError(f"{what}: {exc}") from None


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
