"""The worked example of docs/init.md runs as written (on a free port instead of 39092)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dataplump.services.kafka import free_port

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

PAGE = Path(__file__).parents[3] / "docs" / "init.md"


def worked_example() -> str:
    text = PAGE.read_text()
    section = text[text.index("## A worked example") :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no bash block in the worked example of docs/init.md"
    return match.group(1)


def run(script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPLUMP")}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_worked_example(tmp_path: Path) -> None:
    port = str(free_port())
    try:
        result = run(worked_example().replace("39092", port), tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "wrote pipeline `shop` in shop:" in out
        assert "table orders: incremental by updated_at" in out
        assert "shop/dataplump.yaml is valid" in out
        assert re.search(r"customers\s+30\s+30\s+0", out), out
        assert re.search(r"orders\s+100\s+100\s+0", out), out
        assert re.search(r"orders\s+100\s+lake 100\s+0", out), out
        assert re.search(r"customers\s+30\s+lake 30\s+0", out), out
        page = PAGE.read_text()
        contract = (tmp_path / "shop" / "contracts" / "orders.yaml").read_text()
        for line in contract.splitlines():
            if line.startswith("  ") and ":" in line and not line.startswith("  #"):
                assert line.rstrip() in page, f"docs/init.md shows another contract: {line}"
    finally:
        down = f"export DATAPLUMP__KAFKA__MANAGED__PORT={port}\n"
        down += "dataplump kafka down -c shop/dataplump.yaml || true\n"
        run(down, tmp_path)
