"""`python -m bench --scenario 3` at 20,000 rows: DataPlump's DuckDB engine and Quix Streams.

Real PostgreSQL and a real managed broker, like ``test_bench_smoke.py``. The Spark
candidates are left out (``BENCH_SKIP_SPARK``): their JVMs take a minute or more to start
on a busy machine; run ``python -m bench --rows 20000 --scenario 3`` by hand for them.
The harness itself fails when the candidates' output counts differ.
"""

from __future__ import annotations

from pathlib import Path

from bench.report import from_json

from tests.support.bench import MARKS, run_bench

pytestmark = MARKS


def test_scenario_3_duckdb_and_quix_send_the_same_rows_on(tmp_path: Path) -> None:
    out = run_bench(
        tmp_path, "--rows", "20000", "--scenario", "3", "--no-docs",
        env={"BENCH_SKIP_SPARK": "1"},
    )  # fmt: skip
    [file] = tmp_path.glob("*.json")
    results = from_json(file.read_text())
    assert [r.tool for r in results] == ["dataplump", "dataplump-arrow", "quix", "quix-eos"]
    assert {r.rows for r in results} == {20_000}
    # the same rows failed the two rules everywhere (the harness checks the rows on too)
    assert len({r.invalid for r in results}) == 1
    assert results[0].invalid > 0
    assert all(r.seconds > 0 and r.peak_rss_mb > 0 for r in results)
    assert "rows on / failed" in out
