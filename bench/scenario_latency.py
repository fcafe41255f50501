"""Scenario 5 of issue 9: latency from a source insert to the row in the curated table.

A sample shop (``dataplump sample create``, no faults) in its own database on the
same PostgreSQL server; ``dataplump run`` (continuous, every stage in its own
process) on a pipeline over its ``orders`` table, incremental by ``updated_at``, the
shop's own input contract, a Delta sink in append mode; ``dataplump sample grow`` at
a fixed rate of new orders (``--update-share 0``: every change is a new row, with
``created_at = updated_at`` = the time the grower stamped it, just before its
transaction). The harness polls the curated Delta table: each poll loads the table's
newest version and reads ``id, updated_at`` from the files it has not seen, so a row's
latency is the poll's start minus its ``updated_at``. It became queryable after the
previous poll started, so the figure is an upper bound by at most one poll interval:
the largest gap between two polls is reported as the resolution.

The window: from ``warmup`` seconds after the first row is seen in the curated table
(the stages are up and caught up), for ``seconds`` seconds of inserts. Every order
inserted in the window (read back from the source) counts; one never seen within
``tail`` seconds after the window counts as infinitely late, so the p99 shows it.
"""

from __future__ import annotations

import itertools
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.report import Result

if TYPE_CHECKING:  # bench.scenarios imports this module to register it
    from deltalake import DeltaTable

    from bench.scenarios import Context

CONTRACT = Path(__file__).resolve().parents[1] / "examples" / "shop" / "contracts" / "orders.yaml"
POLL_INTERVAL = 0.25
"""Seconds the harness sleeps between two reads of the curated table."""
EXTRACT_POLL = 0.5
"""``extract.poll_interval`` of the pipeline: how often it reads the source (default 10)."""


@dataclass(frozen=True)
class Settings:
    """The knobs of scenario 5 (``python -m bench --latency-rate/--latency-seconds``)."""

    rate: float = 1000.0
    """New orders per second ``sample grow`` inserts (one curated row each)."""
    seconds: float = 60.0
    """Length of the measured window, in seconds of inserts."""
    warmup: float = 10.0
    """Seconds after the first row is seen before the window starts."""
    tail: float = 30.0
    """Seconds after the window to wait for its last rows."""
    start_timeout: float = 180.0
    """Seconds to wait for the first row in the curated table."""
    shop_rows: int = 1000
    """Orders ``sample create`` starts the shop with."""


SETTINGS = Settings()
"""What scenario 5 runs with; ``python -m bench`` replaces it from its options."""


def configure(settings: Settings) -> None:
    global SETTINGS
    SETTINGS = settings


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; inf if any is inf."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def pipeline_for(ctx: Context, url: str, lake: Path) -> Path:
    name = f"lat{uuid.uuid4().hex[:6]}"
    file = ctx.work / f"{name}.yaml"
    file.write_text(
        f"pipeline: {{name: {name}}}\n"
        f"source: {{url: '{url}'}}\n"
        f"kafka: {{bootstrap_servers: '{ctx.bootstrap}', topic: {{partitions: 1}}}}\n"
        "tables:\n  orders:\n    primary_key: id\n    mode: incremental\n"
        # one writer (sample grow), whose transactions commit in stamp order: no lag needed
        "    cursor: updated_at\n    lag_seconds: 0\n    batch_size: 50000\n"
        f"    contract: '{CONTRACT}'\n"
        f"extract: {{poll_interval: {EXTRACT_POLL}}}\n"
        f"sinks:\n  lake: {{kind: delta, path: '{lake}', mode: append}}\n"
        "notify: {channels: [{kind: log}]}\n"
    )
    return file


class Watcher:
    """Reads the curated Delta table's new files; remembers when each id was first seen."""

    def __init__(self, table: Path) -> None:
        self.table = table
        self.files: set[str] = set()
        self.seen: dict[int, tuple[float, float]] = {}
        """id -> (seen at, updated_at), both in seconds since the epoch."""
        self.polls: list[float] = []
        self.delta: DeltaTable | None = None

    def poll(self) -> int:
        """One look at the table; return how many new rows it found."""
        import pyarrow as pa
        import pyarrow.parquet as pq
        from deltalake import DeltaTable

        started = time.time()
        self.polls.append(started)
        if self.delta is None:
            if not (self.table / "_delta_log").is_dir():
                return 0
            self.delta = DeltaTable(str(self.table))
        else:
            self.delta.update_incremental()
        new = [f for f in self.delta.file_uris() if f not in self.files]
        found = 0
        for uri in new:
            data = pq.read_table(uri.removeprefix("file://"), columns=["id", "updated_at"])
            stamps = data.column("updated_at").cast(pa.timestamp("us")).cast(pa.int64())
            for key, stamp in zip(data.column("id").to_pylist(), stamps.to_pylist(), strict=True):
                if key not in self.seen and stamp is not None:
                    self.seen[key] = (started, stamp / 1e6)
                    found += 1
            self.files.add(uri)
        return found

    def resolution(self, since: float) -> tuple[float, float]:
        """The median and largest gaps between two polls started after ``since``."""
        starts = [t for t in self.polls if t >= since]
        gaps = sorted(b - a for a, b in itertools.pairwise(starts)) or [0.0]
        return gaps[len(gaps) // 2], gaps[-1]


def source_window(url: str, start: float, end: float) -> dict[int, float]:
    """Orders whose ``created_at`` is in ``[start, end)``: id -> created_at (epoch s)."""
    import psycopg
    from sqlalchemy import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT id, extract(epoch FROM created_at)::float8 FROM orders"
            " WHERE created_at >= to_timestamp(%s) AT TIME ZONE 'UTC'"
            " AND created_at < to_timestamp(%s) AT TIME ZONE 'UTC'",
            (start, end),
        ).fetchall()
    return {int(key): float(at) for key, at in rows}


