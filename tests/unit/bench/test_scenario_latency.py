"""Scenario 5's arithmetic: nearest-rank percentiles, rows never seen count as late."""

from __future__ import annotations

import math

from bench.scenario_latency import percentile


def test_percentile_is_nearest_rank() -> None:
    values = [float(x) for x in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))


def test_a_row_never_seen_shows_in_the_p99_once_it_is_more_than_one_in_a_hundred() -> None:
    assert percentile([1.0] * 99 + [math.inf], 0.99) == 1.0
    assert percentile([1.0] * 98 + [math.inf] * 2, 0.99) == math.inf
