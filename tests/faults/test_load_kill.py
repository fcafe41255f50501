"""Exactly once under ``kill -9``: ``dataplump load --once`` killed at random moments.

The design's promise for the last leg: every sink commits a poll's rows with their Kafka
offsets in its own commit (a Delta commit with ``txn`` actions, one PostgreSQL
transaction), and a restart seeks to the lowest offset its sinks hold, each sink dropping
what it already has. So after a SIGKILL anywhere (between two sinks' commits, inside a
Delta write, in the middle of a COPY) a restart ends with every processed order exactly
once in the curated table of every sink, and every DLQ and failed record once in
``_dlq`` and ``_failed``. Append mode is where a replayed poll would show as duplicates.

The kill moments come from a seeded random generator; the seed is printed and
``DATAPLUMP_KILL_SEED=<seed>`` replays a run; ``DATAPLUMP_KILL_POINTS`` sets how many
kills per test (default 10: the stage's two tests make 20 kill points). Most kills
wait until the curated Delta table got more commits and then a random extra delay, so
the process dies anywhere in a poll's life; some land blind, during start-up or the
first two polls (never later: a run must not drain the topics before the kills are
made).
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.loading import (
    Loadable,
    Loading,
    check_lake,
    check_warehouse,
    delta_commits,
    loadable,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 20_000
KILLS = int(os.environ.get("DATAPLUMP_KILL_POINTS") or 10)
POLL = 150
ARGS = ("--once", "--max-records", str(POLL))
"""Records per poll (one commit per sink and table each): ~130 polls to die in. An
append poll takes ~20 ms here, a merge into both sinks more: a kill comes 1-4 commits
and up to 100 ms after the last, so the kills take ~50 of them."""
TEST_BUDGET = 60.0 + 15.0 * KILLS
"""Seconds a test may take (after the topics are filled) before it is failed as hung."""


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Loadable:
    """20k orders on the topics, shared by the tests (each loads into its own sinks)."""
    return loadable(tmp_path_factory.mktemp("orders"), kafka_bootstrap, ROWS)


@pytest.fixture
def seed() -> int:
    """The seed of this test's kill moments (printed; ``DATAPLUMP_KILL_SEED`` replays one)."""
    value = int(os.environ.get("DATAPLUMP_KILL_SEED") or random.randrange(2**32))
    print(f"kill seed: {value} (replay with DATAPLUMP_KILL_SEED={value})")
    return value


@dataclass
class Killer:
    """Runs ``dataplump load --once`` and SIGKILLs it at seeded random moments."""

    config: Path
    table: Path
    """The curated Delta table whose commits show progress."""
    seed: int
    logs: Path
    deadline: float = field(default_factory=lambda: time.monotonic() + TEST_BUDGET)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def report(self) -> str:
        return f"seed {self.seed}; " + "; ".join(self.events)

    def start(self) -> Loading:
        if time.monotonic() > self.deadline:
            raise AssertionError(f"over {TEST_BUDGET:.0f}s: {self.report()}")
        return Loading(self.config, *ARGS, logs=self.logs, label=f"run{len(self.events)}")

    def kill_at_random(self, run: Loading) -> bool:
        """Kill ``run`` at a random moment; False if it ended by itself first (exit 0)."""
        if self.rng.random() < 0.2:  # blind, in the start-up or the first polls
            delay = self.rng.uniform(0.3, 4.0)
            moment = f"{delay:.2f}s after start"
            end = time.monotonic() + delay
            early = delta_commits(self.table) + 2  # a fast start must not drain the topic
            while run.running() and time.monotonic() < end:
                if delta_commits(self.table) >= early:
                    moment = f"at commit {early - 1} of the curated table, {moment} at most"
                    break
                time.sleep(0.02)
        else:
            target = delta_commits(self.table) + self.rng.randint(1, 4)
            end = time.monotonic() + 40
            while run.running() and delta_commits(self.table) < target:
                if time.monotonic() > end:
                    raise AssertionError(f"no progress in 40s: {self.report()}")
                time.sleep(0.01)
            extra = self.rng.uniform(0.0, 0.1)
            time.sleep(extra)
            moment = f"{extra * 1000:.0f}ms after commit {target - 1} of the curated table"
        if not run.running():
            return self._finish(run, f"ended by itself before the kill ({moment})")
        result = run.kill()
        if result.returncode == 0:  # it exited between the check and the signal
            self.events.append(f"run ended by itself at the kill ({moment})")
            return False
        assert result.returncode == -9, result.describe()
        self.events.append(f"SIGKILL {moment}")
        return True

    def _finish(self, run: Loading, what: str) -> bool:
        result = run.wait(max(5.0, self.deadline - time.monotonic()))
        assert result.returncode == 0, f"{self.report()}\n{result.describe()}"
        self.events.append(f"run {what}: exit 0 after {result.seconds:.1f}s")
        return False

    def run(self) -> int:
        """Kill ``KILLS`` runs (fewer if one drains everything first), then load to the end."""
        kills = 0
        while kills < KILLS:
            if self.kill_at_random(self.start()):
                kills += 1
            else:
                break  # drained: everything is loaded, no moment left to die in
        final = self.start().wait(max(10.0, self.deadline - time.monotonic()))
        assert final.returncode == 0, f"{self.report()}\n{final.describe()}"
        assert "loaded (run" in final.stdout, final.describe()
        self.events.append(f"final run: exit 0 after {final.seconds:.1f}s")
        print(self.report())
        return kills


@pytest.mark.timeout(TEST_BUDGET + 120)
def test_load_into_lake_and_warehouse_survives_kill_9(
    tmp_path: Path,
    data: Loadable,
    postgres_url: str,
    seed: int,
) -> None:
    lake = tmp_path / "lake"
    sinks = {
        "lake": {"kind": "delta", "path": str(lake), "mode": "merge"},
        "warehouse": {"kind": "postgres", "url": postgres_url, "mode": "merge"},
    }
    path = data.pipeline(tmp_path, sinks, table_sinks=["lake", "warehouse"])
    killer = Killer(path, lake / "orders", seed, tmp_path / "logs")
    kills = killer.run()
    assert kills == KILLS, killer.report()  # the data is sized so no run drains it first
    check_lake(lake, data, killer.report())
    check_warehouse(postgres_url, data, killer.report())


@pytest.mark.timeout(TEST_BUDGET + 120)
def test_append_to_lake_survives_kill_9(tmp_path: Path, data: Loadable, seed: int) -> None:
    lake = tmp_path / "lake"
    path = data.pipeline(tmp_path, {"lake": {"kind": "delta", "path": str(lake), "mode": "append"}})
    killer = Killer(path, lake / "orders", seed, tmp_path / "logs")
    kills = killer.run()
    assert kills == KILLS, killer.report()  # the data is sized so no run drains it first
    check_lake(lake, data, killer.report())  # append: a poll loaded twice shows as duplicates
