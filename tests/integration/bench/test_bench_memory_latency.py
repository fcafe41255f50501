"""`python -m bench --scenario 4` and `--scenario 5` end to end, at tiny sizes.

Like test_bench_smoke.py: real PostgreSQL and a real managed broker, the docs left
alone, the JSON in a temporary folder. These prove the harness works, not the numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from bench.report import Result, from_json

from tests.support.bench import MARKS, run_bench

pytestmark = MARKS


def bench(tmp_path: Path, *args: str) -> tuple[list[Result], str]:
    out = run_bench(tmp_path, "--no-peers", "--no-docs", *args)
    [file] = tmp_path.glob("*.json")
    return from_json(file.read_text()), out


def test_scenario_4_measures_each_stage_at_a_tenth_and_at_all_rows(tmp_path: Path) -> None:
    results, out = bench(tmp_path, "--rows", "10000", "--scenario", "4")
    stages = ["extract", "transform", "load"]
    rows = [f"dataplump {stage}" for stage in stages]
    frames = [f"dataplump-arrow {stage}" for stage in stages]
    assert [r.tool for r in results] == rows * 2 + frames * 2
    assert [r.rows for r in results] == ([1_000] * 3 + [10_000] * 3) * 2
    assert all(r.seconds > 0 and r.peak_rss_mb > 0 for r in results)
    for first in (0, 6):
        small, full = results[first : first + 3], results[first + 3 : first + 6]
        for one, all_rows in zip(small, full, strict=True):
            assert one.own_ratio == 1.0
            assert all_rows.own_ratio == pytest.approx(all_rows.peak_rss_mb / one.peak_rss_mb)
    assert "p99" not in out


def test_scenario_5_reports_p50_and_p99_of_every_row_in_the_window(tmp_path: Path) -> None:
    results, out = bench(
        tmp_path, "--rows", "1000", "--scenario", "5",
        "--latency-rate", "50", "--latency-seconds", "5", "--latency-warmup", "2",
    )  # fmt: skip
    [result] = results
    assert result.tool == "dataplump run"
    assert result.rows > 100  # ~250 orders inserted in the window
    assert result.p50_s is not None
    assert result.p99_s is not None
    assert 0 < result.p50_s <= result.p99_s
    assert math.isfinite(result.p99_s), "a row of the window never reached the curated table"
    assert "0 not seen" in out
    assert "resolution" in out
