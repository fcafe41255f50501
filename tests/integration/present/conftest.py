"""One real lake for the dashboard tests: the sample shop run through the real pipeline
(`sample create`, then `run --once` on the session's Kafka), with declared charts."""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from dataplump.config import PipelineConfig, load_config
from dataplump.sample.manifest import Manifest
from tests.support.cli import run_command

EXAMPLE = Path(__file__).parents[3] / "examples" / "shop"
ORDERS = 1000
CHARTS = """
present:
  quarantine_warning: 0.04
  charts:
    - name: orders_by_status
      title: Orders by status
      sql: SELECT status, count(*) AS orders FROM orders GROUP BY status
      kind: bar
      x: status
      y: orders
    - name: revenue_by_category
      sql: SELECT category, round(sum(line_total), 2) AS revenue FROM order_items GROUP BY ALL
      kind: donut
      x: category
      y: revenue
    - name: customers
      sql: SELECT count(*) AS customers FROM customers
      kind: kpi
      y: customers
"""


@dataclass
class ShopLake:
    folder: Path
    config_file: Path
    env: dict[str, str]
    manifest: Manifest
    bootstrap: str

    def config(self) -> PipelineConfig:
        return load_config(self.config_file, env=self.env)


@pytest.fixture(scope="package")
def shop_lake(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> ShopLake:
    folder = tmp_path_factory.mktemp("dashboard")
    shutil.copytree(EXAMPLE, folder / "shop")
    config_file = folder / "shop" / "dataplump.yaml"
    shop = config_file.read_text()  # the shop's own charts give way to the tests' charts
    config_file.write_text(shop[: shop.index("\npresent:")] + "\n" + CHARTS)
    logs = folder / "logs"
    url = f"sqlite:///{folder / 'shop.db'}"
    created = run_command(
        "sample", "create", "--url", url, "--rows", str(ORDERS), "--seed", "3", "--json",
        logs=logs, cwd=folder,
    )  # fmt: skip
    assert created.returncode == 0, created.describe()
    env = {
        "DATAPLUMP__PIPELINE__NAME": f"dash{uuid.uuid4().hex[:8]}",
        "SHOP_DB_URL": url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
    }
    done = run_command(
        "run", "-c", str(config_file), "--once", "--metrics-port", "0",
        logs=logs, cwd=folder, timeout=600, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.describe()
    manifest = Manifest.from_dict(json.loads(created.stdout))
    return ShopLake(folder, config_file, env, manifest, kafka_bootstrap)
