"""Peak memory of a benchmark candidate: its processes sampled, not ``wait4``'s figure.

``wait4``'s ``ru_maxrss`` is wrong here twice: Linux carries the spawning process's RSS
into a child at ``fork``/``exec``, so every child of the harness reported at least what
the harness held (``run_child(["/bin/true"])`` reported 615 MB after the harness touched
600 MB); and PySpark's JVM, which its driver does not always wait for, was missed.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SAMPLE_EVERY = 0.05
"""Seconds between samples."""
SETTLED = 0.1
"""Seconds after its start from which a process is sampled."""


@dataclass
class TreePeak:
    """Peak memory of the processes started while it samples (a candidate and its JVM)."""

    summed: float = 0.0
    """The largest sum of their RSS at one sample, in MB (shared pages of forked processes
    counted in each)."""
    single: float = 0.0
    """The largest ``VmHWM`` of one of them, in MB: each process's own high-water mark,
    exact even between samples, as long as it was seen alive once."""

    @property
    def mb(self) -> float:
        """The figure for the table: the summed peak, at least the largest single one."""
        return max(self.summed, self.single)


def _hwm_mb(pid: int) -> float:
    """``VmHWM`` of ``pid`` in MB, 0 when it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def tree_peak() -> Iterator[TreePeak]:
    """Sample, every :data:`SAMPLE_EVERY` seconds, the processes this one starts inside the
    block (and their children): the most they held at once, and the largest one's own
    high-water mark. A process is read once it is :data:`SETTLED` seconds old, after its
    ``exec``: before it, a child still shares or copies the harness's memory."""
    import psutil  # type: ignore[import-untyped]

    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}  # the broker
    peak = TreePeak()
    stop = threading.Event()

    def sample() -> None:
        while True:
            total = 0
            now = time.time()
            for process in me.children(recursive=True):
                if process.pid in before:
                    continue
                with contextlib.suppress(psutil.Error):
                    if now - process.create_time() < SETTLED:
                        continue
                    total += process.memory_info().rss
                    peak.single = max(peak.single, _hwm_mb(process.pid))
            peak.summed = max(peak.summed, total / 2**20)
            if stop.wait(SAMPLE_EVERY):
                return

    thread = threading.Thread(target=sample, name="bench-memory", daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()
