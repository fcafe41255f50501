"""The bench's table, JSON and Markdown: ratios against DataPlump, markers kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.report import (
    BEGIN,
    END,
    Result,
    from_json,
    markdown_table,
    ratio,
    replace_between_markers,
    text_table,
    to_json,
    write_docs,
)

RESULTS = [
    Result("dataplump", 2, 100_000, 2.0, 300.4),
    Result("naive", 2, 100_000, 4.0, 250.0),
    Result("kafka-perf-test", 2, 100_000, 0.5, 120.0),
    Result("dlt", 1, 100_000, 10.0, 400.0),
]


def test_ratio_is_rows_per_second_over_dataplumps_in_the_same_scenario() -> None:
    assert ratio(RESULTS[0], RESULTS) == 1.0
    assert ratio(RESULTS[1], RESULTS) == 0.5
    assert ratio(RESULTS[2], RESULTS) == 4.0
    assert ratio(RESULTS[3], RESULTS) is None  # no DataPlump row in scenario 1


def test_text_table_has_one_line_per_result_and_aligned_columns() -> None:
    lines = text_table(RESULTS).splitlines()
    assert lines[0].split() == [
        "tool",
        "scenario",
        "rows",
        "seconds",
        "rows/s",
        "peak",
        "RSS",
        "ratio",
    ]
    assert len(lines) == 1 + len(RESULTS)
    assert lines[1].split() == ["dataplump", "2", "100,000", "2.00", "50,000", "300", "MB", "1.00"]
    assert lines[4].endswith("-")
    assert len({len(line) for line in lines[:4]}) == 1  # right-aligned numbers end together


def test_markdown_table_rows() -> None:
    lines = markdown_table(RESULTS).splitlines()
    assert lines[0] == "| tool | scenario | rows | seconds | rows/s | peak RSS | ratio |"
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    assert lines[3] == "| naive | 2 | 100,000 | 4.00 | 25,000 | 250 MB | 0.50 |"


def test_json_round_trip_keeps_rate_and_ratio() -> None:
    text = to_json(RESULTS, {"scale": 0.02})
    assert from_json(text) == RESULTS
    assert '"rows_per_s": 200000.0' in text
    assert '"ratio": null' in text


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (f"intro\n{BEGIN}\nold\n{END}\noutro\n", f"intro\n{BEGIN}\nnew\n{END}\noutro\n"),
        ("intro\n", f"intro\n\n{BEGIN}\nnew\n{END}\n"),
    ],
)
def test_replace_between_markers_keeps_the_prose(before: str, after: str) -> None:
    assert replace_between_markers(before, "new\n") == after


def test_write_docs_puts_note_table_and_chart_between_markers(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nprose\n\n{BEGIN}\n{END}\n\n## TODO\n")
    write_docs(doc, RESULTS, "Measured under load.", tmp_path / "benchmarks.svg")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nprose\n\n")
    assert text.endswith(f"{END}\n\n## TODO\n")
    assert "Measured under load.\n\n| tool |" in text
    assert "![rows/s per tool](benchmarks.svg)" in text


def test_latency_columns_appear_only_with_a_latency_and_own_ratio_wins() -> None:
    assert "p50" not in text_table(RESULTS)
    assert "p50_s" not in to_json(RESULTS, {})
    extra = [
        Result("dataplump extract", 4, 100_000, 3.0, 310.0, own_ratio=1.04),
        Result("dataplump run", 5, 6_000, 60.0, 500.0, p50_s=1.25, p99_s=3.5),
    ]
    both = RESULTS + extra
    assert ratio(extra[0], both) == 1.04
    header, *_, last = text_table(both).splitlines()
    assert header.split()[-2:] == ["p50", "p99"]
    assert last.split()[-4:] == ["1.25", "s", "3.50", "s"]
    assert markdown_table(both).splitlines()[0].endswith("| p50 | p99 |")
    assert from_json(to_json(both, {})) == both
