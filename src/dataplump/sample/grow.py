"""``dataplump sample grow``: keep a sample database changing, for live pipeline runs.

Every tick (a quarter of a second) a :class:`Grower` writes, in one transaction, the
orders due at ``rate`` orders per second:

- of these, ``update_share`` are **updates** of existing orders (a new status; faults
  ``whitespace`` / ``mixed_case`` at the ``dirty`` share) and a product's stock now and
  then, each with ``updated_at`` set to now, so incremental extraction reads them again;
- the others are **new** orders with their items, and new customers (one per 5 orders)
  and products (one per 20), generated as ``sample create`` does with ids after the
  largest ones stored and ``created_at = updated_at = now``, spoiled with the same fault
  mix (the number of faulty rows is drawn per tick: ``dirty`` is the share on average).

::

    grower = Grower("sqlite:///shop.db", rate=50, update_share=0.2, dirty=0.05, seed=1)
    while True:
        counts = grower.tick()        # GrowCounts so far
        time.sleep(0.25)

:func:`grow` runs the loop for a duration (or until Ctrl-C) and reports counts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from dataplump.sample import generate
from dataplump.sample.create import masked, open_engine
from dataplump.sample.errors import SampleError
from dataplump.sample.faults import FAULTS, FaultContext, inject
from dataplump.sample.schema import TABLES
from dataplump.sample.write import insert_rows, update_rows

__all__ = ["GrowCounts", "Grower", "grow"]

TICK_SECONDS = 0.25


@dataclass
class GrowCounts:
    """What a :class:`Grower` wrote so far."""

    inserted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    updated: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLES, 0))
    faults: dict[str, dict[str, int]] = field(
        default_factory=lambda: {t: {f.kind: 0 for f in FAULTS[t]} for t in TABLES}
    )
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        """Rows inserted or updated, every table."""
        return sum(self.inserted.values()) + sum(self.updated.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "inserted": self.inserted,
            "updated": self.updated,
            "faults": self.faults,
            "seconds": round(self.seconds, 3),
        }


def _now_us(now: datetime) -> int:
    return (now.astimezone(UTC).replace(tzinfo=None) - datetime(1970, 1, 1)) // timedelta(
        microseconds=1
    )


def _stamp(table: pa.Table, now: datetime, columns: tuple[str, ...]) -> pa.Table:
    values = pa.array(np.full(table.num_rows, _now_us(now)), pa.int64()).cast(pa.timestamp("us"))
    for column in columns:
        table = table.set_column(table.schema.get_field_index(column), column, values)
    return table


class Grower:
    """Inserts and updates shop rows at a rate (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        rate: float = 10.0,
        update_share: float = 0.2,
        dirty: float = 0.05,
        seed: int | None = None,
    ) -> None:
        if rate <= 0:
            raise SampleError(f"--rate must be above 0 orders per second, got {rate}")
        if not 0 <= update_share <= 1:
            raise SampleError(f"--update-share is a share between 0 and 1, got {update_share}")
        if not 0 <= dirty <= 1:
            raise SampleError(f"--dirty is a share between 0 and 1, got {dirty}")
        self.url, self.rate, self.update_share, self.dirty = url, rate, update_share, dirty
        self.rng = np.random.default_rng(seed)
        self.pools = generate.Pools.build(0 if seed is None else seed)
        self.engine = open_engine(url)
        self.counts = GrowCounts()
        self._due = 0.0
        self._started = time.monotonic()
        self._last = self._started
        try:
            with self.engine.connect() as conn:
                missing = set(TABLES) - set(sa.inspect(conn).get_table_names())
                if missing:
                    raise SampleError(
                        f"{masked(url)} has no table(s) {', '.join(sorted(missing))}: run"
                        f" `dataplump sample create --url ...` first"
                    )
                self._next = {
                    t: int(conn.exec_driver_sql(f"SELECT MAX(id) FROM {t}").scalar() or 0) + 1  # noqa: S608
                    for t in TABLES
                }
                rows = conn.exec_driver_sql("SELECT id, price FROM products ORDER BY id").all()
        except sa_exc.SQLAlchemyError as exc:
            raise SampleError(f"cannot read the sample in {masked(url)}: {_first(exc)}") from None
        self._products = pa.table(
            {
                "id": pa.array([r[0] for r in rows], pa.int64()),
                "price": pa.array([str(r[1]) for r in rows]).cast(pa.decimal128(10, 2)),
            }
        )
        if self._products.num_rows == 0:
            raise SampleError(f"{masked(url)} has no products: run `dataplump sample create`")

    def close(self) -> None:
        self.engine.dispose()

    def tick(self, now: datetime | None = None) -> GrowCounts:
        """Write the changes due since the last tick, in one transaction."""
        clock = time.monotonic()
        self._due += (clock - self._last) * self.rate
        self._last = clock
        due = int(self._due)
        self._due -= due
        if due:
            updates = int(self.rng.binomial(due, self.update_share))
            try:
                with self.engine.begin() as conn:
                    self._insert(conn, due - updates, now or datetime.now(UTC))
                    self._update(conn, updates, now or datetime.now(UTC))
            except sa_exc.SQLAlchemyError as exc:
                raise SampleError(f"cannot write to {masked(self.url)}: {_first(exc)}") from None
        self.counts.seconds = clock - self._started
        return self.counts

    def _ids(self, table: str, n: int) -> np.ndarray:
        first = self._next[table]
        self._next[table] = first + n
        return np.arange(first, first + n)

    def _grow_share(self, orders: int, per: int) -> int:
        """New rows of a table that grows by one row per ``per`` orders (drawn)."""
        return int(self.rng.binomial(orders, 1 / per)) if orders else 0

    def _write(self, conn: sa.Connection, name: str, table: pa.Table, now: datetime) -> pa.Table:
        injected = inject(name, table, self.dirty, self.rng, FaultContext(now=now), exact=False)
        insert_rows(conn, name, injected.table)
        self.counts.inserted[name] += table.num_rows
        for kind, n in injected.counts.items():
            self.counts.faults[name][kind] += n
        return injected.table

    def _insert(self, conn: sa.Connection, orders: int, now: datetime) -> None:
        if not orders:
            return
        rng, pools, stamps = self.rng, self.pools, ("created_at", "updated_at")
        customers = self._next["customers"] - 1
        new_customers = self._grow_share(orders, 5)
        if new_customers:
            ids = self._ids("customers", new_customers)
            table = generate.customers_table(rng, pools, ids, now)
            self._write(conn, "customers", _stamp(table, now, stamps), now)
            customers += new_customers
        new_products = self._grow_share(orders, 20)
        if new_products:
            table = generate.products_table(rng, pools, self._ids("products", new_products), now)
            table = _stamp(table, now, stamps)
            self._write(conn, "products", table, now)
            self._products = pa.concat_tables([self._products, table.select(["id", "price"])])
        table = generate.orders_table(
            rng, pools, self._ids("orders", orders), np.arange(1, customers + 1), now
        )
        table = _stamp(table, now, (*stamps, "ordered_at"))
        written = self._write(conn, "orders", table, now)
        items = generate.order_items_table(rng, written, self._products, self._next["order_items"])
        self._ids("order_items", items.num_rows)
        self._write(conn, "order_items", _stamp(items, now, stamps), now)

    def _update(self, conn: sa.Connection, n: int, now: datetime) -> None:
        if not n:
            return
        products = int(self.rng.binomial(n, 0.2))
        orders = n - products
        last_order = self._next["orders"] - 1
        if orders and last_order:
            ids = np.unique(self.rng.integers(1, last_order + 1, orders))
            status = pa.array(generate.STATUSES[1:]).take(
                pa.array(self.rng.integers(0, len(generate.STATUSES) - 1, len(ids)))
            )
            changes = pa.table({"id": pa.array(ids, pa.int64()), "status": status})
            faulty = self.rng.random(len(ids)) < self.dirty
            padded = self.rng.random(len(ids)) < 0.5
            bad_ws, bad_case = faulty & padded, faulty & ~padded
            spoiled = pc.if_else(
                pa.array(bad_ws),
                pc.binary_join_element_wise(" ", status, "  ", ""),
                pc.if_else(pa.array(bad_case), pc.utf8_upper(status), status),
            )
            changes = _stamp(
                changes.set_column(1, "status", spoiled).append_column(
                    "updated_at", pa.nulls(len(ids), pa.timestamp("us"))
                ),
                now,
                ("updated_at",),
            )
            update_rows(conn, "orders", "id", ["status", "updated_at"], changes)
            self.counts.updated["orders"] += len(ids)
            self.counts.faults["orders"]["whitespace"] += int(bad_ws.sum())
            self.counts.faults["orders"]["mixed_case"] += int(bad_case.sum())
        if products:
            rows = np.unique(self.rng.integers(0, self._products.num_rows, products))
            changes = pa.table(
                {
                    "id": self._products.column("id").take(pa.array(rows)),
                    "stock": pa.array(self.rng.integers(0, 500, len(rows)), pa.int64()),
                    "updated_at": pa.nulls(len(rows), pa.timestamp("us")),
                }
            )
            changes = _stamp(changes, now, ("updated_at",))
            update_rows(conn, "products", "id", ["stock", "updated_at"], changes)
            self.counts.updated["products"] += len(rows)


def _first(exc: sa_exc.SQLAlchemyError) -> str:
    return str(getattr(exc, "orig", None) or exc).splitlines()[0]


def grow(
    url: str,
    *,
    rate: float = 10.0,
    duration: float | None = None,
    update_share: float = 0.2,
    dirty: float = 0.05,
    seed: int | None = None,
    on_tick: Callable[[GrowCounts], None] | None = None,
) -> GrowCounts:
    """Grow the sample at ``url`` for ``duration`` seconds (None: until Ctrl-C, which
    ends it cleanly after the current tick's transaction) and return the counts."""
    grower = Grower(url, rate=rate, update_share=update_share, dirty=dirty, seed=seed)
    ends = None if duration is None else time.monotonic() + duration
    try:
        while ends is None or time.monotonic() < ends:
            counts = grower.tick()
            if on_tick is not None:
                on_tick(counts)
            left = TICK_SECONDS if ends is None else ends - time.monotonic()
            time.sleep(max(0.0, min(TICK_SECONDS, left)))
    except KeyboardInterrupt:
        pass
    finally:
        grower.close()
    return grower.counts
