"""Exactly once under ``kill -9``: ``dataplump transform --once`` killed at random moments.

The design's promise: each poll's processed and failed records and its consumed offsets
are one Kafka transaction, so after a SIGKILL at any moment a restart (whose producer
fences the dead one's open transaction) resumes after the last committed poll, and every
active record ends exactly once on ``.processed`` or the failed store, except the ones a
step drops on purpose.

The kill moments come from a seeded random generator; the seed is printed and
``DATAPLUMP_KILL_SEED=<seed>`` replays a run; ``DATAPLUMP_KILL_POINTS`` sets how many
kills (default 20). Most kills wait until more committed output appears (watched on
``.processed`` + failed) and then a random extra delay, so the process dies anywhere in a
poll's life: transforming, producing, committing; some land blind, during start-up or
the first two polls (never later: a run must not drain the topic before the kills).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dataplump.config import load_config
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from tests.support.transformation import (
    Expected,
    OutputWatcher,
    Transformation,
    check_exactly_once,
    write_pipeline,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 40_000
KILLS = int(os.environ.get("DATAPLUMP_KILL_POINTS") or 20)
POLL = 500
ARGS = ("--once", "--max-records", str(POLL))
"""Records per poll (one transaction each): 80 transactions to die in, a kill every one
or two of them."""
TEST_BUDGET = 60.0 + 15.0 * KILLS
"""Seconds the test may take before it is failed as hung."""


@pytest.fixture
def seed() -> int:
    """The seed of this test's kill moments (printed; ``DATAPLUMP_KILL_SEED`` replays one)."""
    value = int(os.environ.get("DATAPLUMP_KILL_SEED") or random.randrange(2**32))
    print(f"kill seed: {value} (replay with DATAPLUMP_KILL_SEED={value})")
    return value


@dataclass
class Killer:
    """Runs ``dataplump transform --once`` and SIGKILLs it at seeded random moments."""

    config: Path
    watcher: OutputWatcher
    seed: int
    logs: Path
    total: int
    deadline: float = field(default_factory=lambda: time.monotonic() + TEST_BUDGET)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def report(self) -> str:
        return f"seed {self.seed}; " + "; ".join(self.events)

    def start(self) -> Transformation:
        if time.monotonic() > self.deadline:
            raise AssertionError(f"over {TEST_BUDGET:.0f}s: {self.report()}")
        label = f"run{len(self.events)}"
        return Transformation(self.config, *ARGS, logs=self.logs, label=label)

    def kill_at_random(self, run: Transformation) -> bool:
        """Kill ``run`` at a random moment; False if it ended by itself first (exit 0)."""
        self.watcher.poll()
        if self.rng.random() < 0.25:  # blind, in the start-up or the first polls
            delay = self.rng.uniform(0.3, 4.0)
            moment = f"{delay:.2f}s after start"
            end = time.monotonic() + delay
            early = self.watcher.total + 2 * POLL  # a fast start must not drain the topic
            while run.running() and time.monotonic() < end:
                if self.watcher.total >= early:
                    moment = f"after {self.watcher.total} records out, {moment} at most"
                    break
                self.watcher.poll(0.02)
        else:
            target = self.watcher.total + self.rng.randint(1, POLL)
            end = time.monotonic() + 40
            while run.running() and self.watcher.total < target:
                if time.monotonic() > end:
                    raise AssertionError(f"no progress in 40s: {self.report()}")
                self.watcher.poll(0.05)
            extra = self.rng.uniform(0.0, 0.3)
            moment = f"{extra * 1000:.0f}ms after {self.watcher.total} records out"
            time.sleep(extra)
        if not run.running():
            return self._finish(run, f"ended by itself before the kill ({moment})")
        result = run.kill()
        if result.returncode == 0:  # it exited between the check and the signal
            self.events.append(f"run ended by itself at the kill ({moment})")
            return False
        assert result.returncode == -9, result.describe()
        self.events.append(f"SIGKILL {moment}")
        return True

    def _finish(self, run: Transformation, what: str) -> bool:
        result = run.wait(max(5.0, self.deadline - time.monotonic()))
        assert result.returncode == 0, f"{self.report()}\n{result.describe()}"
        self.events.append(f"run {what}: exit 0 after {result.seconds:.1f}s")
        return False


@pytest.mark.timeout(TEST_BUDGET + 120)
def test_transform_once_survives_kill_9(tmp_path: Path, kafka_bootstrap: str, seed: int) -> None:
    path, _ = write_pipeline(tmp_path, kafka_bootstrap, rows=ROWS, batch_size=1000, partitions=2)
    config = load_config(path)
    Extractor(config, kafka_bootstrap).run_once()
    Transformer(config, kafka_bootstrap).prepare()  # so the watcher follows the outputs at once
    expected = Expected.of(ROWS)
    watcher = OutputWatcher.of(kafka_bootstrap, config)
    killer = Killer(path, watcher, seed, tmp_path / "logs", expected.total)
    try:
        kills = 0
        while kills < KILLS:
            if watcher.total >= expected.total:  # all out before the kills were done: redo
                break
            if killer.kill_at_random(killer.start()):
                kills += 1
        final = killer.start().wait(max(10.0, killer.deadline - time.monotonic()))
        assert final.returncode == 0, f"{killer.report()}\n{final.describe()}"
        killer.events.append(f"final run: exit 0 after {final.seconds:.1f}s")
        assert "transformed" in final.stdout, final.describe()
        print(killer.report())
        assert kills == KILLS, killer.report()  # the data is sized so no run drains it first
        check_exactly_once(kafka_bootstrap, config, expected, killer.report())
    finally:
        watcher.close()
