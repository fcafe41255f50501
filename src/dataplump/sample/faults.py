"""The faults real shop data has: which exist, who should catch each, and how to inject them.

A fault *kind* (``missing_required``, ``malformed_email``, ...) spoils one column of
some rows of one table. :data:`FAULTS` lists, per table, every kind with the column
it spoils and its :class:`Catch`: the stage and the contract rule (as the
``dp.error.rules`` header and the ops tables' ``rules`` column write it, e.g.
``pattern(email)``) or the cleaning step expected to deal with it. The contracts and
steps of ``examples/shop`` are written to match this table.

:func:`inject` picks ``round(dirty * rows)`` rows of a table and gives each exactly
**one** fault, the kinds in equal shares, so the number of rows of each kind is known
exactly and each rejected row carries one reason:

- ``duplicate_key`` rows come in pairs: the second row of a pair takes the natural key
  (``customers.email``, ``products.sku``, ``order_items (order_id, line_no)``) of the
  first. Both rows share the value and a ``unique`` rule rejects both, so both count.
  A primary key cannot be duplicated in a table that declares one; what a source
  really shows is a natural key stored twice, which is what this injects.
- ``unknown_foreign_key`` ids start at :data:`UNKNOWN_ID_BASE`, far above the ids
  ``sample grow`` will ever reach, so they stay unknown.
- ``whitespace`` and ``mixed_case`` rows are *not* errors to reject: the input
  contract lets them through and the ``trim`` / ``lowercase`` steps fix them, so they
  reach the curated table (``outcome: cleaned``).

Everything is vectorized: a kind spoils all its rows with one Arrow expression.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "FAULTS",
    "KINDS",
    "UNKNOWN_ID_BASE",
    "Catch",
    "Fault",
    "FaultContext",
    "Injected",
    "inject",
]

UNKNOWN_ID_BASE = 900_000_000
"""Ids of unknown foreign keys are drawn from ``[UNKNOWN_ID_BASE, 2 * UNKNOWN_ID_BASE)``."""

Outcome = Literal["dlq", "failed", "cleaned"]
"""Where a faulty row ends: the dead-letter topic (``_dlq``), the failed store
(``_failed``), or the curated table after a cleaning step fixed it."""


@dataclass(frozen=True)
class Catch:
    """Who is expected to deal with a fault."""

    stage: Literal["extract", "transform"]
    outcome: Outcome
    rule: str | None = None
    """The broken rule as ``dp.error.rules`` writes it: ``not_null(email)``."""
    step: str | None = None
    """The cleaning step that fixes the value (``trim``), for ``outcome: cleaned``."""


@dataclass(frozen=True)
class FaultContext:
    """What faults are placed relative to."""

    now: datetime
    """Future dates are later than this (UTC)."""


Spoil = Callable[[pa.Table, np.ndarray, np.random.Generator, FaultContext], pa.Table]


@dataclass(frozen=True)
class Fault:
    """One kind of fault of one table."""

    table: str
    kind: str
    column: str
    description: str
    catch: Catch
    spoil: Spoil

    def describe(self) -> dict[str, object]:
        """The manifest's description of this fault (no counts)."""
        return {
            "column": self.column,
            "description": self.description,
            "stage": self.catch.stage,
            "outcome": self.catch.outcome,
            "rule": self.catch.rule,
            "step": self.catch.step,
        }


# --- spoiling columns ------------------------------------------------------------------


def _put(table: pa.Table, column: str, rows: np.ndarray, values: pa.Array) -> pa.Table:
    """``table`` with ``column[rows] = values``."""
    if len(rows) == 0:
        return table
    current = table.column(column).combine_chunks()
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows] = True
    where = np.zeros(table.num_rows, dtype=np.int64)
    where[rows] = np.arange(len(rows))
    spread = values.cast(current.type).take(pa.array(where))
    index = table.schema.get_field_index(column)
    return table.set_column(index, column, pc.if_else(pa.array(mask), spread, current))


def _pick(rng: np.random.Generator, choices: tuple[str, ...], n: int) -> pa.Array:
    return pa.array(choices).take(pa.array(rng.integers(0, len(choices), n)))


def _null(column: str) -> Spoil:
    def spoil(t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext) -> pa.Table:
        return _put(t, column, rows, pa.nulls(len(rows), t.schema.field(column).type))

    return spoil


def _integers(column: str, low: int, high: int) -> Spoil:
    def spoil(t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext) -> pa.Table:
        return _put(t, column, rows, pa.array(rng.integers(low, high, len(rows)), pa.int64()))

    return spoil


def _money(column: str, low_cents: int, high_cents: int) -> Spoil:
    def spoil(t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext) -> pa.Table:
        cents = rng.integers(low_cents, high_cents, len(rows))
        text = pc.binary_join_element_wise(
            pc.cast(pa.array(cents // 100), pa.string()),
            pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), 2, "0"),
            ".",
        )
        return _put(t, column, rows, text.cast(t.schema.field(column).type))

    return spoil


