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

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from tests.support.killer import Killer, Pace
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


PACE = Pace(blind=0.25, blind_within=3.0, early=8, steps=6, extra=0.2, tick=0.05, patience=30)
"""A quarter of the kills blind, 0.3 to 3 s after the start (or at the eighth commit); the
others 1 to 6 committed batches on, then up to 200 ms more."""


@dataclass(frozen=True)
class Commits:
    """Progress as the batches ``dataplump extract`` committed (its state topic)."""

    watcher: StateWatcher
    table: str = "orders"

    def count(self) -> int:
        return self.watcher.seen[self.table]

    def wait(self, seconds: float) -> None:
        self.watcher.poll(seconds)

    def at(self, mark: int) -> str:
        return f"at commit #{mark}"

    def after(self, mark: int) -> str:
        return f"commit #{mark}"


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


def setup(
    tmp_path: Path, bootstrap: str, db: OrdersDb, mode: str, seed: int, framing: str = "row"
) -> tuple[Killer[Extraction], StateWatcher, str]:
    name = f"kill{uuid.uuid4().hex[:8]}"
    config = write_pipeline(
        tmp_path / "dataplump.yaml",
        name=name,
        url=db.url,
        bootstrap=bootstrap,
        tables={"orders": orders_table(db.kind, mode=mode, batch_size=BATCH)},
        framing=framing,
    )
    state_topic = topics.extract_state(name, "orders")
    ensure_state_topics(bootstrap, [state_topic])  # so the watcher can follow it from the start
    watcher = StateWatcher(bootstrap, state_topic)
    logs = tmp_path / "logs"
    killer = Killer(
        lambda label: Extraction(config, logs=logs, label=label),
        Commits(watcher),
        PACE,
        seed,
        TEST_BUDGET,
    )
    return killer, watcher, name


def test_full_snapshot_survives_kill_9(
    tmp_path: Path, kafka_bootstrap: str, orders_db: OrdersDb, seed: int
) -> None:
    orders_db.insert(range(1, ROWS + 1))
    killer, watcher, name = setup(tmp_path, kafka_bootstrap, orders_db, "full", seed)
    try:
        kills = 0
        while kills < KILLS:
            run = killer.start()
            # Never kill after the snapshot's last batches: a completed snapshot followed
            # by another run is a new snapshot (every row again), by design.
            if not killer.kill_at_random(run, last_step=BATCHES - 2):
                break
            kills += 1
            watcher.poll(1.0)  # a snapshot completed just before the kill counts
            if watcher.complete("orders"):
                killer.events.append("snapshot complete: no restart")
                break
        else:
            killer.final("extracted (run")
        print(killer.report())
        watcher.poll(1.0)
        assert watcher.complete("orders"), killer.report()
        check_exactly_once(kafka_bootstrap, name, range(1, ROWS + 1), killer.report())
    finally:
        watcher.close()


@pytest.mark.parametrize("framing", ["row", "arrow"])
def test_incremental_with_new_rows_survives_kill_9(
    tmp_path: Path, kafka_bootstrap: str, orders_db: OrdersDb, seed: int, framing: str
) -> None:
    """With the ``arrow`` framing a batch's valid rows are frames, committed with the
    batch's watermark like single rows (``ids`` reads the rows of a frame)."""
    orders_db.insert(range(1, ROWS + 1))
    killer, watcher, name = setup(
        tmp_path, kafka_bootstrap, orders_db, "incremental", seed, framing
    )
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
        killer.final("extracted (run")
        print(killer.report())
        check_exactly_once(kafka_bootstrap, name, range(1, next_id), killer.report())
        assert next_id > ROWS + 2 * KILLS * 50
    finally:
        watcher.close()
