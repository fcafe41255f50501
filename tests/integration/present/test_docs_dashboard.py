"""The worked example of docs/dashboard.md runs as written: sample create, run --once,
serve, the API read with curl and Python (on free ports instead of 39092 and 8050)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dataplump.services.kafka import free_port
from tests.support.docs import kafka_down, run_script, worked_example

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).parents[3]


@pytest.mark.timeout(600)
def test_worked_example_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "shop", tmp_path / "examples" / "shop")
    kafka, web = free_port(), free_port()
    script = worked_example("dashboard.md").replace("8050", str(web))
    script = script.replace("--once\n", "--once --metrics-port 0\n")  # 9464 may be taken
    try:
        result = run_script(script, tmp_path, kafka, timeout=500)
    finally:  # the broker, also when the example failed half way
        kafka_down("examples/shop/dataplump.yaml", tmp_path, kafka)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '{"ok":true' in result.stdout
    for table in ("customers", "products", "orders", "order_items"):
        assert re.search(rf"^{table}\s+extracted .* gap 0$", result.stdout, re.M), result.stdout
    assert re.search(r"orders\s+extracted\s+2,000\s+invalid\s+50\s+failed\s+17", result.stdout)
    assert "open incidents: 6" in result.stdout
