"""`dataplump run`, `status`, `trace` and `replay` as a user runs them, on real SQLite,
Kafka and Delta: every row read is accounted for, a replay lands once, a stage killed
with SIGKILL (or the whole process tree) is restarted and loses nothing."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import psutil  # type: ignore[import-untyped]
import pytest

from dataplump.config import load_config
from dataplump.pipeline.ledger import read_ledger
from tests.support.cli import Command, run_command
from tests.support.faulted_run import PIPELINE, bad_qty, expected_loaded, negative, order

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


def add_orders(db: Path, first: int, last: int) -> None:
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [(*order(i), i) for i in range(first, last + 1)],
        )


def make(folder: Path, bootstrap: str, rows: int, min_amount: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "shop.db"
    if not db.exists():
        with sqlite3.connect(db) as conn:
            conn.execute(
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), qty TEXT,"
                " updated_at INTEGER NOT NULL)"
            )
        add_orders(db, 1, rows)
    name = f"run{uuid.uuid4().hex[:8]}"
    path = folder / "dataplump.yaml"
    if path.exists():
        name = load_config(path).name
    path.write_text(
        PIPELINE.format(
            name=name, db=db, bootstrap=bootstrap, replicas=1, batch=300, min_amount=min_amount
        )
    )
    return path


def lake_ids(folder: Path) -> list[int]:
    """Ids in the curated table, read by polars (not by DataPlump's reader)."""
    table = folder / "lake" / "orders"
    if not (table / "_delta_log").exists():
        return []
    return pl.read_delta(str(table), columns=["id"])["id"].to_list()


def wait_for(check: Callable[[], bool], what: str, timeout: float, command: Command) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if command.process.poll() is not None:
            raise AssertionError(f"run ended while waiting for {what}:\n{command.output}")
        time.sleep(1)
    raise AssertionError(f"no {what} after {timeout:.0f}s:\n{command.output}")


def test_run_once_then_status_trace_and_a_replay(tmp_path: Path, kafka_bootstrap: str) -> None:
    rows = 700
    config = make(tmp_path, kafka_bootstrap, rows)
    logs = tmp_path / "logs"
    done = run_command(
        "run", "-c", str(config), "--once", "--metrics-port", "0", logs=logs, cwd=tmp_path
    )
    assert done.returncode == 0, done.describe()
    assert "ledger (this run, the first: every run)" in done.stdout, done.describe()
    ids = lake_ids(tmp_path)
    assert sorted(ids) == sorted(expected_loaded(rows))

    status = run_command("status", "-c", str(config), "--json", logs=logs, cwd=tmp_path)
    assert status.returncode == 0, status.describe()
    data = json.loads(status.stdout)
    orders = data["tables"]["orders"]
    dead = sum(1 for i in range(1, rows + 1) if negative(i))
    failed = sum(1 for i in range(1, rows + 1) if bad_qty(i))
    assert data["ok"] is True
    assert (orders["read"], orders["in_dlq"], orders["in_failed"]) == (rows, dead, failed)
    assert (orders["loaded"], orders["gap"], orders["in_flight_total"]) == (len(ids), 0, 0)
    assert set(data["last_runs"]) >= {"extract", "transform"}
    assert data["last_alert"] is not None

    trace = run_command(
        "trace", "-c", str(config), "-t", "orders", "-k", "7", "--json", logs=logs, cwd=tmp_path
    )
    assert trace.returncode == 0, trace.describe()
    steps = [s["stage"] for s in json.loads(trace.stdout)["steps"]]
    assert steps == ["extract", "dead-letter"], trace.stdout
    loaded = run_command(
        "trace", "-c", str(config), "-t", "orders", "-k", "1", logs=logs, cwd=tmp_path
    )
    assert "curated row in sink `lake` (delta) table `orders`, version" in loaded.stdout, (
        loaded.describe()
    )

    # The contract was wrong: negative amounts are refunds. Fix it and replay.
    make(tmp_path, kafka_bootstrap, rows, min_amount=-100000)
    dry = run_command("replay", "dlq", "-c", str(config), "--dry-run", logs=logs, cwd=tmp_path)
    assert dry.returncode == 0, dry.describe()
    assert f"orders: {dead} of {dead} would now pass" in dry.stdout, dry.describe()
    replay = run_command("replay", "dlq", "-c", str(config), logs=logs, cwd=tmp_path)
    assert f"sent {dead} record(s) back" in replay.stdout, replay.describe()
    again = run_command("replay", "dlq", "-c", str(config), "--dry-run", logs=logs, cwd=tmp_path)
    assert f"({dead} replayed before, skipped)" in again.stdout, again.describe()

    second = run_command(
        "run", "-c", str(config), "--once", "--metrics-port", "0", logs=logs, cwd=tmp_path
    )
    assert second.returncode == 0, second.describe()
    assert "RESOLVED" in second.stderr, second.describe()  # the replay cleared the incident
    # this run read nothing new: it took the replayed records (in flight since the replay)
    # to the curated table, or to the failed store
    this_run = second.stdout.split("ledger (this run)")[1].split("ledger (every run)")[0]
    assert re.search(rf"^\s*orders\s+0\s+0\s+\d+\s+0\s+\d+\s+-{dead}\s+0\s*$", this_run, re.M)
    ids = lake_ids(tmp_path)
    replayed = {i for i in range(1, rows + 1) if negative(i) and i % 11 != 0}
    assert sorted(ids) == sorted(expected_loaded(rows) | replayed)
    ledger = read_ledger(load_config(config), kafka_bootstrap)["orders"]
    assert (ledger.gap, ledger.replayed, ledger.in_flight_total) == (0, {"dlq": dead}, 0)
    trace = run_command(
        "trace", "-c", str(config), "-t", "orders", "-k", "7", "--json", logs=logs, cwd=tmp_path
    )
    steps = [s["stage"] for s in json.loads(trace.stdout)["steps"]]
    assert steps[:2] == ["extract", "dead-letter"], trace.stdout
    assert "replayed" in steps, trace.stdout
    assert steps[-1] == "loaded", trace.stdout


def test_run_restarts_a_killed_stage_and_survives_a_killed_tree(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config = make(tmp_path, kafka_bootstrap, 400)
    logs = tmp_path / "logs"
    db = tmp_path / "shop.db"
    args = ("run", "-c", str(config), "--metrics-port", "0")
    first = Command(*args, logs=logs, cwd=tmp_path, label="run1")
    try:
        wait_for(
            lambda: len(lake_ids(tmp_path)) == len(expected_loaded(400)), "400 rows", 180, first
        )
        stages = [p for p in first.children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(stages) == 4, [p.cmdline() for p in first.children()]
        stages[1].kill()  # started second: the transformation
        add_orders(db, 401, 800)
        wait_for(lambda: "transform restarts in" in first.output, "a restart", 60, first)
        wait_for(
            lambda: len(lake_ids(tmp_path)) == len(expected_loaded(800)), "800 rows", 180, first
        )
        add_orders(db, 801, 1200)
        time.sleep(3)  # somewhere in the middle of it
    finally:
        first.kill_tree()
    second = Command(*args, logs=logs, cwd=tmp_path, label="run2")
    try:
        add_orders(db, 1201, 1500)
        wait_for(
            lambda: len(lake_ids(tmp_path)) >= len(expected_loaded(1500)), "1500 rows", 240, second
        )
        second.interrupt()
        result = second.wait(120)
    finally:
        if second.process.poll() is None:
            second.kill_tree()
    assert result.returncode == 130, result.describe()
    ids = lake_ids(tmp_path)
    assert len(ids) == len(set(ids)), "a row twice in the lake"
    assert set(ids) == expected_loaded(1500)
    ledger = read_ledger(load_config(config), kafka_bootstrap)["orders"]
    assert ledger.read == 1500
    assert ledger.gap == 0, ledger


def test_a_second_ctrl_c_stops_at_once_and_the_next_run_resumes(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    config = make(tmp_path, kafka_bootstrap, 300)
    logs = tmp_path / "logs"
    run = Command("run", "-c", str(config), "--metrics-port", "0", logs=logs, cwd=tmp_path)
    try:
        wait_for(lambda: len(lake_ids(tmp_path)) > 0, "the first rows", 180, run)
        stages = [p for p in run.children() if "spawn_main" in " ".join(p.cmdline())]
        add_orders(tmp_path / "shop.db", 301, 5000)  # batches in every stage now
        time.sleep(2)
        run.interrupt()
        deadline = time.monotonic() + 10
        while "Ctrl-C again to stop at once" not in run.output:  # the first one is heard
            assert time.monotonic() < deadline, run.output
            time.sleep(0.02)
        run.interrupt()
        result = run.wait(30)
    finally:
        if run.process.poll() is None:
            run.kill_tree()
    assert result.returncode == 130, result.describe()
    assert "stopped at once; the next run resumes from the last commits" in result.stdout
    assert not [p for p in stages if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    again = run_command(
        "run", "-c", str(config), "--once", "--metrics-port", "0", logs=logs, cwd=tmp_path
    )
    assert again.returncode == 0, again.describe()
    ids = lake_ids(tmp_path)
    assert len(ids) == len(set(ids)), "a row twice in the lake"
    assert set(ids) == expected_loaded(5000)
