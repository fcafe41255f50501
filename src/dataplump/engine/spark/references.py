"""Reference tables as Spark DataFrames, for the SQL steps of the Spark engine.

The same ``transform.references:`` as the DuckDB engine
(:class:`~dataplump.config.models.ReferenceConfig`), read with Spark:

- ``table``: Spark's JDBC source on the pipeline's source database (``source.url``,
  made a JDBC URL by :func:`jdbc_url`; user and password go as options, never in the
  URL, a log line or an error). The driver jar comes from Maven Central
  (:func:`jdbc_packages`, pass them to ``spark_session(packages=...)``); a session
  started without it gets it at the first read through ``ADD JAR ivy://...``.
- ``csv``: ``spark.read.csv`` with a header and ``inferSchema`` (Spark's inference:
  it may type a column differently than ``pyarrow.csv`` does for the DuckDB engine).
- ``parquet``: ``spark.read.parquet``.
- ``delta``: the ``deltalake`` package to Arrow (its latest version), then
  ``createDataFrame``: no Delta jar in the session.

A reference is read on first use, persisted and counted (one Spark job); up to
``broadcast_rows`` rows it is marked ``F.broadcast`` so that joins ship it to every
task instead of shuffling the batch. With ``refresh_seconds`` it is read again on the
first use after it got that old (the old copy is unpersisted); if that read fails,
the old copy keeps serving and a warning is logged.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dataplump.engine.errors import ReferenceLoadError, TransientReferenceLoadError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, DataFrameReader, SparkSession

    from dataplump.config.models import PipelineConfig, ReferenceConfig, SourceConfig

log = logging.getLogger(__name__)

_reads = itertools.count(1)
BROADCAST_ROWS = 1_000_000
"""References with at most this many rows are broadcast to the join's tasks."""


@dataclass(frozen=True)
class JdbcDriver:
    """A database's JDBC driver: its class and its Maven coordinates."""

    driver: str
    package: str
    scheme: str
    quote: str


POSTGRESQL = JdbcDriver(
    "org.postgresql.Driver", "org.postgresql:postgresql:42.7.14", "postgresql", '"'
)
MARIADB = JdbcDriver(
    "org.mariadb.jdbc.Driver", "org.mariadb.jdbc:mariadb-java-client:3.5.11", "mariadb", "`"
)
SQLITE = JdbcDriver("org.sqlite.JDBC", "org.xerial:sqlite-jdbc:3.54.1.0", "sqlite", '"')
_DRIVERS = {"postgresql": POSTGRESQL, "mysql": MARIADB, "mariadb": MARIADB, "sqlite": SQLITE}
_TRANSIENT = (
    "Connection refused",
    "Connection to",
    "could not connect",
    "Could not connect",
    "Communications link failure",
    "Socket fail to connect",
    "timed out",
    "Timeout",
)


@dataclass(frozen=True)
class Jdbc:
    """How Spark's JDBC source reaches the source database (``options`` hold secrets)."""

    url: str
    """The JDBC URL, without user or password."""
    driver: JdbcDriver
    options: Mapping[str, str]
    """``user``/``password`` when the source URL has them."""


def jdbc_url(source: SourceConfig) -> Jdbc:
    """The JDBC form of ``source.url``: PostgreSQL, MySQL/MariaDB (MariaDB's driver) or
    a SQLite file; :class:`ReferenceLoadError` for another database, an in-memory SQLite
    or a PostgreSQL reached by a Unix socket (JDBC speaks TCP)."""
    try:
        url = make_url(source.url.get_secret_value())
    except (ArgumentError, ValueError):
        raise ReferenceLoadError(
            f"`source.url` is not a SQLAlchemy URL: {source.masked_url()}"
        ) from None
    backend = url.get_backend_name()
    driver = _DRIVERS.get(backend)
    if driver is None:
        raise ReferenceLoadError(
            f"Spark reads `table` references from PostgreSQL, MySQL/MariaDB and SQLite, not"
            f" `{backend}` (`source.url` {source.masked_url()})"
        )
    if driver is SQLITE:
        if not url.database or url.database == ":memory:":
            raise ReferenceLoadError(
                "an in-memory SQLite `source.url` cannot be read by Spark: use a file"
            )
        from pathlib import Path

        return Jdbc(f"jdbc:sqlite:{Path(url.database).resolve()}", driver, {})
    if "host" in url.query or not url.host:
        raise ReferenceLoadError(
            f"Spark reads `table` references over TCP: give `source.url` a host"
            f" ({source.masked_url()})"
        )
    port = f":{url.port}" if url.port else ""
    params = ""
    if driver is POSTGRESQL and "sslmode" in url.query:
        params = f"?sslmode={url.query['sslmode']}"
    options = {}
    if url.username:
        options["user"] = url.username
    if url.password:
        options["password"] = str(url.password)
    return Jdbc(
        f"jdbc:{driver.scheme}://{url.host}{port}/{url.database or ''}{params}", driver, options
    )


