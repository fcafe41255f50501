"""Each fault kind as a SQL predicate over the source table, written apart from the
generator, so tests count faulty rows in the database independently of the manifest.

``PREDICATES[table][kind]`` is a SQLite condition on a row aliased ``r``; the kinds that
:data:`PORTABLE` lists are the same text in PostgreSQL and MariaDB. Generated values
are lower case and have no blanks at their ends, and each faulty row has one fault, so
the predicates do not overlap.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

WS = "' ' || char(9) || char(10) || char(160)"
"""SQLite: the blanks the generator pads with (space, tab, newline, no-break space)."""

PREDICATES: dict[str, dict[str, str]] = {
    "customers": {
        "missing_required": "r.email IS NULL",
        "malformed_email": "r.email NOT LIKE '%@%'",
        "malformed_phone": "r.phone GLOB '*[A-Za-z]*'",
        "future_date": "r.birth_date > date('now')",
        "out_of_range": "r.birth_date < '1900-01-01'",
        "duplicate_key": "r.email IN (SELECT email FROM customers GROUP BY email"
        " HAVING count(*) > 1)",
        "whitespace": f"r.email <> trim(r.email, {WS})",
        "mixed_case": "r.email <> lower(r.email)",
    },
    "products": {
        "missing_required": "r.name IS NULL",
        "negative_quantity": "r.stock < 0",
        "out_of_range": "r.price > 5000",
        "duplicate_key": "r.sku IN (SELECT sku FROM products GROUP BY sku HAVING count(*) > 1)",
        "whitespace": f"r.name <> trim(r.name, {WS})",
        "mixed_case": "r.category <> lower(r.category)",
    },
    "orders": {
        "missing_required": "r.customer_id IS NULL",
        "unknown_foreign_key": "r.customer_id NOT IN (SELECT id FROM customers)",
        "future_date": "r.ordered_at > strftime('%Y-%m-%d %H:%M:%f', 'now')",
        "out_of_range": "r.discount_pct > 100",
        "whitespace": f"r.status <> trim(r.status, {WS})",
        "mixed_case": "r.status <> lower(r.status)",
    },
    "order_items": {
        "missing_required": "r.unit_price IS NULL",
        "negative_quantity": "r.quantity < 0",
        "out_of_range": "r.quantity > 1000",
        "unknown_foreign_key": "r.product_id NOT IN (SELECT id FROM products)",
        "duplicate_key": "(r.order_id, r.line_no) IN (SELECT order_id, line_no FROM order_items"
        " GROUP BY order_id, line_no HAVING count(*) > 1)",
    },
}

PORTABLE: dict[str, tuple[str, ...]] = {
    "customers": ("missing_required", "malformed_email", "out_of_range", "duplicate_key"),
    "products": ("missing_required", "negative_quantity", "out_of_range", "duplicate_key"),
    "orders": ("missing_required", "unknown_foreign_key", "out_of_range"),
    "order_items": (
        "missing_required",
        "negative_quantity",
        "out_of_range",
        "unknown_foreign_key",
        "duplicate_key",
    ),
}

CLEANED = {"whitespace", "mixed_case"}
"""Kinds the pipeline fixes instead of rejecting."""


def count(conn: sa.Connection, table: str, where: str = "1 = 1") -> int:
    sql = f"SELECT count(*) FROM {table} r WHERE {where}"  # noqa: S608 - test's own SQL
    return int(conn.execute(sa.text(sql)).scalar() or 0)


def fault_counts(
    conn: sa.Connection, table: str, kinds: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Rows per fault kind of ``table``, counted in the database."""
    predicates = PREDICATES[table]
    return {kind: count(conn, table, predicates[kind]) for kind in kinds or tuple(predicates)}


def valid_rows(conn: sa.Connection, table: str) -> int:
    """Rows with no rejecting fault: what the curated table must hold."""
    rejecting = [p for kind, p in PREDICATES[table].items() if kind not in CLEANED]
    return count(conn, table, " AND ".join(f"NOT coalesce({p}, 0)" for p in rejecting))
