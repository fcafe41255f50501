"""Exactly once under ``kill -9``: ``dataplump extract --once`` killed at random moments, restarted.

The design's promise: each batch's records and its watermark are one Kafka
transaction, so after a SIGKILL at any moment a restart resumes after the last
committed batch and every source row lands exactly once across ``.active`` and
``.dlq`` (valid rows in one, invalid rows in the other), its alert counted once.

The kill moments come from a seeded random generator; the seed is printed (run with
``-s`` or see the failure output) and ``DATAPLUMP_KILL_SEED=<seed>`` replays a run.
Most kills wait for a few committed batches (watched on the watermark topic) and
then a random extra delay, so the process dies anywhere in a batch's life: reading,
checking, producing, committing; some kills land blind, in the first seconds.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dataplump.pipeline import topics
from dataplump.pipeline.state import ensure_state_topics
from tests.support.extraction import (
    Extraction,
    Kind,
    OrdersDb,
    is_valid,
    orders_table,
    write_pipeline,
)
from tests.support.topics import (
    StateWatcher,
    duplicates,
    ids,
    invalid_records_alerts,
    read_committed,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 20_000
BATCH = 500
KILLS = 5
BATCHES = -(-ROWS // BATCH)
TEST_BUDGET = 75.0
"""Seconds a test may take before it is failed as hung (each takes about 25-40 s)."""

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="pg", marks=[pytest.mark.postgres]),
]
_URL_FIXTURE = {"sqlite": "sqlite_url", "postgres": "postgres_url"}


@pytest.fixture(params=BACKENDS)
def orders_db(request: pytest.FixtureRequest) -> Iterator[OrdersDb]:
    """A fresh database with an empty ``orders`` table."""
    kind: Kind = request.param
    db = OrdersDb(kind, request.getfixturevalue(_URL_FIXTURE[kind]))
    db.create()
    yield db
    db.close()


@pytest.fixture
def seed() -> int:
    """The seed of this test's kill moments (printed; ``DATAPLUMP_KILL_SEED`` replays one)."""
    value = int(os.environ.get("DATAPLUMP_KILL_SEED") or random.randrange(2**32))
    print(f"kill seed: {value} (replay with DATAPLUMP_KILL_SEED={value})")
    return value


@dataclass
class Killer:
    """Runs ``dataplump extract --once`` and SIGKILLs it at seeded random moments."""

    config: Path
    watcher: StateWatcher
    seed: int
    logs: Path
    table: str = "orders"
    deadline: float = field(default_factory=lambda: time.monotonic() + TEST_BUDGET)
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def report(self) -> str:
        return f"seed {self.seed}; " + "; ".join(self.events)

    def start(self) -> Extraction:
        if time.monotonic() > self.deadline:
            raise AssertionError(f"over {TEST_BUDGET:.0f}s: {self.report()}")
        return Extraction(self.config, logs=self.logs, label=f"run{len(self.events)}")

    def kill_at_random(self, run: Extraction, *, max_commits: int | None = None) -> bool:
        """Kill ``run`` at a random moment; False if it ended by itself first (exit 0)."""
        self.watcher.poll()
        if self.rng.random() < 0.25:
            delay = self.rng.uniform(0.3, 3.0)
            moment = f"{delay:.2f}s after start"
            end = time.monotonic() + delay
            while run.running() and time.monotonic() < end:
                time.sleep(0.02)
        else:
            target = self.watcher.seen[self.table] + self.rng.randint(1, 6)
            if max_commits is not None and target > max_commits:
                return self._finish(run, "left to finish (near the end of the snapshot)")
            end = time.monotonic() + 30
            while run.running() and self.watcher.seen[self.table] < target:
                if time.monotonic() > end:
                    raise AssertionError(f"no progress in 30s: {self.report()}")
                self.watcher.poll(0.05)
            extra = self.rng.uniform(0.0, 0.2)
            moment = f"{extra * 1000:.0f}ms after commit #{target}"
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

    def _finish(self, run: Extraction, what: str) -> bool:
        result = run.wait(max(5.0, self.deadline - time.monotonic()))
        assert result.returncode == 0, f"{self.report()}\n{result.describe()}"
        self.events.append(f"run {what}: exit 0 after {result.seconds:.1f}s")
        return False

    def run_to_end(self) -> None:
        self._finish(self.start(), "final")


