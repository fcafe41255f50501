"""The `orders` table on a real database, its pipeline file, and `dataplump extract` as a process.

Row ``i`` of ``orders`` is a pure function of ``i`` (:func:`amount`, :func:`status`,
:func:`updated_at`), so a test knows which rows the contract must accept and which
it must reject without reading the database back:

- ``amount`` is a ``decimal(10,2)`` with a trailing zero (``"12.10"``), negative for
  ``i % 20 == 7`` (5% of the rows break ``min: 0``);
- ``status`` is ``new`` or ``paid``, and ``lost`` for ``i % 60 == 7`` (those rows
  break ``accepted_values`` too: two reasons);
- ``updated_at`` grows with ``i`` but :data:`TIES` consecutive rows share one value,
  so incremental batches end in the middle of a group of equal cursor values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from tests.support.cli import CliResult, Command

Kind = Literal["sqlite", "postgres", "mariadb"]

BASE = datetime(2024, 1, 1, tzinfo=UTC)
TIES = 7
"""Consecutive rows sharing one ``updated_at`` value."""


def is_valid(i: int) -> bool:
    """Row ``i`` meets the contract of :func:`orders_contract`."""
    return i % 20 != 7


def amount(i: int) -> Decimal:
    """``amount`` of row ``i``: scale 2, a trailing zero, negative for invalid rows."""
    if not is_valid(i):
        return Decimal(f"-{1 + i % 9}.50")
    return Decimal(f"{i % 1000}.10")


def status(i: int) -> str:
    """``status`` of row ``i``."""
    if i % 60 == 7:
        return "lost"
    return "new" if i % 2 else "paid"


def updated_at(i: int) -> datetime:
    """``updated_at`` of row ``i`` (UTC): shared by :data:`TIES` rows, with microseconds."""
    return BASE + timedelta(seconds=i // TIES, microseconds=250_000)


def broken_rules(i: int) -> set[tuple[str, str]]:
    """(rule, column) pairs row ``i`` breaks."""
    broken = set()
    if not is_valid(i):
        broken.add(("min", "amount"))
    if status(i) == "lost":
        broken.add(("accepted_values", "status"))
    return broken


def orders_contract(kind: Kind, *, version: str = "3") -> dict[str, Any]:
    """The contract of ``orders``: ``min`` on amount, ``accepted_values`` on status."""
    return {
        "version": version,
        "owner": "@orders-team",
        "columns": {
            "id": {"type": "int64", "not_null": True},
            "amount": {"type": "decimal(10,2)", "min": 0},
            "status": {"type": "string", "owner": "@shop-ops", "accepted_values": ["new", "paid"]},
            "updated_at": {
                "type": "timestamp" if kind == "sqlite" else "timestamptz",
                "not_null": True,
            },
        },
    }


@dataclass
class OrdersDb:
    """The ``orders`` table on one fresh database."""

    kind: Kind
    url: str
    engine: sa.Engine = field(init=False)

    def __post_init__(self) -> None:
        args: dict[str, Any] = {}
        if self.kind == "mariadb":  # naive datetimes written to TIMESTAMP columns are UTC
            args["connect_args"] = {"init_command": "SET time_zone = '+00:00'"}
        self.engine = sa.create_engine(self.url, poolclass=NullPool, **args)

    def create(self, table: str = "orders") -> None:
        """Create the (empty) table; a SQLite database is switched to WAL, so rows can be
        inserted while the extractor reads."""
        ts = {"sqlite": "TIMESTAMP", "postgres": "timestamptz", "mariadb": "TIMESTAMP(6)"}
        text = "VARCHAR(20)" if self.kind == "mariadb" else "TEXT"
        key = "INTEGER" if self.kind == "sqlite" else "BIGINT"
        with self.engine.begin() as conn:
            if self.kind == "sqlite":
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            conn.exec_driver_sql(
                f"CREATE TABLE {table} (id {key} NOT NULL PRIMARY KEY, amount NUMERIC(10,2),"
                f" status {text}, updated_at {ts[self.kind]} NOT NULL)"
            )

    def insert(self, ids: Iterable[int], table: str = "orders") -> None:
        """Insert rows :func:`order` describes."""
        rows = [
            {"id": i, "amount": self._amount(i), "status": status(i), "ts": self._ts(i)}
            for i in ids
        ]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO {table} (id, amount, status, updated_at)"  # noqa: S608
                    " VALUES (:id, :amount, :status, :ts)"
                ),
                rows,
            )

    def _amount(self, i: int) -> Any:
        return str(amount(i)) if self.kind == "sqlite" else amount(i)

    def _ts(self, i: int) -> Any:
        value = updated_at(i)
        if self.kind == "postgres":
            return value
        naive = value.replace(tzinfo=None)
        return naive.strftime("%Y-%m-%d %H:%M:%S.%f") if self.kind == "sqlite" else naive

    def close(self) -> None:
        self.engine.dispose()


WIDE_ORDERS = """
INSERT INTO orders
SELECT g,
       CASE WHEN g % 20 = 7 THEN -(1 + g % 9) - 0.5 ELSE (g % 1000) + 0.10 END,
       CASE WHEN g % 60 = 7 THEN 'lost' WHEN g % 2 = 1 THEN 'new' ELSE 'paid' END,
       timestamptz '2024-01-01 00:00:00.25+00' + (g / 7) * interval '1 second',
       repeat('x', 200)
FROM generate_series(1, :rows) AS g
"""


def fill_wide_orders(db: OrdersDb, rows: int) -> None:
    """Orders ``1..rows`` in PostgreSQL with a 200-character ``note`` each (~250 bytes a
    row), valid as :func:`is_valid` says: a read of them streams for a while."""
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE orders ADD COLUMN note text")
        conn.execute(sa.text(WIDE_ORDERS), {"rows": rows})


def orders_table(
    kind: Kind, *, mode: str, batch_size: int, contract: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``tables.orders`` entry of a pipeline file."""
    table: dict[str, Any] = {
        "primary_key": "id",
        "mode": mode,
        "batch_size": batch_size,
        "contract": dict(contract) if contract is not None else orders_contract(kind),
    }
    if mode == "incremental":
        table["cursor"] = "updated_at"
    return table


def write_pipeline(
    path: Path,
    *,
    name: str,
    url: str,
    bootstrap: str,
    tables: Mapping[str, Any],
    framing: str = "row",
) -> Path:
    """Write a pipeline file (JSON, which is YAML) naming an existing Kafka cluster."""
    config = {
        "pipeline": {"name": name},
        "source": {"url": url},
        "kafka": {"bootstrap_servers": bootstrap, "topic": {"framing": framing}},
        "tables": dict(tables),
    }
    path.write_text(json.dumps(config, indent=2))
    return path


# --- the CLI as a process -------------------------------------------------------------


class Extraction(Command):
    """One ``dataplump extract --once`` process; output goes to files (no pipe to fill)."""

    def __init__(self, config: Path, *args: str, logs: Path, label: str = "extract") -> None:
        super().__init__(
            "extract", "-c", str(config), "--once", *args, logs=logs, cwd=config.parent, label=label
        )


def run_extract(config: Path, *args: str, logs: Path, timeout: float = 120.0) -> CliResult:
    """Run ``dataplump extract --once`` to its end."""
    return Extraction(config, *args, logs=logs).wait(timeout)
