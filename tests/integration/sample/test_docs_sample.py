"""The worked example of docs/sample.md runs as written: in a folder holding a copy of
``examples/shop``, with the managed broker on a free port instead of 39092."""

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
    text = (ROOT / "docs" / "sample.md").read_text()
    section = text[text.index("## A worked example") :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_worked_example_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "shop", tmp_path / "examples" / "shop")
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAPLUMP", "SHOP_DB"))}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "NO_COLOR": "1", "COLUMNS": "200"}
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", worked_example().replace("39092", str(port))],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:  # the broker the example started, also when it failed half way
        subprocess.run(
            [bin_dir + "/dataplump", "kafka", "down", "-c", "examples/shop/dataplump.yaml"],
            cwd=tmp_path,
            env=env | {"DATAPLUMP__KAFKA__MANAGED__PORT": str(port)},
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every fault where the manifest says" in result.stdout
    assert re.search(r"customers\s+1,000\s+50", result.stdout), result.stdout