def alive(proc: subprocess.Popen[bytes]) -> bool:
    """Whether ``proc`` still runs, without reaping it (its rusage is read when stopped)."""
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGINT) -> float:
    """Stop ``proc`` (``sig``, then SIGKILL after 60 s); return its peak RSS in MB."""
    if alive(proc):
        proc.send_signal(sig)
    ends = time.monotonic() + 60
    while time.monotonic() < ends:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss / 1024
        time.sleep(0.2)
    proc.kill()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024


def scenario_5(ctx: Context) -> list[Result]:
    """p50 and p99 seconds from a source insert to the row in the curated table."""
    from dataplump.testing.databases import PostgresServer

    settings = SETTINGS
    server = PostgresServer.from_env()
    url = server.create_database()
    cli = str(Path(sys.executable).parent / "dataplump")
    ctx.logs.mkdir(parents=True, exist_ok=True)
    logs = {name: ctx.log(name).open("w") for name in ("sample", "run", "grow")}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(
            [cli, "sample", "create", "--url", url, "--rows", str(settings.shop_rows),
             "--dirty", "0", "--seed", "1", "--manifest", str(ctx.work / "shop.json")],
            stdout=logs["sample"], stderr=subprocess.STDOUT, check=True, cwd=ctx.work,
        )  # fmt: skip
        lake = ctx.work / "lake"
        pipeline = pipeline_for(ctx, url, lake)
        run = subprocess.Popen(
            [cli, "run", "-c", str(pipeline), "--metrics-port", "0"],
            stdout=logs["run"], stderr=subprocess.STDOUT, cwd=ctx.work,
        )  # fmt: skip
        procs.append(run)
        grow = subprocess.Popen(
            [cli, "sample", "grow", "--url", url, "--rate", str(settings.rate),
             "--update-share", "0", "--dirty", "0", "--seed", "2", "--json"],
            stdout=logs["grow"], stderr=subprocess.STDOUT, cwd=ctx.work,
        )  # fmt: skip
        procs.append(grow)
        watcher = Watcher(lake / "orders")
        began = time.time()
        deadline = began + settings.start_timeout
        while not watcher.seen:
            if time.time() > deadline or not alive(run) or not alive(grow):
                raise RuntimeError(
                    f"no row in the curated table after {time.time() - began:.0f} s"
                    f" (run {'up' if alive(run) else 'exited'}, grow"
                    f" {'up' if alive(grow) else 'exited'}; logs in {ctx.logs})"
                )
            watcher.poll()
            time.sleep(POLL_INTERVAL)
        start = time.time() + settings.warmup
        end = start + settings.seconds
        while time.time() < end:
            if not alive(run) or not alive(grow):
                raise RuntimeError(f"dataplump run or sample grow exited; logs in {ctx.logs}")
            watcher.poll()
            time.sleep(POLL_INTERVAL)
        stop(grow)
        expected = source_window(url, start, end)
        gives_up = time.time() + settings.tail
        while time.time() < gives_up and not expected.keys() <= watcher.seen.keys():
            watcher.poll()
            time.sleep(POLL_INTERVAL)
        rss = stop(run, signal.SIGTERM)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs.values():
            log.close()
        server.drop_database(url)
    latencies = [
        watcher.seen[key][0] - inserted if key in watcher.seen else math.inf
        for key, inserted in expected.items()
    ]
    missing = sum(1 for x in latencies if math.isinf(x))
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    gap, worst = watcher.resolution(start)
    print(
        f"scenario 5: {len(expected):,} orders inserted in a {settings.seconds:g} s window"
        f" at {settings.rate:g}/s, {missing:,} not seen after {settings.tail:g} s;"
        f" p50 {p50:.2f} s, p99 {p99:.2f} s, max {max(latencies, default=math.nan):.2f} s;"
        f" resolution: polls {gap:.2f} s apart (median), {worst:.2f} s at most",
        flush=True,
    )
    return [Result("dataplump run", 5, len(expected), settings.seconds, rss, 0, p50, p99)]
