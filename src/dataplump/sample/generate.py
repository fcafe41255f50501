"""Clean shop rows, generated column by column with numpy and Arrow compute.

Faker is used only to fill small *pools* (a few hundred names, cities, words,
sentences); every row is then drawn from the pools with one vectorized ``take`` per
column, so a million rows cost no Python loop. Everything comes from one
``numpy.random.Generator`` and one seeded Faker, so a seed gives the same rows; the
timestamps are placed relative to ``now`` (the same ``now`` gives the same bytes).

::

    pools = Pools.build(seed=7)
    rng = np.random.default_rng(7)
    customers = customers_table(rng, pools, ids=np.arange(1, 1001), now=now)

Each function returns a ``pyarrow.Table`` whose columns match :mod:`.schema`
(timestamps ``timestamp[us]``, money ``decimal128``); :mod:`.faults` then spoils some
rows and :mod:`.write` stores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "CATEGORIES",
    "STATUSES",
    "Pools",
    "customers_table",
    "order_items_table",
    "orders_table",
    "products_table",
]

STATUSES = ("new", "paid", "shipped", "delivered", "cancelled", "returned")
"""Order statuses, as the shop writes them (lower case)."""
_STATUS_WEIGHTS = (0.10, 0.15, 0.20, 0.45, 0.06, 0.04)

CATEGORIES = ("books", "electronics", "garden", "kitchen", "toys", "clothing", "sports", "beauty")
"""Product categories, as the shop writes them (lower case)."""

COUNTRIES = ("US", "GB", "DE", "FR", "NL", "SE", "NO", "ES", "IT", "PL")
_LOCALES = (
    "en_US",
    "en_GB",
    "de_DE",
    "fr_FR",
    "nl_NL",
    "sv_SE",
    "no_NO",
    "es_ES",
    "it_IT",
    "pl_PL",
)
_CALLING = ("1", "44", "49", "33", "31", "46", "47", "34", "39", "48")
_DOMAINS = ("example.com", "mail.example.org", "shop.example.net", "post.example.de")

_US = 1_000_000
_DAY_US = 86_400 * _US


@dataclass(frozen=True)
class Pools:
    """Small lists of realistic values rows are sampled from (Arrow string arrays)."""

    first_names: pa.Array
    last_names: pa.Array
    cities: pa.Array
    """``len(COUNTRIES) * per_country`` cities; city ``i`` is in ``COUNTRIES[i // per_country]``."""
    per_country: int
    adjectives: pa.Array
    nouns: pa.Array
    sentences: pa.Array

    @classmethod
    def build(cls, seed: int, size: int = 200) -> Pools:
        """Fill the pools from Faker seeded with ``seed`` (about a second: ten locales)."""
        from faker import Faker  # only here: it loads many locale modules

        fake = Faker(list(_LOCALES))
        fake.seed_instance(seed)
        en = fake["en_US"]
        per_country = max(4, size // 20)
        cities = [fake[loc].city() for loc in _LOCALES for _ in range(per_country)]
        # e-mail addresses are built from the names: keep them ASCII letters
        first = [n for n in (en.first_name() for _ in range(size)) if n.isascii() and n.isalpha()]
        last = [n for n in (en.last_name() for _ in range(size)) if n.isascii() and n.isalpha()]
        return cls(
            first_names=pa.array(first, pa.string()),
            last_names=pa.array(last, pa.string()),
            cities=pa.array(cities, pa.string()),
            per_country=per_country,
            adjectives=pa.array(
                sorted({w.lower() for w in en.words(size, unique=False)}), pa.string()
            ),
            nouns=pa.array(sorted({en.word().capitalize() for _ in range(size)}), pa.string()),
            sentences=pa.array([en.sentence(nb_words=10) for _ in range(size)], pa.string()),
        )


def _pick(rng: np.random.Generator, pool: pa.Array, n: int) -> pa.Array:
    return pool.take(pa.array(rng.integers(0, len(pool), n)))


def _text(values: pa.Array | np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values) if isinstance(values, np.ndarray) else values, pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _timestamps(micros: np.ndarray) -> pa.Array:
    return pa.array(micros.astype("int64"), pa.int64()).cast(pa.timestamp("us"))


def _epoch_us(now: datetime) -> int:
    """Microseconds since the epoch of ``now`` (naive: UTC wall clock)."""
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    return (now - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def stamps(rng: np.random.Generator, n: int, now: datetime) -> tuple[np.ndarray, np.ndarray]:
    """``created_at`` and ``updated_at`` in µs since the epoch: created in the year before
    ``now``, updated up to 30 days later, both at least a minute before ``now``."""
    end = _epoch_us(now) - 60 * _US
    created = end - rng.integers(3600 * _US, 365 * _DAY_US, n)
    updated = np.minimum(created + rng.integers(0, 30 * _DAY_US, n), end)
    return created, updated


def customers_table(
    rng: np.random.Generator, pools: Pools, ids: np.ndarray, now: datetime
) -> pa.Table:
    """Customers with ``ids``: unique lower-case e-mails (the id is part of them)."""
    n = len(ids)
    first = _pick(rng, pools.first_names, n)
    last = _pick(rng, pools.last_names, n)
    domain = _pick(rng, pa.array(_DOMAINS), n)
    email = pc.utf8_lower(_join(first, ".", last, _text(ids), "@", domain))
    country_idx = rng.integers(0, len(COUNTRIES), n)
    city_idx = country_idx * pools.per_country + rng.integers(0, pools.per_country, n)
    calling = pa.array(_CALLING).take(pa.array(country_idx))
    phone = _join(
        "+",
        calling,
        " ",
        _text(rng.integers(100, 1000, n)),
        " ",
        _text(rng.integers(1_000_000, 10_000_000, n)),
    )
    phone = pc.if_else(pa.array(rng.random(n) < 0.1), pa.scalar(None, pa.string()), phone)
    born_days = (_epoch_us(now) // _DAY_US) - rng.integers(18 * 365, 90 * 365, n)
    created, updated = stamps(rng, n, now)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "email": email,
            "first_name": first,
            "last_name": last,
            "phone": phone,
            "country": pa.array(COUNTRIES).take(pa.array(country_idx)),
            "city": pools.cities.take(pa.array(city_idx)),
            "birth_date": pa.array(born_days.astype("int32"), pa.int32()).cast(pa.date32()),
            "created_at": _timestamps(created),
            "updated_at": _timestamps(updated),
        }
    )


def products_table(
    rng: np.random.Generator, pools: Pools, ids: np.ndarray, now: datetime
) -> pa.Table:
    """Products with ``ids``: unique SKUs, prices from 0.99 to about 2,000."""
    n = len(ids)
    category_idx = rng.integers(0, len(CATEGORIES), n)
    category = pa.array(CATEGORIES).take(pa.array(category_idx))
    sku = _join(pc.utf8_upper(pc.utf8_slice_codeunits(category, 0, 3)), "-", _text(ids + 100_000))
    name = _join(_pick(rng, pools.adjectives, n), " ", _pick(rng, pools.nouns, n))
    cents = np.round(np.exp(rng.normal(3.0, 1.2, n)) * 100).astype("int64").clip(99, 200_000)
    description = pc.if_else(
        pa.array(rng.random(n) < 0.2), pa.scalar(None, pa.string()), _pick(rng, pools.sentences, n)
    )
    created, updated = stamps(rng, n, now)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "sku": sku,
            "name": pc.utf8_capitalize(name),
            "category": category,
            "price": _cents(cents, 10),
            "stock": pa.array(rng.integers(0, 500, n), pa.int64()),
            "description": description,
            "created_at": _timestamps(created),
            "updated_at": _timestamps(updated),
        }
    )


