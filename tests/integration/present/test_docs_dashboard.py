"""The worked example of docs/dashboard.md runs as written: sample create, run --once,
serve, the API read with curl and Python (on free ports instead of 39092 and 8050)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dataplump.services.kafka import free_port

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).parents[3]


def worked_example() -> str:
    text = (ROOT / "docs" / "dashboard.md").read_text()
    section = text[text.index("## A worked example") :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.timeout(600)
def test_worked_example_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "shop", tmp_path / "examples" / "shop")
    kafka, web = free_port(), free_port()
    script = worked_example().replace("39092", str(kafka)).replace("8050", str(web))
    script = script.replace("--once\n", "--once --metrics-port 0\n")  # 9464 may be taken
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAPLUMP", "SHOP_DB"))}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "NO_COLOR": "1", "COLUMNS": "200"}
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=500, check=False,
        )  # fmt: skip
    finally:  # the broker, also when the example failed half way
        subprocess.run(
            [bin_dir + "/dataplump", "kafka", "down", "-c", "examples/shop/dataplump.yaml"],
            cwd=tmp_path, env=env | {"DATAPLUMP__KAFKA__MANAGED__PORT": str(kafka)},
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert '{"ok":true' in result.stdout
    for table in ("customers", "products", "orders", "order_items"):
        assert re.search(rf"^{table}\s+extracted .* gap 0$", result.stdout, re.M), result.stdout
    assert re.search(r"orders\s+extracted\s+2,000\s+invalid\s+50\s+failed\s+17", result.stdout)
    assert "open incidents: 6" in result.stdout
