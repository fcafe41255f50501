"""The worked example of docs/report.md runs as written: sample create, run --once, a
chart declared, and the three reports (on a free port instead of 39092)."""

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
    text = (ROOT / "docs" / "report.md").read_text()
    section = text[text.index("## A worked example") :]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


@pytest.mark.timeout(600)
def test_worked_example_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "shop", tmp_path / "examples" / "shop")
    kafka = free_port()
    script = worked_example().replace("39092", str(kafka))
    script = script.replace("--once >", "--once --metrics-port 0 >")  # 9464 may be taken
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
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for name, tables in (
        ("shop.pdf", "4 tables"),
        ("shop.html", "4 tables"),
        ("orders.md", "1 table"),
    ):
        assert re.search(rf"^wrote {name} \([\d,]+ KiB\): .* UTC \(1 h\), {tables}$", out, re.M), (
            out
        )
    assert (
        "- 2,000 rows extracted, 1,933 loaded, 50 invalid and 17 failed (3.4% quarantined);"
        " the previous period extracted 0." in out
    ), out
    assert "- Ledger balanced: every row read is loaded, kept or in flight (gap 0)." in out
    assert "- Most frequent reason: `not_in_future(ordered_at)` on orders (17 records" in out
    assert (
        "| orders | 2,000 (+2,000, was 0) | 1,933 (+1,933, was 0) | 50 (+50, was 0)"
        " | 17 (+17, was 0)" in out
    ), out
    assert out.rstrip().endswith("orders_by_status.png")
    assert (tmp_path / "shop.pdf").read_bytes().startswith(b"%PDF")
