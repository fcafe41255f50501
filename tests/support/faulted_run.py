"""``dataplump run`` (every stage at once) on a growing SQLite shop, for Kafka fault tests.

The source gets new orders all the time (:class:`Feeder`), so every stage has work in
hand when a test breaks Kafka under it. Which orders end where is known up front:
the contract rejects every 7th (dead-letter), the cast step fails every 11th that is
not rejected (failed store), the rest are loaded. :func:`faulted_run` runs the pipeline
around the test's fault until it is drained; :func:`check_exactly_once` then compares
the curated Delta table (read by polars, not by DataPlump) and ``dataplump status
--json`` with that, row for row.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from dataplump.pipeline import topics
from tests.support.cli import CliResult, Command, run_command

ORDERS_CONTRACT = """\
    contract:
      columns:
        id: {{type: int64, not_null: true}}
        amount: {{type: "decimal(10,2)", min: {min_amount}}}
        qty: {{type: string}}
transform:
  steps:
    orders:
      - cast: {{qty: int32}}
"""
"""The contract and transformation of the ``orders`` table (the end of a pipeline
template, to ``format`` with ``min_amount``): :func:`negative` amounts fail ``min: 0``,
:func:`bad_qty` the cast."""

PIPELINE = (
    """
pipeline: {{name: {name}}}
source: {{url: "sqlite:///{db}"}}
kafka:
  bootstrap_servers: "{bootstrap}"
  topic: {{replication_factor: {replicas}}}
  extra: {{session.timeout.ms: "6000"}}
extract: {{poll_interval: 1s}}
sinks:
  lake: {{kind: delta, path: lake}}
notify: {{grouping: {{group_wait: 0s}}}}
tables:
  orders:
    primary_key: id
    mode: incremental
    cursor: updated_at
    lag_seconds: 0
    batch_size: {batch}
"""
    + ORDERS_CONTRACT
)
"""A growing SQLite shop's pipeline: ``format`` with name, db, bootstrap, replicas, batch
and min_amount."""


def negative(i: int) -> bool:
    """Orders the contract rejects (dead-letter) while `min: 0` holds."""
    return i % 7 == 0


def bad_qty(i: int) -> bool:
    """Orders whose qty the cast step cannot read (failed store)."""
    return i % 11 == 0 and not negative(i)


def expected_loaded(rows: int) -> set[int]:
    """Ids of orders 1..rows that must be in the curated table."""
    return {i for i in range(1, rows + 1) if not negative(i) and not bad_qty(i)}


def order(i: int) -> tuple[int, str, str]:
    """Order ``i`` as (id, amount, qty): the amount negative where :func:`negative`, the
    qty unreadable every 11th order."""
    return i, f"-{i}.10" if negative(i) else f"{i}.10", "x" if i % 11 == 0 else str(i % 5)


@dataclass
class Shop:
    """One pipeline folder: the SQLite source, the pipeline file, the lake under it."""

    folder: Path
    bootstrap: str
    replicas: int = 1
    batch: int = 200
    name: str = field(default_factory=lambda: f"fault{uuid.uuid4().hex[:8]}")
    rows: int = 0
    """Orders in the source so far (ids 1..rows)."""

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db = self.folder / "shop.db"
        with sqlite3.connect(self.db) as conn:
            conn.execute(
                "CREATE TABLE orders (id INTEGER PRIMARY KEY, amount NUMERIC(10,2), qty TEXT,"
                " updated_at INTEGER NOT NULL)"
            )
        self.config = self.folder / "dataplump.yaml"
        self.config.write_text(
            PIPELINE.format(
                name=self.name,
                db=self.db,
                bootstrap=self.bootstrap,
                replicas=self.replicas,
                batch=self.batch,
                min_amount=0,
            )
        )
        self.logs = self.folder / "logs"
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        """Insert the next ``count`` orders (one transaction)."""
        with self._lock:
            first, last = self.rows + 1, self.rows + count
            with sqlite3.connect(self.db, timeout=30) as conn:
                conn.executemany(
                    "INSERT INTO orders VALUES (?, ?, ?, ?)",
                    [(*order(i), i) for i in range(first, last + 1)],
                )
            self.rows = last

    def lake_ids(self) -> list[int]:
        """Ids in the curated table, read by polars (not by DataPlump's reader)."""
        table = self.folder / "lake" / "orders"
        if not (table / "_delta_log").exists():
            return []
        return pl.read_delta(str(table), columns=["id"])["id"].to_list()

    def run(self, label: str = "run") -> Command:
        """``dataplump run`` (every stage, until stopped) as its own process."""
        args = ("run", "-c", str(self.config), "--metrics-port", "0")
        return Command(*args, logs=self.logs, cwd=self.folder, label=label)

    def status(self) -> dict[str, Any]:
        """``dataplump status --json``: the ledger of every run."""
        done = run_command(
            "status", "-c", str(self.config), "--json", logs=self.logs, cwd=self.folder, timeout=120
        )
        assert done.stdout.strip(), done.describe()
        data: dict[str, Any] = json.loads(done.stdout)
        return data


class Feeder:
    """Adds ``chunk`` orders to the shop every ``every`` seconds in a thread, until stopped."""

    def __init__(self, shop: Shop, *, chunk: int, every: float) -> None:
        self.shop, self.chunk, self.every = shop, chunk, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._feed, name="feeder", daemon=True)
        self.error: BaseException | None = None

    def _feed(self) -> None:
        try:
            while not self._stop.wait(self.every):
                self.shop.add(self.chunk)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def __enter__(self) -> Feeder:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise AssertionError(f"the feeder failed: {self.error!r}") from self.error