def check_exactly_once(bootstrap: str, pipeline: str, expected: range, report: str) -> None:
    """Every row of ``expected`` once across active + dlq, on the side its validity says."""
    active = read_committed(bootstrap, topics.active(pipeline, "orders"))
    dlq = read_committed(bootstrap, topics.dlq(pipeline, "orders"))
    in_active, in_dlq = ids(active), ids(dlq)
    both = in_active + in_dlq
    assert not duplicates(both), f"rows twice: {duplicates(both)} ({report})"
    valid = {i for i in expected if is_valid(i)}
    assert set(in_active) == valid, (
        f"active: missing {sorted(valid - set(in_active))[:10]},"
        f" unexpected {sorted(set(in_active) - valid)[:10]} ({report})"
    )
    invalid = set(expected) - valid
    assert set(in_dlq) == invalid, (
        f"dlq: missing {sorted(invalid - set(in_dlq))[:10]},"
        f" unexpected {sorted(set(in_dlq) - invalid)[:10]} ({report})"
    )
    # An alert belongs to its batch's transaction: counted exactly once too.
    alerts = invalid_records_alerts(bootstrap, pipeline)
    assert sum(a.count for a in alerts) == len(dlq), report


def setup(tmp_path: Path, bootstrap: str, db: OrdersDb, mode: str, seed: int) -> tuple[Killer, str]:
    name = f"kill{uuid.uuid4().hex[:8]}"
    config = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=name,
        url=db.url,
        bootstrap=bootstrap,
        tables={"orders": orders_table(db.kind, mode=mode, batch_size=BATCH)},
    )
    state_topic = topics.extract_state(name, "orders")
    ensure_state_topics(bootstrap, [state_topic])  # so the watcher can follow it from the start
    watcher = StateWatcher(bootstrap, state_topic)
    return Killer(config, watcher, seed, tmp_path / "logs"), name


def test_full_snapshot_survives_kill_9(
    tmp_path: Path, kafka_bootstrap: str, orders_db: OrdersDb, seed: int
) -> None:
    orders_db.insert(range(1, ROWS + 1))
    killer, name = setup(tmp_path, kafka_bootstrap, orders_db, "full", seed)
    try:
        kills = 0
        while kills < KILLS:
            run = killer.start()
            # Never kill after the snapshot's last batches: a completed snapshot followed
            # by another run is a new snapshot (every row again), by design.
            if not killer.kill_at_random(run, max_commits=BATCHES - 2):
                break
            kills += 1
            killer.watcher.poll(1.0)  # a snapshot completed just before the kill counts
            if killer.watcher.complete("orders"):
                killer.events.append("snapshot complete: no restart")
                break
        else:
            killer.run_to_end()
        print(killer.report())
        killer.watcher.poll(1.0)
        assert killer.watcher.complete("orders"), killer.report()
        check_exactly_once(kafka_bootstrap, name, range(1, ROWS + 1), killer.report())
    finally:
        killer.watcher.close()


def test_incremental_with_new_rows_survives_kill_9(
    tmp_path: Path, kafka_bootstrap: str, orders_db: OrdersDb, seed: int
) -> None:
    orders_db.insert(range(1, ROWS + 1))
    killer, name = setup(tmp_path, kafka_bootstrap, orders_db, "incremental", seed)
    next_id = ROWS + 1

    def add_rows(low: int, high: int) -> Callable[[], None]:
        def add() -> None:
            nonlocal next_id
            count = killer.rng.randint(low, high)
            orders_db.insert(range(next_id, next_id + count))
            next_id += count

        return add

    try:
        for _ in range(KILLS):
            run = killer.start()
            add_rows(50, 300)()  # while the extractor starts and reads
            killer.kill_at_random(run)
            add_rows(50, 300)()  # between runs
        killer.run_to_end()
        print(killer.report())
        check_exactly_once(kafka_bootstrap, name, range(1, next_id), killer.report())
        assert next_id > ROWS + 2 * KILLS * 50
    finally:
        killer.watcher.close()