def jdbc_packages(config: PipelineConfig) -> list[str]:
    """Maven coordinates of the JDBC driver the config's ``table`` references need (none
    when it has no such reference): give them to ``spark_session(packages=...)``."""
    if not any(ref.table is not None for ref in config.transform.references.values()):
        return []
    return [jdbc_url(config.source).driver.package]


@dataclass
class _Loaded:
    frame: DataFrame
    rows: int
    loaded_at: float


class SparkReferences(Mapping[str, "DataFrame"]):
    """The references of one pipeline config as Spark DataFrames, read lazily, shared by
    the tables' transforms; ``references[name]`` reads or refreshes when due.

    Thread-safe; ``clock`` (monotonic seconds) is for tests."""

    def __init__(
        self,
        spark: SparkSession,
        config: PipelineConfig,
        *,
        broadcast_rows: int = BROADCAST_ROWS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spark = spark
        self._config = config
        self._references = config.transform.references
        self.broadcast_rows = broadcast_rows
        self._clock = clock
        self._loaded: dict[str, _Loaded] = {}
        self._locks = {name: threading.Lock() for name in self._references}

    def __iter__(self) -> Iterator[str]:
        return iter(self._references)

    def __len__(self) -> int:
        return len(self._references)

    def __contains__(self, name: object) -> bool:
        return name in self._references

    def __getitem__(self, name: str) -> DataFrame:
        """The reference ``name`` (persisted; broadcast when small), read when first used
        or due; :class:`ReferenceLoadError` / :class:`TransientReferenceLoadError` when it
        cannot be read and no copy was read before. (A ``KeyError`` for an undeclared
        name, as a mapping; use :meth:`get_reference` for the error with a hint.)"""
        if name not in self._references:
            raise KeyError(name)
        return self.get_reference(name)

    def get_reference(self, name: str) -> DataFrame:
        """Like ``self[name]``, but an undeclared name is a :class:`ReferenceLoadError`."""
        if name not in self._references:
            names = tuple(self._references)
            close = get_close_matches(name, names, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ReferenceLoadError(
                f"no reference `{name}`; {hint}(references: {', '.join(names) or '-'})"
            )
        config = self._references[name]
        with self._locks[name]:
            entry = self._loaded.get(name)
            now = self._clock()
            if entry is not None and (
                config.refresh_seconds is None or now - entry.loaded_at < config.refresh_seconds
            ):
                return entry.frame
            try:
                frame = self._read(name, config).persist()
                rows = frame.count()
            except (ReferenceLoadError, TransientReferenceLoadError) as exc:
                if entry is None:
                    raise
                entry.loaded_at = now  # the next attempt waits an interval
                log.warning("%s; the copy loaded before keeps serving", exc)
                return entry.frame
            except Exception as exc:  # Spark errors while counting: a bad file, a bad type
                error = self._error(name, exc)
                if entry is None:
                    raise error from None
                entry.loaded_at = now
                log.warning("%s; the copy loaded before keeps serving", error)
                return entry.frame
            if rows <= self.broadcast_rows:
                from pyspark.sql import functions as F

                frame = F.broadcast(frame)
            if entry is not None:
                entry.frame.unpersist()
            self._loaded[name] = _Loaded(frame, rows, now)
            log.info("reference `%s` loaded into Spark: %d rows", name, rows)
            return frame

    def rows(self, name: str) -> int | None:
        """Rows of the copy of ``name`` read last, or None if never read."""
        entry = self._loaded.get(name)
        return entry.rows if entry is not None else None

    def unpersist(self) -> None:
        """Release every loaded copy (a later use reads it again)."""
        for name in list(self._loaded):
            with self._locks[name]:
                self._loaded.pop(name).frame.unpersist()

    # ---- reading ------------------------------------------------------------------

    def _read(self, name: str, config: ReferenceConfig) -> DataFrame:
        try:
            if config.table is not None:
                return self._read_table(config)
            # a read of the same file has the same plan, and Spark would answer it from the
            # previous copy's cache: an option of its own makes each read a new plan
            reader = self.spark.read.option("dataplump.read", str(next(_reads)))
            if config.csv is not None:
                return reader.csv(str(config.csv), header=True, inferSchema=True)
            if config.parquet is not None:
                return reader.parquet(str(config.parquet))
            return self._read_delta(name, config)
        except (ReferenceLoadError, TransientReferenceLoadError) as exc:
            raise type(exc)(f"reference `{name}`: {exc}") from None
        except Exception as exc:
            raise self._error(name, exc) from None

    def _read_table(self, config: ReferenceConfig) -> DataFrame:
        jdbc = jdbc_url(self._config.source)
        self._ensure_driver(jdbc.driver)
        schema = config.db_schema or self._config.source.db_schema
        q = jdbc.driver.quote
        parts = [schema, str(config.table)] if schema else [str(config.table)]
        table = ".".join(f"{q}{p.replace(q, q + q)}{q}" for p in parts)
        reader = (
            self.spark.read.format("jdbc")
            .option("url", jdbc.url)
            .option("driver", jdbc.driver.driver)
            .option("dbtable", table)
            .option("fetchsize", "10000")
        )
        for key, value in jdbc.options.items():
            reader = reader.option(key, value)
        frame = reader.load()  # reads the schema only (a query for no rows)
        if jdbc.driver is SQLITE:
            frame = _sqlite_dates(reader, frame)
        return frame

    def _ensure_driver(self, driver: JdbcDriver) -> None:
        """Add the driver's jar (``ADD JAR ivy://``) when the session lacks it."""
        jvm = self.spark._jvm
        assert jvm is not None
        loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
        try:
            jvm.java.lang.Class.forName(driver.driver, True, loader)
            return
        except Exception:  # py4j: ClassNotFoundException
            log.info("adding the JDBC driver %s to the Spark session", driver.package)
        try:
            self.spark.sql(f"ADD JAR 'ivy://{driver.package}?transitive=false'")
        except Exception as exc:  # the jar cannot be resolved: offline, a proxy
            raise ReferenceLoadError(
                f"the JDBC driver {driver.package} is not in the Spark session and cannot be"
                f" added ({_line(exc)}): start Spark with packages=jdbc_packages(config)"
            ) from None

    def _read_delta(self, name: str, config: ReferenceConfig) -> DataFrame:
        from deltalake import DeltaTable
        from deltalake.exceptions import DeltaError
        from polars.exceptions import PolarsError

        from dataplump.engine.python_steps import plain_types
        from dataplump.engine.spark.session import arrow_frame
        from dataplump.sinks.delta import read_delta

        try:
            table = plain_types(read_delta(DeltaTable(str(config.delta))))
        except (DeltaError, PolarsError, OSError) as exc:
            raise ReferenceLoadError(
                f"cannot read the Delta table {config.delta}: {_line(exc)}"
            ) from None
        return arrow_frame(self.spark, table)

    def _error(self, name: str, exc: BaseException) -> Exception:
        """A Spark or driver error as a reference error, the password never in it."""
        message = _line(exc)
        password = None
        with contextlib.suppress(ArgumentError, ValueError):
            password = make_url(self._config.source.url.get_secret_value()).password
        if password:
            message = message.replace(str(password), "***")
        cls = (
            TransientReferenceLoadError
            if any(t in str(exc) for t in _TRANSIENT)
            else ReferenceLoadError
        )
        return cls(f"reference `{name}`: {message}")


def _sqlite_dates(reader: DataFrameReader, frame: DataFrame) -> DataFrame:
    """SQLite keeps dates and times as text, which sqlite-jdbc parses with one fixed
    format (``yyyy-MM-dd HH:mm:ss.SSS``; a plain date fails the read): read such columns
    as strings and let Spark cast them (a value that is no date becomes null)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

    temporal = {
        f.name: f.dataType
        for f in frame.schema.fields
        if isinstance(f.dataType, DateType | TimestampType | TimestampNTZType)
    }
    if not temporal:
        return frame
    custom = ", ".join(f"`{name.replace('`', '``')}` STRING" for name in temporal)
    text = reader.option("customSchema", custom).load()
    return text.select(
        *[
            F.col(f"`{c}`").try_cast(temporal[c]).alias(c) if c in temporal else F.col(f"`{c}`")
            for c in text.columns
        ]
    )


def _line(exc: BaseException) -> str:
    for line in str(exc).strip().splitlines():
        line = line.strip()
        if line and not line.startswith("An error occurred while calling"):
            return line if len(line) <= 500 else line[:497] + "..."
    return type(exc).__name__
