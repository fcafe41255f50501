"""`python -m bench --quick --scenario 2` end to end: a row per tool, the same rows each.

Real PostgreSQL (TPC-H from tpchgen-cli, in the bench env) and a real managed broker;
the docs are left alone and the JSON goes to a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

from bench.report import from_json

from tests.support.bench import MARKS, run_bench

pytestmark = MARKS


def test_quick_scenario_2_has_every_tool_with_equal_rows(tmp_path: Path) -> None:
    out = run_bench(tmp_path, "--quick", "--scenario", "2", "--no-docs")
    [file] = tmp_path.glob("*.json")
    results = from_json(file.read_text())
    assert [r.tool for r in results] == ["dataplump", "dataplump-arrow", "naive", "kafka-perf-test"]
    assert {r.rows for r in results} == {100_000}
    assert all(r.seconds > 0 and r.peak_rss_mb > 0 for r in results)
    assert "ratio" in out
