"""``sample create`` and ``sample grow`` on the local PostgreSQL and MariaDB servers: the
tables, their types as the sources read them, and the manifest's counts in the database."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from dataplump.config import SourceConfig, TableConfig
from dataplump.sample import create_sample
from dataplump.sample.grow import Grower
from dataplump.sample.schema import TABLES
from dataplump.sources import open_source
from tests.unit.sample.sql import PORTABLE, count, fault_counts

pytestmark = [pytest.mark.slow]  # integration, postgres and mariadb come with the fixtures


def check(url: str) -> None:
    started = time.monotonic()
    manifest = create_sample(url, orders=20_000, dirty=0.05, seed=2)
    seconds = time.monotonic() - started
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for name in TABLES:
            table = manifest.tables[name]
            assert count(conn, name) == table.rows, name
            expected = {f.kind: f.rows for f in table.faults if f.kind in PORTABLE[name]}
            assert fault_counts(conn, name, PORTABLE[name]) == expected, name
        note = count(conn, "orders", "r.note LIKE '%.'")
        assert note > 0  # free text came through
    engine.dispose()
    # the pipeline's sources read every table with the contract types of examples/shop
    for name in TABLES:
        config = TableConfig(primary_key="id", mode="incremental", cursor="updated_at")
        with open_source(SourceConfig(url=url), name, config) as source:
            types = {c.name: str(c.arrow_type) for c in source.columns}
        assert types["updated_at"] == "timestamp[us]", (name, types)
        if name == "products":
            assert types["price"] == "decimal128(10, 2)"
    grower = Grower(url, rate=500, seed=1)
    try:
        time.sleep(0.3)
        counts = grower.tick()
    finally:
        grower.close()
    assert counts.inserted["orders"] + counts.updated["orders"] > 0
    print(f"\n{url.split(':')[0]}: 20,000 orders created in {seconds:.1f}s")


def test_postgres(postgres_url: str) -> None:
    check(postgres_url)


def test_mariadb(mariadb_url: str) -> None:
    check(mariadb_url)
