"""Two extractors at once: the transactional id fences one, and no row is doubled.

Each table's producer has the ``transactional.id`` ``dataplump.<pipeline>.extract.<table>``,
so a second extractor of a table fences the first; the survivor must then go on from
the last batch the fenced one committed. These tests run real ``dataplump extract``
processes against one SQLite file and the session's broker.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplump.bus.kafka import Producer
from dataplump.pipeline import topics
from dataplump.pipeline.state import ensure_state_topics, write_state
from tests.support.cli import CliResult
from tests.support.extraction import (
    Extraction,
    OrdersDb,
    is_valid,
    orders_table,
    run_extract,
    write_pipeline,
)
from tests.support.topics import StateWatcher, duplicates, ids, read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 20_000
BATCH = 500
PAIRS = 2
RERUN_WITHIN = 30.0
"""Seconds a rerun with nothing left to extract may take; well under the 60 s after which
the broker aborts a transaction left open, so a rerun that waited for one fails."""


@pytest.fixture
def orders_db(sqlite_url: str) -> Iterator[OrdersDb]:
    db = OrdersDb("sqlite", sqlite_url)
    db.create()
    db.insert(range(1, ROWS + 1))
    yield db
    db.close()


def pipeline(folder: Path, bootstrap: str, db: OrdersDb, tables: list[str]) -> tuple[Path, str]:
    name = f"two{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    config = write_pipeline(
        folder / "dataplump.yaml",
        name=name,
        url=db.url,
        bootstrap=bootstrap,
        tables={t: orders_table("sqlite", mode="incremental", batch_size=BATCH) for t in tables},
    )
    return config, name


def assert_each_row_once(bootstrap: str, pipeline: str, table: str, rows: int) -> None:
    active = ids(read_committed(bootstrap, topics.active(pipeline, table)))
    dlq = ids(read_committed(bootstrap, topics.dlq(pipeline, table)))
    both = active + dlq
    assert not duplicates(both), (
        f"{table}: {sum(n - 1 for n in both.values())} rows doubled, e.g. {duplicates(both)}"
    )
    assert set(active) == {i for i in range(1, rows + 1) if is_valid(i)}
    assert set(dlq) == {i for i in range(1, rows + 1) if not is_valid(i)}


def assert_fenced_cleanly(result: CliResult) -> None:
    """A fenced extractor stops with one ``error:`` line that says so; no traceback."""
    assert result.returncode == 1, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.stderr_lines) == 1, result.describe()
    assert result.stderr_lines[0].startswith("error: "), result.describe()
    assert "fenced" in result.stderr_lines[0], result.describe()


def test_two_extractors_started_together_write_each_row_once(
    tmp_path: Path, kafka_bootstrap: str, orders_db: OrdersDb
) -> None:
    """Pairs of extractors, each pair started at the same instant on a fresh pipeline:
    whatever the interleaving, one may be fenced (one clear line), no row may land twice."""
    for pair in range(PAIRS):
        config, name = pipeline(tmp_path / f"pair{pair}", kafka_bootstrap, orders_db, ["orders"])
        logs = tmp_path / f"pair{pair}" / "logs"
        first, second = Extraction(config, logs=logs), Extraction(config, logs=logs)
        results = [first.wait(120), second.wait(120)]

        codes = sorted(r.returncode for r in results)
        assert codes in ([0, 0], [0, 1]), [r.describe() for r in results]
        assert_each_row_once(kafka_bootstrap, name, "orders", ROWS)
        for result in results:
            if result.returncode:
                assert_fenced_cleanly(result)


def run_while_paused(
    config: Path, bootstrap: str, name: str, logs: Path, *second_args: str
) -> CliResult:
    """Start an extractor of every table, pause it (SIGSTOP, as a long GC or VM pause
    would) after three committed `orders` batches, run a second one (``second_args``) to
    its end meanwhile, resume the first; return how the first one ended."""
    state_topic = topics.extract_state(name, "orders")
    ensure_state_topics(bootstrap, [state_topic])
    watcher = StateWatcher(bootstrap, state_topic)
    old = Extraction(config, logs=logs, label="old")
    try:
        deadline = time.monotonic() + 60
        while watcher.seen["orders"] < 3:
            assert old.running(), old.wait().describe()
            assert time.monotonic() < deadline, "the first extractor committed nothing in 60s"
            watcher.poll(0.05)
        os.kill(old.process.pid, signal.SIGSTOP)
        try:
            new = run_extract(config, *second_args, logs=logs)
            assert new.returncode == 0, new.describe()
        finally:
            os.kill(old.process.pid, signal.SIGCONT)
        return old.wait(60)
    finally:
        watcher.close()
        if old.running():
            old.kill()


def test_a_fenced_extractor_stops_and_the_other_finishes(
    tmp_path: Path, kafka_bootstrap: str, orders_db: OrdersDb
) -> None:
    config, name = pipeline(tmp_path, kafka_bootstrap, orders_db, ["orders"])
    stale = run_while_paused(config, kafka_bootstrap, name, tmp_path / "logs")
    assert_each_row_once(kafka_bootstrap, name, "orders", ROWS)
    assert_fenced_cleanly(stale)


def test_a_table_extracted_meanwhile_by_another_process_is_not_extracted_again(
    tmp_path: Path, kafka_bootstrap: str, orders_db: OrdersDb
) -> None:
    """One extractor runs both tables; while it is still on `orders` (held there with
    SIGSTOP, so the interleaving is certain), a second one extracts `refunds` to the end."""
    orders_db.create("refunds")
    orders_db.insert(range(1, ROWS + 1), table="refunds")
    config, name = pipeline(tmp_path, kafka_bootstrap, orders_db, ["orders", "refunds"])
    logs = tmp_path / "logs"
    every = run_while_paused(config, kafka_bootstrap, name, logs, "-t", "refunds")
    assert every.returncode == 0, every.describe()
    assert_each_row_once(kafka_bootstrap, name, "orders", ROWS)
    assert_each_row_once(kafka_bootstrap, name, "refunds", ROWS)


def test_another_tables_open_transaction_does_not_hide_the_watermark(
    tmp_path: Path, kafka_bootstrap: str, orders_db: OrdersDb
) -> None:
    """While `orders` is extracted, the `refunds` extractor (another process) is left with
    an open transaction holding its watermark, as a kill -9 between producing the watermark
    and committing leaves it. The `orders` batches committed after that point must still
    count when `orders` is extracted again."""
    config, name = pipeline(tmp_path, kafka_bootstrap, orders_db, ["orders", "refunds"])
    logs = tmp_path / "logs"
    state_topic = topics.extract_state(name, "orders")
    refunds_state = topics.extract_state(name, "refunds")
    ensure_state_topics(kafka_bootstrap, [state_topic, refunds_state])
    watcher = StateWatcher(kafka_bootstrap, state_topic)
    refunds = Producer(kafka_bootstrap, transactional_id=f"dataplump.{name}.extract.refunds")
    first = Extraction(config, "-t", "orders", logs=logs, label="first")
    try:
        deadline = time.monotonic() + 60
        while watcher.seen["orders"] < 2:
            assert first.running(), first.wait().describe()
            assert time.monotonic() < deadline, "the extractor committed nothing in 60s"
            watcher.poll(0.05)
        os.kill(first.process.pid, signal.SIGSTOP)  # so the transaction opens mid-table
        try:
            refunds.begin()
            write_state(refunds, refunds_state, "refunds", {"mode": "incremental"})
            refunds.flush()
        finally:
            os.kill(first.process.pid, signal.SIGCONT)
        done = first.wait(120)
        assert done.returncode == 0, done.describe()
        # The refunds transaction stays open throughout the rerun: it must not wait for it.
        again = run_extract(config, "-t", "orders", logs=logs, timeout=RERUN_WITHIN)
        assert again.returncode == 0, again.describe()
    finally:
        watcher.close()
        refunds.abort()
        if first.running():
            first.kill()
    assert_each_row_once(kafka_bootstrap, name, "orders", ROWS)
