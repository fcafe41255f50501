"""The worked example of docs/report.md runs as written: sample create, run --once, a
chart declared, and the three reports (on a free port instead of 39092)."""

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
    kafka = free_port()
    script = worked_example("report.md")
    script = script.replace("--once >", "--once --metrics-port 0 >")  # 9464 may be taken
    try:
        result = run_script(script, tmp_path, kafka, timeout=500)
    finally:  # the broker, also when the example failed half way
        kafka_down("examples/shop/dataplump.yaml", tmp_path, kafka)
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
    charts = ["orders_by_status.png", "revenue_by_month.png", "top_countries.png"]
    assert out.rstrip().endswith("\n".join(charts)), out
    assert (tmp_path / "shop.pdf").read_bytes().startswith(b"%PDF")
