"""Exactly once under ``kill -9`` of ``dataplump run``: the whole process tree, or one stage.

The design's promise: every stage commits its progress with its output (extract: rows and
watermark in one Kafka transaction; transform: consume and produce in one transaction;
load: offsets inside the sink's commit), so after ``kill -9`` of any stage at any moment —
or of the supervisor and every stage at once — a restart ends with exactly the source rows
in the curated table. These tests run real ``dataplump run`` processes on a SQLite source
that keeps growing while they run (so a run never drains before the kills are made),
with the curated table in Delta ``append`` mode (a batch loaded twice shows as duplicates):

- the whole tree (supervisor, every stage, the resource tracker) gets SIGKILL at seeded
  random moments, several times, then ``run --once`` must end with every source row
  exactly once across the curated table and ``_dlq`` (checked by primary key), and a
  ledger with no gap and nothing in flight; once with one JSON record per row, once
  with frames on both hops (``kafka.topic.framing: arrow``);
- single stage processes of one running ``run`` get SIGKILL: the supervisor restarts
  each, and the counts end exact the same way.

The kill moments come from a seeded random generator; the seed is printed and
``DATAPLUMP_KILL_SEED=<seed>`` replays a run; ``DATAPLUMP_KILL_POINTS`` sets how many
kills (default 4). Most kills wait until the curated table got 1-4 more commits and then
a random extra delay; some land blind, during start-up or the first commits (never later
than the second commit after the start).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from dataplump.config import load_config
from dataplump.pipeline import topics
from tests.support.extraction import OrdersDb
from tests.support.killer import DeltaCommits, Killer, Pace
from tests.support.loading import delta_commits
from tests.support.running import Run, check_exact, wait_until, write_run_pipeline
from tests.support.topics import headers_of, read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

KILLS = int(os.environ.get("DATAPLUMP_KILL_POINTS") or 4)
INITIAL = 3_000
"""Rows in the source before the first run."""
FEED = 150
"""Rows added to the source every :data:`FEED_EVERY` seconds while the kills go on."""
FEED_EVERY = 0.5
TEST_BUDGET = 60.0 + 25.0 * KILLS
"""Seconds the kills may take before the test is failed as hung."""
PACE = Pace(
    blind=0.25,
    blind_within=6.0,
    early=2,
    steps=4,
    extra=0.6,
    tick=0.01,
    patience=60,
    show_output=3000,
)
"""Most kills 1-4 curated commits and up to 600 ms after the last; a quarter blind."""


class Feeder(threading.Thread):
    """Adds :data:`FEED` rows to the source every :data:`FEED_EVERY` seconds until stopped."""

    def __init__(self, db: OrdersDb, first: int) -> None:
        super().__init__(daemon=True)
        self.db, self.next = db, first
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.wait(FEED_EVERY):
                self.db.insert(range(self.next, self.next + FEED))
                self.next += FEED
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> set[int]:
        """Stop feeding; the ids in the source."""
        self.halt.set()
        self.join(30)
        assert self.error is None, f"feeding the source failed: {self.error!r}"
        return set(range(1, self.next))


@pytest.fixture
def source(sqlite_url: str) -> Iterator[tuple[OrdersDb, Feeder]]:
    db = OrdersDb("sqlite", sqlite_url)
    db.create()
    db.insert(range(1, INITIAL + 1))
    feeder = Feeder(db, INITIAL + 1)
    yield db, feeder
    feeder.halt.set()
    db.close()


def run_killer(config: Path, table: Path, seed: int, logs: Path) -> Killer[Run]:
    """Starts ``dataplump run`` and waits for seeded moments to SIGKILL it (or one of its
    stages), watching the commits of the curated Delta table ``table``."""
    return Killer(
        lambda label: Run(config, logs=logs, label=label),
        DeltaCommits(table),
        PACE,
        seed,
        TEST_BUDGET,
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize("framing", ["row", "arrow"])
def test_run_survives_kill_9_of_the_whole_tree(
    tmp_path: Path,
    kafka_bootstrap: str,
    source: tuple[OrdersDb, Feeder],
    seed: int,
    framing: str,
) -> None:
    db, feeder = source
    config = write_run_pipeline(tmp_path, url=db.url, bootstrap=kafka_bootstrap, framing=framing)
    logs = tmp_path / "logs"
    killer = run_killer(config, tmp_path / "lake" / "orders", seed, logs)
    feeder.start()
    for n in range(KILLS):
        run = killer.start(f"run{n}")
        try:
            moment = killer.moment(run, blind_ok=n > 0)  # the first run makes the tables
            assert run.running(), f"{killer.report()}\n{run.result().describe()}"
            victims = run.kill_everything()
        finally:
            if run.running():
                run.kill_everything()
        killer.events.append(f"SIGKILL to {victims} processes {moment}")
    ids = feeder.stop()
    final = Run(config, "--once", logs=logs, label="final").wait(180)
    assert final.returncode == 0, f"{killer.report()}\n{final.describe()}"
    killer.events.append(f"final run --once: exit 0 after {final.seconds:.1f}s")
    ledger = check_exact(config, kafka_bootstrap, ids, killer.report())
    print(f"{killer.report()}; {len(ids)} source rows: {ledger.loaded} loaded, {ledger.in_dlq} dlq")
    name = load_config(config).name
    for topic in (topics.active(name, "orders"), topics.processed(name, "orders")):
        framed = [headers_of(m).get("dp.framing") for m in read_committed(kafka_bootstrap, topic)]
        assert set(framed) == {b"arrow" if framing == "arrow" else None}, topic


def reported(run: Run, line: str, before: int) -> bool:
    return run.output.count(line) > before


def replaced(run: Run, stage: str, pid: int) -> bool:
    process = run.stages().get(stage)
    return process is not None and process.pid != pid


@pytest.mark.timeout(300)
def test_run_restarts_stages_killed_one_by_one(
    tmp_path: Path, kafka_bootstrap: str, source: tuple[OrdersDb, Feeder], seed: int
) -> None:
    db, feeder = source
    config = write_run_pipeline(tmp_path, url=db.url, bootstrap=kafka_bootstrap)
    logs = tmp_path / "logs"
    killer = run_killer(config, tmp_path / "lake" / "orders", seed, logs)
    feeder.start()
    run = killer.start("run")
    try:
        stages = ("extract", "transform", "load", "notify")
        for n in range(KILLS):
            moment = killer.moment(run, blind_ok=False)
            live = run.stages()
            assert set(live) == set(stages), f"stages {live}; {killer.report()}\n{run.output}"
            stage = stages[n] if n < len(stages) else killer.rng.choice(stages)
            victim = live[stage]
            died = f"{stage}: the process died (exit code -9)"
            before = run.output.count(died)
            victim.kill()
            victim.wait(10)
            killer.events.append(f"SIGKILL to {stage} {moment}")
            wait_until(partial(reported, run, died, before), died, 30, run)
            wait_until(partial(replaced, run, stage, victim.pid), f"a new {stage}", 90, run)
        ids = feeder.stop()
        killer.events.append(f"{len(ids)} source rows")
        stopped = run.stop(timeout=90)
        assert stopped.returncode == 130, f"{killer.report()}\n{stopped.describe()}"
    finally:
        if run.running():
            run.kill_everything()
    final = Run(config, "--once", logs=logs, label="final").wait(180)
    assert final.returncode == 0, f"{killer.report()}\n{final.describe()}"
    killer.events.append(f"final run --once: exit 0 after {final.seconds:.1f}s")
    ledger = check_exact(config, kafka_bootstrap, ids, killer.report())
    print(f"{killer.report()}; {len(ids)} source rows: {ledger.loaded} loaded, {ledger.in_dlq} dlq")


@pytest.mark.timeout(300)
def test_two_runs_of_one_pipeline_started_at_once_one_refuses(
    tmp_path: Path, kafka_bootstrap: str, source: tuple[OrdersDb, Feeder]
) -> None:
    """Two ``run`` of one pipeline would fence each other's stages and move nothing: the
    second one stops at once with one line naming the first, which goes on alone. Killing
    that one's supervisor alone (``kill -9``) ends its orphaned stages too, so the next
    ``run`` is not refused and ends with every row exactly once."""
    db, feeder = source
    config = write_run_pipeline(tmp_path, url=db.url, bootstrap=kafka_bootstrap)
    logs = tmp_path / "logs"
    feeder.start()
    runs = [Run(config, logs=logs, label="first"), Run(config, logs=logs, label="second")]
    try:
        deadline = time.monotonic() + 60
        while all(run.running() for run in runs):
            assert time.monotonic() < deadline, "neither run refused: " + runs[1].output
            time.sleep(0.1)
        refused = next(run for run in runs if not run.running()).wait(10)
        survivor = next(run for run in runs if run.running())
        assert refused.returncode == 1, refused.describe()
        assert len(refused.stderr_lines) == 1, refused.describe()
        line = refused.stderr_lines[0]
        assert line.startswith("error: another `dataplump run` of pipeline `"), line
        assert f"pid {survivor.process.pid} on " in line, line
        assert str(config) in line, line
        assert refused.seconds < 30, refused.describe()
        # the other one moves the data alone, at full speed
        lake = tmp_path / "lake" / "orders"
        wait_until(lambda: delta_commits(lake) >= 3, "3 commits", 90, survivor)
        stages = list(survivor.stages().values())
        assert len(stages) == 4, survivor.output
        # kill -9 of its supervisor alone: the orphaned stages stop by themselves
        survivor.kill()
        gone = time.monotonic()
        for stage in stages:
            stage.wait(90)
        orphaned_for = time.monotonic() - gone
        ids = feeder.stop()
    finally:
        for run in runs:
            if run.running():
                run.kill_everything()
    final = Run(config, "--once", logs=logs, label="final").wait(180)
    assert final.returncode == 0, final.describe()
    ledger = check_exact(config, kafka_bootstrap, ids)
    print(
        f"refused after {refused.seconds:.1f}s: {line}; orphaned stages ended within"
        f" {orphaned_for:.1f}s; {len(ids)} source rows: {ledger.loaded} loaded,"
        f" {ledger.in_dlq} dlq"
    )
