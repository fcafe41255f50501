"""Every built-in step, a polars step and a SQL enrichment against a PostgreSQL reference
table, through the real broker: PostgreSQL source -> extract -> transform -> processed."""

from __future__ import annotations

import json
import uuid
from datetime import date
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from dataplump.config import load_config
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from tests.support.topics import read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.postgres]

ROWS = 120
"""Visits: rows 2k and 2k+1 share an e-mail (dedupe keeps the later visit)."""

PIPELINE = """
pipeline: {{name: {name}}}
source: {{url: "{url}"}}
kafka: {{bootstrap_servers: "{bootstrap}"}}
tables:
  visits:
    primary_key: id
    batch_size: 1000
transform:
  references:
    customers: {{table: customers, key: code}}
  steps:
    visits:
      - rename: {{customer_code: code}}
      - drop: [note]
      - uppercase: [city]
      - titlecase: [name]
      - fill_null: {{score: "0"}}
      - cast: {{score: int32}}
      - dedupe: {{key: [email], newest_by: visited_on}}
      - sql: SELECT v.*, c.segment FROM batch v LEFT JOIN customers c USING (code)
      - polars: steps.py:flag_vip
"""

STEPS = """
import polars as pl

def flag_vip(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(vip=pl.col("score") >= 90)
"""


def visit(i: int) -> dict[str, object]:
    return {
        "id": i,
        "email": f"user{i // 2}@example.com",
        "name": f"aDa lOVELACE {i}",
        "city": "oslo" if i % 2 else "bergen",
        "visited_on": date(2026, 1, 1 + i % 28),
        "score": None if i % 10 == 0 else str(i % 100),
        "note": "internal",
        "customer_code": f"C{i % 4}",
    }


def test_built_in_steps_polars_and_a_postgres_reference_through_kafka(
    tmp_path: Path, kafka_bootstrap: str, postgres_url: str
) -> None:
    engine = sa.create_engine(postgres_url)
    with engine.begin() as db:
        db.exec_driver_sql("CREATE TABLE customers (code text PRIMARY KEY, segment text)")
        db.exec_driver_sql("INSERT INTO customers VALUES ('C0', 'gold'), ('C1', 'silver')")
        db.exec_driver_sql(
            "CREATE TABLE visits (id bigint PRIMARY KEY, email text, name text, city text,"
            " visited_on date, score text, note text, customer_code text)"
        )
        db.execute(
            sa.text(
                "INSERT INTO visits VALUES (:id, :email, :name, :city, :visited_on, :score,"
                " :note, :customer_code)"
            ),
            [visit(i) for i in range(ROWS)],
        )
    engine.dispose()
    (tmp_path / "steps.py").write_text(STEPS)
    path = tmp_path / "dataplump.yaml"
    name = f"s{uuid.uuid4().hex[:8]}"
    path.write_text(PIPELINE.format(name=name, url=postgres_url, bootstrap=kafka_bootstrap))
    config = load_config(path)
    Extractor(config, kafka_bootstrap).run_once()

    [counts] = Transformer(config, kafka_bootstrap, max_records=10_000).run(once=True)

    assert counts.batches == 1  # dedupe works within a batch
    # the later visit of each e-mail pair is newer (visited_on grows with i, mod 28)
    kept = {
        max((i for i in (2 * k, 2 * k + 1)), key=lambda i: (visit(i)["visited_on"], i))
        for k in range(ROWS // 2)
    }
    assert counts.filtered == {"7:dedupe": ROWS - len(kept)}
    assert (counts.processed, counts.failed) == (len(kept), 0)
    rows = {
        json.loads(m.key() or b"{}")["id"]: orjson.loads(m.value() or b"{}")
        for m in read_committed(kafka_bootstrap, topics.processed(name, "visits"))
    }
    assert set(rows) == kept
    for i, row in rows.items():
        source = visit(i)
        assert set(row) == {
            "id",
            "email",
            "name",
            "city",
            "visited_on",
            "score",
            "code",
            "segment",
            "vip",
        }
        assert row["city"] == str(source["city"]).upper()
        assert row["name"] == f"Ada Lovelace {i}"
        expected_score = 0 if source["score"] is None else int(str(source["score"]))
        assert row["score"] == expected_score
        assert row["code"] == source["customer_code"]
        assert row["segment"] == {"C0": "gold", "C1": "silver"}.get(str(source["customer_code"]))
        assert row["vip"] is (expected_score >= 90)
