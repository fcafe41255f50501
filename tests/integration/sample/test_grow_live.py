"""``sample grow`` beside incremental extraction: after the first run has read the sample,
the next run reads exactly the rows grow inserted or updated (their ``updated_at`` moved)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from dataplump.config import load_config
from dataplump.pipeline.extract import Extractor
from dataplump.sample import create_sample
from dataplump.sample.grow import Grower
from dataplump.sample.schema import TABLES

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

EXAMPLE = Path(__file__).parents[3] / "examples" / "shop" / "dataplump.yaml"


def test_extraction_follows_grow(tmp_path: Path, kafka_bootstrap: str) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    manifest = create_sample(url, orders=500, seed=4)
    env = {
        "DATAPLUMP__PIPELINE__NAME": f"grow{uuid.uuid4().hex[:8]}",
        "DATAPLUMP__SOURCE__URL": url,
        "DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "DATAPLUMP__SINKS__LAKE__PATH": str(tmp_path / "lake"),
    }
    extractor = Extractor(load_config(EXAMPLE, env=env), kafka_bootstrap)
    first = {c.table: c.read for c in extractor.run_once()}
    assert first == {name: manifest.tables[name].rows for name in TABLES}

    started = datetime.now(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    grower = Grower(url, rate=300, update_share=0.3, dirty=0.05, seed=2)
    try:
        time.sleep(0.5)
        grower.tick()
        time.sleep(0.5)
        counts = grower.tick()
    finally:
        grower.close()
    assert counts.updated["orders"] > 0
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        changed = {
            name: conn.execute(
                sa.text(f"SELECT count(*) FROM {name} WHERE updated_at >= :t"),  # noqa: S608
                {"t": started},
            ).scalar()
            for name in TABLES
        }
    engine.dispose()
    assert changed["order_items"] == counts.inserted["order_items"] > 0
    time.sleep(1.5)  # examples/shop reads up to 1 s before now (lag_seconds)

    second = {c.table: c.read for c in extractor.run_once()}
    assert second == changed