def _email_without_at(
    t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext
) -> pa.Table:
    email = t.column("email").take(pa.array(rows))
    glue = _pick(rng, ("", " at ", "."), len(rows))
    parts = pc.split_pattern(email, "@", max_splits=1)
    user = pc.list_element(parts, 0)
    domain = pc.list_element(parts, 1)
    return _put(t, "email", rows, pc.binary_join_element_wise(user, glue, domain, ""))


def _bad_phone(
    t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext
) -> pa.Table:
    n = len(rows)
    digits = pc.cast(pa.array(rng.integers(100_000, 10_000_000, n)), pa.string())
    prefix = _pick(rng, ("tel. ", "call ", "ph: ", "n/a "), n)
    return _put(t, "phone", rows, pc.binary_join_element_wise(prefix, digits, ""))


def _days(column: str, first: date, last: date) -> Spoil:
    def spoil(t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext) -> pa.Table:
        start = (first - date(1970, 1, 1)).days
        end = (last - date(1970, 1, 1)).days
        days = rng.integers(start, end + 1, len(rows)).astype("int32")
        return _put(t, column, rows, pa.array(days, pa.int32()).cast(pa.date32()))

    return spoil


def _future_birth_date(
    t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext
) -> pa.Table:
    today = c.now.astimezone(UTC).date()
    return _days("birth_date", today + timedelta(days=2), today + timedelta(days=3650))(
        t, rows, rng, c
    )


def _future_timestamp(column: str) -> Spoil:
    def spoil(t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext) -> pa.Table:
        now = c.now.astimezone(UTC).replace(tzinfo=None)
        now_us = (now - datetime(1970, 1, 1)) // timedelta(microseconds=1)
        ahead = rng.integers(86_400 * 10**6, 90 * 86_400 * 10**6, len(rows))
        values = pa.array(now_us + ahead, pa.int64()).cast(pa.timestamp("us"))
        return _put(t, column, rows, values)

    return spoil


def _padded(column: str) -> Spoil:
    def spoil(t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext) -> pa.Table:
        n = len(rows)
        left = _pick(rng, (" ", "  ", "\t", "\u00a0", ""), n)
        right = _pick(rng, (" ", "  ", "\n", " \t"), n)  # never empty: always a change
        values = pc.binary_join_element_wise(left, t.column(column).take(pa.array(rows)), right, "")
        return _put(t, column, rows, values)

    return spoil


def _cased(column: str) -> Spoil:
    def spoil(t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext) -> pa.Table:
        values = t.column(column).take(pa.array(rows))
        upper = pa.array(rng.random(len(rows)) < 0.5)
        return _put(
            t, column, rows, pc.if_else(upper, pc.utf8_upper(values), pc.utf8_title(values))
        )

    return spoil


def _duplicate(*columns: str) -> Spoil:
    """The second half of ``rows`` takes the key of the first half (pairs)."""

    def spoil(t: pa.Table, rows: np.ndarray, rng: np.random.Generator, c: FaultContext) -> pa.Table:
        half = len(rows) // 2
        originals, copies = rows[:half], rows[half : 2 * half]
        for column in columns:
            t = _put(t, column, copies, t.column(column).take(pa.array(originals)))
        return t

    return spoil


# --- the catalogue ---------------------------------------------------------------------


def _dlq(rule: str) -> Catch:
    return Catch("extract", "dlq", rule=rule)


def _failed(rule: str) -> Catch:
    return Catch("transform", "failed", rule=rule)


def _cleaned(step: str) -> Catch:
    return Catch("transform", "cleaned", step=step)


_OLDEST = date(1800, 1, 1)

