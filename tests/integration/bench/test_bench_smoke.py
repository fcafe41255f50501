"""`python -m bench --quick --scenario 2` end to end: a row per tool, the same rows each.

Real PostgreSQL (TPC-H from tpchgen-cli, in the bench env) and a real managed broker;
the docs are left alone and the JSON goes to a temporary folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from bench.report import from_json

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kafka,
    pytest.mark.postgres,
    pytest.mark.slow,
    pytest.mark.timeout(480),  # the first run installs the bench env (uv, from PyPI)
]

ROOT = Path(__file__).resolve().parents[3]


def test_quick_scenario_2_has_every_tool_with_equal_rows(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--scenario", "2", "--no-docs",
         "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=450, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    [file] = tmp_path.glob("*.json")
    results = from_json(file.read_text())
    assert [r.tool for r in results] == ["dataplump", "naive", "kafka-perf-test"]
    assert {r.rows for r in results} == {100_000}
    assert all(r.seconds > 0 and r.peak_rss_mb > 0 for r in results)
    assert "ratio" in run.stdout
