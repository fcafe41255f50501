"""`python -m bench.framing` end to end at a small size: real PostgreSQL, a real broker.

Proves the comparison is of equals (every framing gives back the same rows, checked by
the bench itself) and that each framing's figures are written; not the numbers.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.bench import MARKS, run_bench

pytestmark = MARKS


def test_both_framings_carry_the_same_rows_and_are_measured(tmp_path: Path) -> None:
    out = run_bench(
        tmp_path, "--rows", "20000", "--chunk", "5000", "--repeat", "1", module="bench.framing"
    )
    [file] = tmp_path.glob("framing-*.json")
    data = json.loads(file.read_text())
    assert data["meta"]["rows"] == 20_000
    results = {r["framing"]: r for r in data["results"]}
    assert list(results) == ["row", "arrow", "arrow-lz4", "arrow-zstd"]
    for r in results.values():
        assert r["rows"] == 20_000
        assert r["produce_seconds"] > 0
        assert r["consume_seconds"] > 0
    # frames drop the per-row JSON field names, and compression shrinks them further
    assert results["arrow"]["topic_bytes"] < results["row"]["topic_bytes"]
    assert results["arrow-zstd"]["topic_bytes"] < results["arrow"]["topic_bytes"]
    assert "vs row" in out