def _cents(cents: np.ndarray, precision: int) -> pa.Array:
    """Integer hundredths as ``decimal128(precision, 2)``, exactly (through text)."""
    sign = np.where(cents < 0, "-", "")
    whole, frac = np.abs(cents) // 100, np.abs(cents) % 100
    text = _join(_text(sign), _text(whole), ".", pc.utf8_lpad(_text(frac), 2, "0"))
    return pc.cast(text, pa.decimal128(precision, 2))


def orders_table(
    rng: np.random.Generator,
    pools: Pools,
    ids: np.ndarray,
    customer_ids: np.ndarray,
    now: datetime,
) -> pa.Table:
    """Orders with ``ids``, each by one of ``customer_ids``."""
    n = len(ids)
    status_idx = rng.choice(len(STATUSES), n, p=_STATUS_WEIGHTS)
    discount = np.where(rng.random(n) < 0.2, rng.choice([5, 10, 15, 20, 25, 50], n) * 100, 0)
    note = pc.if_else(
        pa.array(rng.random(n) < 0.85), pa.scalar(None, pa.string()), _pick(rng, pools.sentences, n)
    )
    created, updated = stamps(rng, n, now)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "customer_id": pa.array(
                customer_ids[rng.integers(0, len(customer_ids), n)], pa.int64()
            ),
            "status": pa.array(STATUSES).take(pa.array(status_idx)),
            "ordered_at": _timestamps(created),
            "discount_pct": _cents(discount.astype("int64"), 5),
            "shipping_country": _pick(rng, pa.array(COUNTRIES), n),
            "note": note,
            "created_at": _timestamps(created),
            "updated_at": _timestamps(updated),
        }
    )


def order_items_table(
    rng: np.random.Generator,
    orders: pa.Table,
    products: pa.Table,
    first_id: int,
) -> pa.Table:
    """1 to 5 items per order (2.5 on average), ids from ``first_id``, priced from
    ``products``; created with their order."""
    counts = rng.integers(1, 6, orders.num_rows)
    total = int(counts.sum())
    row_order = np.repeat(np.arange(orders.num_rows), counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    product_rows = rng.integers(0, products.num_rows, total)
    quantity = np.minimum(rng.geometric(0.55, total), 20)
    return pa.table(
        {
            "id": pa.array(np.arange(first_id, first_id + total), pa.int64()),
            "order_id": orders.column("id").take(pa.array(row_order)),
            "line_no": pa.array(np.arange(total) - starts + 1, pa.int64()),
            "product_id": products.column("id").take(pa.array(product_rows)),
            "quantity": pa.array(quantity, pa.int64()),
            "unit_price": products.column("price").take(pa.array(product_rows)),
            "created_at": orders.column("created_at").take(pa.array(row_order)),
            "updated_at": orders.column("updated_at").take(pa.array(row_order)),
        }
    )
