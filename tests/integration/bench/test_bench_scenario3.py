"""`python -m bench --scenario 3` at 20,000 rows: DataPlump's DuckDB engine and Quix Streams.

Real PostgreSQL and a real managed broker, like ``test_bench_smoke.py``. The Spark
candidates are left out (``BENCH_SKIP_SPARK``): their JVMs take a minute or more to start
on a busy machine; run ``python -m bench --rows 20000 --scenario 3`` by hand for them.
The harness itself fails when the candidates' output counts differ.
"""

from __future__ import annotations

import os
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


def test_scenario_3_duckdb_and_quix_send_the_same_rows_on(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--rows", "20000", "--scenario", "3", "--no-docs",
         "--results", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=450, check=False,
        env={**os.environ, "BENCH_SKIP_SPARK": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    [file] = tmp_path.glob("*.json")
    results = from_json(file.read_text())
    assert [r.tool for r in results] == ["dataplump", "quix", "quix-eos"]
    assert {r.rows for r in results} == {20_000}
    # the same rows failed the two rules everywhere (the harness checks the rows on too)
    assert len({r.invalid for r in results}) == 1
    assert results[0].invalid > 0
    assert all(r.seconds > 0 and r.peak_rss_mb > 0 for r in results)
    assert "rows on / failed" in run.stdout
