"""The loader end to end into an `s3://` lake: real SQLite, Kafka and S3 (moto's server);
the curated and ops tables are read back with polars."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import polars as pl
import pytest

from dataplump.config import load_config
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.load import Loader
from dataplump.pipeline.transform import Transformer
from tests.fixtures.s3 import KEY_ID, REGION, SECRET, S3Server

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 300

PIPELINE = """
pipeline: {{name: {name}}}
source: {{url: "sqlite:///{db}"}}
kafka: {{bootstrap_servers: "{bootstrap}"}}
sinks:
  lake:
    kind: delta
    path: s3://{bucket}/lake
    s3: {{endpoint_url: "{endpoint}", access_key_id: {key}, secret_access_key: {secret},
          allow_http: true}}
  files:
    kind: parquet
    path: s3://{bucket}/files
    s3: {{endpoint_url: "{endpoint}", access_key_id: {key}, secret_access_key: {secret},
          allow_http: true}}
tables:
  orders:
    primary_key: id
    batch_size: 100
    contract:
      columns:
        id: {{type: int64, not_null: true}}
        amount: {{type: "decimal(10,2)", min: 0}}
"""


def test_loader_commits_to_an_s3_lake_once(
    tmp_path: Path, kafka_bootstrap: str, s3_server: S3Server, s3_bucket: str
) -> None:
    with sqlite3.connect(tmp_path / "shop.db") as db:
        db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2))")
        db.executemany(
            "INSERT INTO orders VALUES (?, ?)",
            [(i, f"-{i}.10" if i % 7 == 0 else f"{i}.10") for i in range(1, ROWS + 1)],
        )
    file = tmp_path / "dataplump.yaml"
    file.write_text(
        PIPELINE.format(
            name=f"s{uuid.uuid4().hex[:8]}",
            db=tmp_path / "shop.db",
            bootstrap=kafka_bootstrap,
            bucket=s3_bucket,
            endpoint=s3_server.endpoint,
            key=KEY_ID,
            secret=SECRET,
        )
    )
    config = load_config(file)
    Extractor(config, kafka_bootstrap).run_once()
    Transformer(config, kafka_bootstrap).run(once=True)

    counts = {c.table: c for c in Loader(config, kafka_bootstrap).run(once=True)}

    good = sorted(i for i in range(1, ROWS + 1) if i % 7)
    options = {
        "AWS_ENDPOINT_URL": s3_server.endpoint,
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": REGION,
        "AWS_ALLOW_HTTP": "true",
    }
    lake = f"s3://{s3_bucket}/lake"
    orders = pl.read_delta(f"{lake}/orders", storage_options=options)
    assert sorted(orders["id"].to_list()) == good
    assert counts["orders"].loaded == {"lake": len(good), "files": len(good)}
    dlq = pl.read_delta(f"{lake}/_dlq", storage_options=options)
    assert dlq.height == ROWS - len(good)

    from dataplump.sinks.parquet import read_parquet_table

    files = read_parquet_table(f"s3://{s3_bucket}/files/orders", s3=config.sinks["files"].s3)
    assert sorted(files["id"].to_pylist()) == good

    again = {c.table: c for c in Loader(config, kafka_bootstrap).run(once=True)}
    assert again["orders"].consumed == 0
    assert pl.read_delta(f"{lake}/orders", storage_options=options).height == len(good)
