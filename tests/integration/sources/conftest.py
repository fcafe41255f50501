"""A fresh real database per test, the same helper for PostgreSQL, MariaDB and SQLite.

Tests that work on every backend take the ``db`` fixture, parametrized over the three;
the ``postgres``/``mariadb`` markers are set on each parameter, since the fixture asks
for the URL fixture by name only when the test runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dataplump.config.models import SourceConfig, TableConfig
from dataplump.sources import Source, Watermark, open_source

BACKENDS = [
    pytest.param("postgres", marks=[pytest.mark.integration, pytest.mark.postgres], id="pg"),
    pytest.param("mariadb", marks=[pytest.mark.integration, pytest.mark.mariadb], id="mariadb"),
    pytest.param("sqlite", id="sqlite"),
]
_URL_FIXTURE = {"postgres": "postgres_url", "mariadb": "mariadb_url", "sqlite": "sqlite_url"}


@dataclass
class Db:
    """One fresh database: run SQL on it, open sources on it."""

    kind: str
    url: str
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        args: dict[str, Any] = {}
        if self.kind == "mariadb":  # naive datetimes we insert into TIMESTAMP columns are UTC
            args["connect_args"] = {"init_command": "SET time_zone = '+00:00'"}
        self.engine = sa.create_engine(self.url, poolclass=NullPool, **args)

    @property
    def ts_type(self) -> str:
        """A timestamp type for cursor columns: with zone where the database has one."""
        return {"postgres": "timestamptz", "mariadb": "timestamp(6)", "sqlite": "DATETIME"}[
            self.kind
        ]

    @property
    def aware(self) -> bool:
        """Values of :attr:`ts_type` are read as UTC instants (not naive)."""
        return self.kind != "sqlite"

    def ts(self, value: datetime) -> Any:
        """``value`` (aware, UTC) as a parameter for a :attr:`ts_type` column."""
        if self.kind == "postgres":
            return value
        naive = value.astimezone(UTC).replace(tzinfo=None)
        if self.kind == "sqlite":
            return naive.strftime("%Y-%m-%d %H:%M:%S.%f")
        return naive

    def read_ts(self, value: datetime) -> datetime:
        """How a :attr:`ts_type` value written from ``value`` comes back in a batch."""
        return value.astimezone(UTC) if self.aware else value.astimezone(UTC).replace(tzinfo=None)

    def q(self, name: str) -> str:
        """``name`` quoted for this database."""
        return self.engine.dialect.identifier_preparer.quote_identifier(name)

    def run(self, *statements: str, params: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Run each statement (with ``params`` as executemany rows for the last one)."""
        with self.engine.begin() as conn:
            for i, statement in enumerate(statements):
                last = i == len(statements) - 1
                if params is not None and last:
                    conn.execute(sa.text(statement), list(params))
                else:
                    conn.execute(sa.text(statement))

    def now(self) -> datetime:
        """The database's clock, in UTC (all servers run on this machine)."""
        return datetime.now(UTC)

    def open(self, table: str, *, schema: str | None = None, **config: Any) -> Source:
        """``open_source`` on this database with ``config`` as the table's config."""
        source = SourceConfig.model_validate({"url": self.url, "schema": schema})
        return open_source(source, table, TableConfig.model_validate(config))

    def items_table(self, name: str = "items") -> None:
        """``name(id, name, amount NUMERIC(15,2), updated_at <ts_type> NOT NULL)``."""
        self.run(
            f"CREATE TABLE {self.q(name)} (id INTEGER NOT NULL PRIMARY KEY, name VARCHAR(50),"
            f" amount NUMERIC(15,2), updated_at {self.ts_type} NOT NULL)"
        )

    def insert_items(self, rows: Sequence[tuple[int, datetime]], name: str = "items") -> None:
        """Insert ``(id, updated_at)`` rows into :meth:`items_table`."""
        self.run(
            f"INSERT INTO {self.q(name)} (id, name, amount, updated_at)"  # noqa: S608 - quoted
            " VALUES (:id, :name, :amount, :ts)",
            params=[
                {"id": i, "name": f"item {i}", "amount": f"{i}.25", "ts": self.ts(ts)}
                for i, ts in rows
            ],
        )


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest) -> Iterator[Db]:
    """A fresh database on each backend."""
    url = request.getfixturevalue(_URL_FIXTURE[request.param])
    database = Db(request.param, url)
    yield database
    database.engine.dispose()


def read_all(source: Source, since: Watermark | None = None) -> tuple[pa.Table, Watermark | None]:
    """Every batch of one read as a table (schema kept when empty), and the end watermark."""
    with source.read(since) as read:
        batches = list(read)
        for batch in batches:
            assert batch.num_rows <= source.config.batch_size
            assert batch.schema == source.schema
        return pa.Table.from_batches(batches, schema=source.schema), read.watermark


def ids(table: pa.Table, column: str = "id") -> list[int]:
    """The key column as a list."""
    return [int(v) for v in table.column(column).to_pylist()]
