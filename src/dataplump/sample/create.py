"""``dataplump sample create``: build the shop database, spoil some rows, write the manifest.

::

    from dataplump.sample import create_sample

    manifest = create_sample("sqlite:///shop.db", orders=5000, dirty=0.05, seed=7)
    manifest.tables["orders"].by_rule("dlq")

Sizes follow the number of orders: a customer per 5 orders, a product per 20 (at
least 20 of each, at most 5,000 products), 1 to 5 items per order. The same seed
gives the same rows; timestamps are placed around ``now`` (default: the current time),
so the same seed *and* ``now`` give the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.pool import NullPool

from dataplump.config.models import masked_url
from dataplump.sample import generate
from dataplump.sample.errors import SampleError
from dataplump.sample.faults import FAULTS, FaultContext, inject
from dataplump.sample.manifest import FaultCount, Manifest, TableManifest
from dataplump.sample.schema import TABLES, create_indexes, create_tables, metadata
from dataplump.sample.write import insert_rows

__all__ = ["Sizes", "create_sample", "open_engine"]


@dataclass(frozen=True)
class Sizes:
    """Rows per table for a number of orders (items follow the orders)."""

    customers: int
    products: int
    orders: int

    @classmethod
    def for_orders(cls, orders: int) -> Sizes:
        return cls(max(20, orders // 5), min(5000, max(20, orders // 20)), orders)


def masked(url: str) -> str:
    """``url`` with its password hidden."""
    try:
        return masked_url(sa.make_url(url))
    except (sa_exc.ArgumentError, ValueError):
        return "<not a SQLAlchemy URL>"


def open_engine(url: str) -> sa.Engine:
    """An engine for ``url`` (no pool: one connection at a time), or :class:`SampleError`."""
    try:
        parsed = sa.make_url(url)
    except (sa_exc.ArgumentError, ValueError):
        raise SampleError(
            f"`{url}` is not a SQLAlchemy URL; write e.g. sqlite:///shop.db,"
            " postgresql+psycopg://user:pw@host/db or mysql+pymysql://user:pw@host/db"
        ) from None
    args: dict[str, Any] = {"poolclass": NullPool}
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        args["connect_args"] = {"init_command": "SET time_zone = '+00:00'"}
    try:
        return sa.create_engine(parsed, **args)
    except ImportError as exc:
        raise SampleError(
            f"{parsed.get_backend_name()} needs the driver `{exc.name}`: run"
            " `pip install 'dataplump[postgres]'` or `pip install 'dataplump[mysql]'`"
        ) from None


def _prepare(engine: sa.Engine, replace: bool) -> None:
    existing = set(sa.inspect(engine).get_table_names()) & set(TABLES)
    if existing and not replace:
        raise SampleError(
            f"{masked(engine.url.render_as_string(hide_password=False))} already has the"
            f" table(s) {', '.join(sorted(existing))}; pass --replace to drop and recreate"
            " them, or choose another --url"
        )
    if engine.dialect.name == "sqlite":  # readers (extract) and `sample grow` side by side
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def _count(name: str, table: pa.Table, counts: dict[str, int]) -> TableManifest:
    ids = table.column("id")
    return TableManifest(
        name=name,
        rows=table.num_rows,
        first_id=int(ids[0].as_py()) if table.num_rows else 0,
        last_id=int(ids[-1].as_py()) if table.num_rows else 0,
        faults=tuple(
            FaultCount(
                kind=f.kind,
                column=f.column,
                description=f.description,
                stage=f.catch.stage,
                outcome=f.catch.outcome,
                rule=f.catch.rule,
                step=f.catch.step,
                rows=counts[f.kind],
            )
            for f in FAULTS[name]
        ),
    )


def build_tables(
    orders: int, dirty: float, seed: int, now: datetime
) -> tuple[dict[str, pa.Table], dict[str, dict[str, int]]]:
    """Generate and spoil every table in memory: (tables, fault counts per table)."""
    sizes = Sizes.for_orders(orders)
    rng = np.random.default_rng(seed)
    pools = generate.Pools.build(seed)
    clean = {
        "customers": generate.customers_table(rng, pools, np.arange(1, sizes.customers + 1), now),
        "products": generate.products_table(rng, pools, np.arange(1, sizes.products + 1), now),
    }
    clean["orders"] = generate.orders_table(
        rng, pools, np.arange(1, orders + 1), np.arange(1, sizes.customers + 1), now
    )
    clean["order_items"] = generate.order_items_table(rng, clean["orders"], clean["products"], 1)
    context = FaultContext(now=now)
    tables: dict[str, pa.Table] = {}
    counts: dict[str, dict[str, int]] = {}
    for name in TABLES:
        injected = inject(name, clean[name], dirty, rng, context)
        tables[name], counts[name] = injected.table, injected.counts
    return tables, counts


def create_sample(
    url: str,
    *,
    orders: int = 10_000,
    dirty: float = 0.05,
    seed: int = 0,
    now: datetime | None = None,
    replace: bool = False,
    on_table: Callable[[str, int], None] | None = None,
) -> Manifest:
    """Create the shop's tables in ``url`` and fill them; return the manifest.

    ``on_table(name, rows)`` is called after each table is stored. Raises
    :class:`SampleError` when the database cannot be reached or written.
    """
    if orders < 1:
        raise SampleError(f"--rows must be at least 1, got {orders}")
    if not 0 <= dirty <= 1:
        raise SampleError(f"--dirty is a share of rows between 0 and 1, got {dirty}")
    started = time.monotonic()
    now = now or datetime.now(UTC)
    now = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    tables, counts = build_tables(orders, dirty, seed, now)
    engine = open_engine(url)
    try:
        _prepare(engine, replace)
        with engine.begin() as conn:
            create_tables(conn, replace=replace)
            for name in TABLES:
                insert_rows(conn, metadata.tables[name].name, tables[name])
                if on_table is not None:
                    on_table(name, tables[name].num_rows)
            create_indexes(conn)
    except sa_exc.SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise SampleError(f"cannot create the sample in {masked(url)}: {first}") from None
    finally:
        engine.dispose()
    return Manifest(
        url=masked(url),
        seed=seed,
        orders=orders,
        dirty=dirty,
        now=now.isoformat(),
        seconds=round(time.monotonic() - started, 3),
        tables={name: _count(name, tables[name], counts[name]) for name in TABLES},
    )
