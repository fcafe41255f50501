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
from dataclasses import dataclass
from pathlib import Path

import pytest

from dataplump.config import load_config
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from tests.support.killer import Killer, Pace
from tests.support.transformation import (
    Expected,
    OutputWatcher,
    Transformation,
    check_exactly_once,
    write_pipeline,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 60_000
KILLS = int(os.environ.get("DATAPLUMP_KILL_POINTS") or 20)
POLL = 500
ARGS = ("--once", "--max-records", str(POLL))
"""Records per poll (one transaction each): 120 transactions to die in, a kill every one
to four of them (a kill lets 1-500 records and 0-200 ms of work out, about 1,300 records
on CI's machine, where 0-300 ms let about 1,900 out and drained 40,000 rows in 19 kills)."""
TEST_BUDGET = 60.0 + 15.0 * KILLS
"""Seconds the test may take before it is failed as hung."""
PACE = Pace(
    blind=0.25, blind_within=4.0, early=2 * POLL, steps=POLL, extra=0.2, tick=0.05, patience=40
)
"""Most kills 1-500 records out and up to 200 ms after; a quarter blind, in the start-up or
the first two polls."""


@dataclass(frozen=True)
class RecordsOut:
    """Progress as the committed records on ``.processed`` + failed (polled as it waits)."""

    watcher: OutputWatcher

    def count(self) -> int:
        return self.watcher.total

    def wait(self, seconds: float) -> None:
        self.watcher.poll(seconds)

    def at(self, mark: int) -> str:
        return f"after {self.watcher.total} records out"

    def after(self, mark: int) -> str:
        return f"{self.watcher.total} records out"


@pytest.mark.timeout(TEST_BUDGET + 120)
@pytest.mark.parametrize("framing", ["row", "arrow"])
def test_transform_once_survives_kill_9(
    tmp_path: Path, kafka_bootstrap: str, seed: int, framing: str
) -> None:
    """With the ``arrow`` framing a source batch of 1,000 rows is a frame per partition
    (about 500 rows), and ``--max-records 500`` makes a poll one frame."""
    path, _ = write_pipeline(
        tmp_path, kafka_bootstrap, rows=ROWS, batch_size=1000, partitions=2, framing=framing
    )
    config = load_config(path)
    Extractor(config, kafka_bootstrap).run_once()
    Transformer(config, kafka_bootstrap).prepare()  # so the watcher follows the outputs at once
    expected = Expected.of(ROWS)
    watcher = OutputWatcher.of(kafka_bootstrap, config)
    logs = tmp_path / "logs"
    killer = Killer(
        lambda label: Transformation(path, *ARGS, logs=logs, label=label),
        RecordsOut(watcher),
        PACE,
        seed,
        TEST_BUDGET,
    )
    try:
        kills = 0
        while kills < KILLS:
            if watcher.total >= expected.total:  # all out before the kills were done: redo
                break
            if killer.kill_at_random(killer.start()):
                kills += 1
        killer.final("transformed")
        print(killer.report())
        assert kills == KILLS, killer.report()  # the data is sized so no run drains it first
        check_exactly_once(kafka_bootstrap, config, expected, killer.report())
    finally:
        watcher.close()
