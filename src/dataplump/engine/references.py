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

**Reload on a miss.** A copy can be older than the rows it is used with: an order
inserted a moment after its customer finds no customer in a copy loaded before both.
When rows of a batch fail and a reference they used may be such a copy,
:meth:`ReferenceTables.refresh_stale` reloads it (``refresh_on_miss``, default on) and
the caller redoes the batch once. The ordering that makes this exact: the referenced row
was committed before the referencing row was extracted (``dp.extracted_at`` is stamped
after the extraction's read), so a load that *began* after that extraction finds it. A
copy whose load began later than the newest failed row's extraction (plus
:data:`CLOCK_SKEW_SECONDS`) is therefore fresh enough: its misses are real and nothing
is reloaded. Otherwise the reference is reloaded, at most once per
``min_refresh_seconds`` (default 1 s): a caller that comes sooner waits for its turn
rather than fail rows a reload would have found. So a key that is really absent costs at
most one reload per ``min_refresh_seconds``, and none once the copy is newer than the
rows. Threads share the reloads: a reload another thread did since the batch began
counts.

How each kind is read: ``table`` through :func:`dataplump.sources.open_source` (the
source's own Arrow read path and type mapping: PostgreSQL's COPY stream, SQLite, ...),
``csv`` with ``pyarrow.csv`` (types inferred), ``parquet`` with ``pyarrow.parquet``,
``delta`` with ``deltalake`` (the latest version).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
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
CLOCK_SKEW_SECONDS = 1.0
"""How far the clocks of the extracting and the transforming machine may differ: a copy
counts as newer than a row only when its load began this much after the row's
``dp.extracted_at``."""


@dataclass
class _Loaded:
    table: pa.Table
    loaded_at: float
    """``clock`` time the load began."""
    checked_at: float
    """``clock`` time of the last load or load attempt (what the intervals count from)."""
    began: float
    """``wall_clock`` time the load began (compared with ``dp.extracted_at``)."""
    generation: int
    """1 for the first copy, one more for each reload."""


@dataclass(frozen=True)
class ReferenceCopies:
    """Which copy of some references was loaded when a batch began
    (:meth:`ReferenceTables.copies`)."""

    generations: Mapping[str, int]
    """Per reference, 1 for its first copy, one more per reload; 0: not loaded yet."""
    taken_at: float
    """``clock`` time this was taken."""


class ReferenceTables:
    """The references of one pipeline config, loaded lazily and shared by its transforms.

    Thread-safe. ``clock`` (seconds, monotonic), ``wall_clock`` (seconds since the epoch)
    and ``sleep`` are for tests.
    """

    def __init__(
        self,
        config: PipelineConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._references = config.transform.references
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._loaded: dict[str, _Loaded] = {}
        self._locks = {name: threading.Lock() for name in self._references}
        self.reloads_on_miss: dict[str, int] = dict.fromkeys(self._references, 0)
        """Reloads :meth:`refresh_stale` did, per reference, since this object was made."""

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
        with self._locks[name]:
            now = self._clock()
            entry = self._loaded.get(name)
            due = entry is not None and (
                config.refresh_seconds is not None
                and now - entry.checked_at >= config.refresh_seconds
            )
            if entry is not None and not due:
                return entry.table
            try:
                loaded = self._reload(name, config, entry)
            except (ReferenceLoadError, TransientReferenceLoadError) as exc:
                if entry is None:
                    raise
                log.warning("%s; the copy loaded before keeps serving", exc)
                return entry.table
            log.info("reference `%s` loaded: %d rows", name, loaded.table.num_rows)
            return loaded.table

    def copies(self, names: Iterable[str]) -> ReferenceCopies:
        """Which copy of each of ``names`` is loaded now: take this before a batch and
        pass it to :meth:`refresh_stale` after."""
        generations = {}
        for name in names:
            entry = self._loaded.get(name)
            generations[name] = entry.generation if entry is not None else 0
        return ReferenceCopies(generations, self._clock())

    def refresh_stale(
        self,
        used: ReferenceCopies,
        names: Iterable[str] | None = None,
        *,
        extracted_at: float | None = None,
        why: str = "",
    ) -> list[str]:
        """Reload those of ``names`` (default: all of ``used``) that may be older than
        rows that failed with them; return those that have a newer copy than ``used``
        now (redo the batch if any).

        ``used`` is :meth:`copies` taken before the batch; ``extracted_at`` the newest
        ``dp.extracted_at`` of the failed rows (``wall_clock`` seconds), if known. A copy
        is fresh enough, and its misses real, when its load began after ``used`` was
        taken (so after the rows were extracted) or more than :data:`CLOCK_SKEW_SECONDS`
        after ``extracted_at``. A copy that is not is reloaded, unless ``refresh_on_miss``
        is off, at most once per ``min_refresh_seconds`` since its last load: this waits
        for the turn. A reload another thread did meanwhile counts. ``why`` is logged with
        the reload (e.g. "table `orders`: 3 row(s) failed").

        A reload that fails for good (a file removed) is logged and the old copy kept;
        one whose database cannot be reached raises
        :class:`TransientReferenceLoadError`: the batch cannot be judged now, redo it later.
        """
        newer = []
        for name in used.generations if names is None else names:
            config = self._references.get(name)
            if config is None or not config.refresh_on_miss or name not in used.generations:
                continue
            if self._refresh_one(name, config, used, extracted_at, why):
                newer.append(name)
        return newer

    def _refresh_one(
        self,
        name: str,
        config: ReferenceConfig,
        used: ReferenceCopies,
        extracted_at: float | None,
        why: str,
    ) -> bool:
        while True:
            with self._locks[name]:
                entry = self._loaded.get(name)
                if entry is None:
                    return False  # never loaded: the batch did not use it
                if entry.loaded_at > used.taken_at or (
                    extracted_at is not None and entry.began > extracted_at + CLOCK_SKEW_SECONDS
                ):
                    # a copy first loaded during the batch is fresh: the batch used it
                    before = used.generations[name]
                    return before != 0 and entry.generation != before
                wait = entry.checked_at + config.min_refresh_seconds - self._clock()
                if wait <= 0:
                    return self._reload_on_miss(name, config, entry, why)
            self._sleep(wait)  # outside the lock: others keep using the copy meanwhile

    def _reload_on_miss(self, name: str, config: ReferenceConfig, entry: _Loaded, why: str) -> bool:
        started = time.perf_counter()
        try:
            loaded = self._reload(name, config, entry)
        except ReferenceLoadError as exc:
            log.warning("%s; the copy loaded before keeps serving", exc)
            return False
        self.reloads_on_miss[name] += 1
        log.info(
            "reference `%s` reloaded on a miss%s: %d rows in %.0f ms",
            name,
            f" ({why})" if why else "",
            loaded.table.num_rows,
            (time.perf_counter() - started) * 1000,
        )
        return True

    def _reload(self, name: str, config: ReferenceConfig, entry: _Loaded | None) -> _Loaded:
        """Load ``name`` and keep the copy (caller holds its lock); on an error the old
        entry, if any, counts the attempt (the next one waits its interval)."""
        now, began = self._clock(), self._wall_clock()
        try:
            table = self._load(name, config)
        except (ReferenceLoadError, TransientReferenceLoadError):
            if entry is not None:
                entry.checked_at = now
            raise
        generation = entry.generation + 1 if entry is not None else 1
        loaded = self._loaded[name] = _Loaded(table, now, now, began, generation)
        return loaded

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
