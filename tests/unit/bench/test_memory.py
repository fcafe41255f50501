"""The bench's peak-memory sampler: a child's own memory, not the harness's."""

from __future__ import annotations

import sys

from bench.memory import tree_peak
from bench.scenarios import run_child

TOUCH_200_MB = (
    "b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); import time; time.sleep(1)"
)


def test_a_child_that_touches_200_mb_peaks_at_200_mb_or_more() -> None:
    with tree_peak() as peak:
        code, *_ = run_child([sys.executable, "-c", TOUCH_200_MB])
    assert code == 0
    assert peak.single >= 200
    assert peak.mb >= peak.single


def test_a_small_child_of_a_big_harness_is_small() -> None:
    """``wait4`` said 615 MB for ``/bin/true`` here: the harness's memory at the fork."""
    held = bytearray(400 * 2**20)
    held[::4096] = b"x" * len(held[::4096])
    code, _, _, rss = run_child([sys.executable, "-c", "import time; time.sleep(0.5)"])
    assert code == 0
    assert 0 < rss < 100, rss
    del held