def wait_for(
    check: Callable[[], bool], what: str, timeout: float, run: Command, shop: Shop | None = None
) -> float:
    """Wait until ``check()``; return the seconds it took. Fails if ``run`` ends first;
    with ``shop``, a failure also says what the stages' consumer groups hold."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        if not run.running():
            raise AssertionError(f"run ended while waiting for {what}:\n{run.output}")
        time.sleep(0.5)
    groups = describe_groups(shop) if shop is not None else ""
    raise AssertionError(f"no {what} after {timeout:.0f}s:\n{run.output}\n{groups}")


def describe_groups(shop: Shop) -> str:
    """The transform and load groups: state, members and their partitions (a hang's clue)."""
    admin = AdminClient({"bootstrap.servers": shop.bootstrap})
    names = [topics.transform_group(shop.name), topics.load_group(shop.name)]
    lines = []
    for name, future in admin.describe_consumer_groups(names, request_timeout=10).items():
        try:
            group = future.result()
        except KafkaException as exc:
            lines.append(f"group {name}: {exc}")
            continue
        members = [
            f"{m.client_id}: "
            + ", ".join(f"{tp.topic}[{tp.partition}]" for tp in m.assignment.topic_partitions)
            for m in group.members
        ]
        lines.append(f"group {name}: {group.state} {members}")
    return "\n".join(lines)


def drained(shop: Shop) -> Callable[[], bool]:
    """True once the lake holds (at least) every order that must be loaded."""
    want = len(expected_loaded(shop.rows))
    return lambda: len(shop.lake_ids()) >= want


@dataclass
class Faulted:
    """A :func:`faulted_run` under way: its ``run`` and the timed events it noted."""

    shop: Shop
    run: Command
    started: float = field(default_factory=time.monotonic)
    events: list[str] = field(default_factory=list)
    output: str = ""
    """What ``run`` had said when the pipeline was found drained (before it was stopped)."""
    stopped: CliResult | None = None
    """How ``run`` ended once stopped."""

    def note(self, what: str) -> None:
        """Note ``what`` at the seconds since the run started."""
        self.events.append(f"{time.monotonic() - self.started:5.1f}s {what}")

    @property
    def result(self) -> CliResult:
        """How ``run`` ended once stopped."""
        assert self.stopped is not None, "the run was not stopped"
        return self.stopped

    def report(self) -> str:
        """The events noted, then how ``run`` ended."""
        return "; ".join(self.events) + f"\n{self.result.describe()}"


@contextmanager
def faulted_run(shop: Shop) -> Iterator[Faulted]:
    """``dataplump run`` of ``shop``, broken by the test inside the ``with``.

    The block is entered once the first rows are loaded; after it, the run must drain the
    source (every order that must be loaded is in the lake, nothing is in flight), and
    is stopped with Ctrl-C (killed if anything fails). Check ``result`` and the lake then.
    """
    faulted = Faulted(shop, shop.run())
    run = faulted.run
    try:
        wait_for(lambda: len(shop.lake_ids()) > 0, "the first loaded rows", 120, run, shop)
        faulted.note(f"first rows loaded ({len(shop.lake_ids())})")
        yield faulted
        faulted.note(f"source stopped growing at {shop.rows} rows")
        took = wait_for(drained(shop), f"all {shop.rows} rows' loads", 120, run, shop)
        faulted.note(f"lake complete {took:.1f}s later")
        wait_for(
            lambda: shop.status()["tables"]["orders"]["in_flight_total"] == 0,
            "an empty pipeline (nothing in flight)",
            60,
            run,
        )
        faulted.output = run.output
        faulted.stopped = run.stop(timeout=90)
    finally:
        if run.running():
            run.kill_tree()


def check_exactly_once(shop: Shop, report: str) -> dict[str, Any]:
    """Every source order exactly once: in the lake, or dead-lettered, or failed; ledger gap 0.

    Returns ``status --json``'s figures of the orders table (for the test to print).
    """
    rows = shop.rows
    ids = shop.lake_ids()
    doubled = sorted({i for i in ids if ids.count(i) > 1}) if len(ids) != len(set(ids)) else []
    assert not doubled, f"orders twice in the lake: {doubled[:20]} ({report})"
    want = expected_loaded(rows)
    missing, extra = sorted(want - set(ids)), sorted(set(ids) - want)
    assert (missing[:20], extra[:20]) == ([], []), f"lake: missing, extra ({report})"
    status = shop.status()
    orders = status["tables"]["orders"]
    dead = sum(1 for i in range(1, rows + 1) if negative(i))
    failed = sum(1 for i in range(1, rows + 1) if bad_qty(i))
    got = {k: orders[k] for k in ("read", "in_dlq", "in_failed", "loaded", "gap")}
    got["in_flight"] = orders["in_flight_total"]
    assert got == {
        "read": rows,
        "in_dlq": dead,
        "in_failed": failed,
        "loaded": len(want),
        "gap": 0,
        "in_flight": 0,
    }, f"ledger of `dataplump status --json`: {orders} ({report})"
    assert status["ok"] is True, (status, report)
    return got