FAULTS: dict[str, tuple[Fault, ...]] = {
    "customers": (
        Fault("customers", "missing_required", "email", "no e-mail address",
              _dlq("not_null(email)"), _null("email")),
        Fault("customers", "malformed_email", "email", "an e-mail address without `@`",
              _dlq("pattern(email)"), _email_without_at),
        Fault("customers", "malformed_phone", "phone", "a phone number with letters",
              _dlq("pattern(phone)"), _bad_phone),
        Fault("customers", "future_date", "birth_date", "born after today",
              _dlq("not_in_future(birth_date)"), _future_birth_date),
        Fault("customers", "out_of_range", "birth_date", "born before 1900",
              _dlq("min(birth_date)"), _days("birth_date", _OLDEST, date(1899, 12, 31))),
        Fault("customers", "duplicate_key", "email", "two customers with one e-mail address",
              _dlq("unique(email)"), _duplicate("email")),
        Fault("customers", "whitespace", "email", "blanks around the e-mail address",
              _cleaned("trim"), _padded("email")),
        Fault("customers", "mixed_case", "email", "an e-mail address in upper or title case",
              _cleaned("lowercase"), _cased("email")),
    ),
    "products": (
        Fault("products", "missing_required", "name", "no product name",
              _dlq("not_null(name)"), _null("name")),
        Fault("products", "negative_quantity", "stock", "a negative stock",
              _dlq("min(stock)"), _integers("stock", -50, 0)),
        Fault("products", "out_of_range", "price", "a price above 5,000",
              _dlq("max(price)"), _money("price", 2_000_000, 9_999_999)),
        Fault("products", "duplicate_key", "sku", "two products with one SKU",
              _dlq("unique(sku)"), _duplicate("sku")),
        Fault("products", "whitespace", "name", "blanks around the name",
              _cleaned("trim"), _padded("name")),
        Fault("products", "mixed_case", "category", "a category in upper or title case",
              _cleaned("lowercase"), _cased("category")),
    ),
    "orders": (
        Fault("orders", "missing_required", "customer_id", "no customer",
              _dlq("not_null(customer_id)"), _null("customer_id")),
        Fault("orders", "unknown_foreign_key", "customer_id", "a customer id not in customers",
              _failed("relationships(customer_id)"),
              _integers("customer_id", UNKNOWN_ID_BASE, 2 * UNKNOWN_ID_BASE)),
        Fault("orders", "future_date", "ordered_at", "ordered after now",
              _dlq("not_in_future(ordered_at)"), _future_timestamp("ordered_at")),
        Fault("orders", "out_of_range", "discount_pct", "a discount above 100%",
              _dlq("max(discount_pct)"), _money("discount_pct", 10_001, 99_999)),
        Fault("orders", "whitespace", "status", "blanks around the status",
              _cleaned("trim"), _padded("status")),
        Fault("orders", "mixed_case", "status", "a status in upper or title case",
              _cleaned("lowercase"), _cased("status")),
    ),
    "order_items": (
        Fault("order_items", "missing_required", "unit_price", "no unit price",
              _dlq("not_null(unit_price)"), _null("unit_price")),
        Fault("order_items", "negative_quantity", "quantity", "a negative quantity",
              _dlq("min(quantity)"), _integers("quantity", -5, 0)),
        Fault("order_items", "out_of_range", "quantity", "a quantity above 1,000",
              _dlq("max(quantity)"), _integers("quantity", 1_001, 100_000)),
        Fault("order_items", "unknown_foreign_key", "product_id", "a product id not in products",
              _failed("relationships(product_id)"),
              _integers("product_id", UNKNOWN_ID_BASE, 2 * UNKNOWN_ID_BASE)),
        Fault("order_items", "duplicate_key", "line_no", "two items with one (order_id, line_no)",
              _dlq("unique_line(line_no)"), _duplicate("order_id", "line_no")),
    ),
}  # fmt: skip
"""Every fault kind, per table, in the order :func:`inject` assigns them."""

KINDS: tuple[str, ...] = tuple(dict.fromkeys(f.kind for t in FAULTS.values() for f in t))
"""Every fault kind name, once."""


@dataclass(frozen=True)
class Injected:
    """A table after :func:`inject`."""

    table: pa.Table
    counts: dict[str, int]
    """Rows per fault kind (every kind of the table, 0 included)."""
    kinds: np.ndarray
    """Per row, the index in ``FAULTS[table]`` of its fault, or -1 for a clean row."""


def inject(
    name: str,
    table: pa.Table,
    dirty: float,
    rng: np.random.Generator,
    context: FaultContext,
    *,
    exact: bool = True,
) -> Injected:
    """Give ``round(dirty * rows)`` rows of table ``name`` one fault each (see the module).

    With ``exact=False`` the number of faulty rows is drawn (binomial, mean
    ``dirty * rows``), so many small chunks (``sample grow``) get the share on average.
    """
    if not 0 <= dirty <= 1:
        raise ValueError(f"dirty must be a share between 0 and 1, got {dirty}")
    faults = FAULTS[name]
    n = table.num_rows
    k = round(dirty * n) if exact else int(rng.binomial(n, dirty))
    rows = rng.choice(n, size=k, replace=False) if k else np.zeros(0, np.int64)
    # equal shares; when k is not a multiple, the extra rows go to kinds drawn at random
    shares = np.resize(rng.permutation(len(faults)), k)
    assigned = rng.permutation(shares) if k else rows
    kinds = np.full(n, -1, dtype=np.int64)
    for i, fault in enumerate(faults):
        if fault.kind == "duplicate_key" and (assigned == i).sum() % 2:
            # pairs only: one odd row goes to the first kind
            assigned[np.flatnonzero(assigned == i)[0]] = 0
    kinds[rows] = assigned
    counts: dict[str, int] = {}
    for i, fault in enumerate(faults):
        mine = np.sort(rows[assigned == i])
        if fault.kind == "duplicate_key":
            mine = rng.permutation(mine)
        table = fault.spoil(table, mine, rng, context)
        counts[fault.kind] = len(mine)
    return Injected(table, counts, kinds)
