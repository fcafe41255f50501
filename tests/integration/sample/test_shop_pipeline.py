"""The sample shop through the real stages: ``sample create`` in SQLite, then extract,
transform and load with ``examples/shop/dataplump.yaml`` (its source, Kafka, lake and
pipeline name overridden from the environment) on the session's Kafka broker.

Per table and fault kind, the rows in the ``_dlq`` and ``_failed`` ops tables under the
kind's rule must equal the manifest, and the curated table must hold exactly the rows
an independent SQL count on the source calls valid.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa

from dataplump.config import load_config
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.load import Loader
from dataplump.pipeline.transform import Transformer
from dataplump.sample import create_sample
from dataplump.sample.schema import TABLES
from tests.unit.sample.sql import fault_counts, valid_rows

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

EXAMPLE = Path(__file__).parents[3] / "examples" / "shop" / "dataplump.yaml"
ORDERS = 5000


def test_every_fault_lands_where_the_manifest_says(tmp_path: Path, kafka_bootstrap: str) -> None:
    started = time.monotonic()
    db = tmp_path / "shop.db"
    url = f"sqlite:///{db}"
    manifest = create_sample(url, orders=ORDERS, dirty=0.05, seed=11)
    lake = tmp_path / "lake"
    env = {
        "DATAPLUMP__PIPELINE__NAME": f"shop{uuid.uuid4().hex[:8]}",
        "DATAPLUMP__SOURCE__URL": url,
        "DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATAPLUMP__SINKS__LAKE__PATH": str(lake),
    }
    config = load_config(EXAMPLE, env=env)
    # lag_seconds: 1 - the sample's newest rows are a minute old, all are read
    Extractor(config, kafka_bootstrap).run_once()
    Transformer(config, kafka_bootstrap).run(once=True)
    Loader(config, kafka_bootstrap).run(once=True)
    stages = time.monotonic() - started

    dlq = pl.read_delta(str(lake / "_dlq")).select("table", "rules")
    failed = pl.read_delta(str(lake / "_failed")).select("table", "rules", "step")
    dlq_rules = Counter(zip(dlq["table"], dlq["rules"], strict=True))
    failed_rules = Counter(zip(failed["table"], failed["rules"], strict=True))
    assert set(failed["step"]) <= {"output_contract"}, failed["step"].unique().to_list()

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for name in TABLES:
            table = manifest.tables[name]
            expected_dlq = {(name, rule): n for rule, n in table.by_rule("dlq").items()}
            expected_failed = {(name, rule): n for rule, n in table.by_rule("failed").items()}
            assert {k: v for k, v in dlq_rules.items() if k[0] == name} == expected_dlq
            assert {k: v for k, v in failed_rules.items() if k[0] == name} == expected_failed

            counted = fault_counts(conn, name)
            assert counted == {f.kind: f.rows for f in table.faults}, name

            curated = pl.read_delta(str(lake / name))
            assert curated.height == valid_rows(conn, name) == table.curated, name
            assert curated["id"].n_unique() == curated.height
    engine.dispose()

    customers = pl.read_delta(str(lake / "customers"))
    assert (customers["email"] == customers["email"].str.to_lowercase()).all()
    orders = pl.read_delta(str(lake / "orders"))
    assert set(orders["status"].unique()) <= {
        "new", "paid", "shipped", "delivered", "cancelled", "returned",
    }  # fmt: skip
    assert orders["customer_country"].null_count() == 0
    items = pl.read_delta(str(lake / "order_items"))
    assert items["category"].null_count() == 0  # every known product has a category
    with sqlite3.connect(db) as source:
        total = sum(source.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)  # noqa: S608
    assert total == sum(t.rows for t in manifest.tables.values())
    print(f"\n{total:,} source rows through extract, transform, load in {stages:.1f}s")
