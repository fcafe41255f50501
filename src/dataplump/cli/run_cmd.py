"""``dataplump run``: extract, transform, load and notify together, supervised."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.live import Live
from rich.table import Table

from dataplump.cli.options import ConfigOption
from dataplump.cli.output import console, fail
from dataplump.config import PipelineConfig, load_config
from dataplump.errors import DataPlumpError
from dataplump.pipeline.cluster import bootstrap_for
from dataplump.pipeline.metrics import RunMetrics, Tally
from dataplump.pipeline.runlock import RunLock
from dataplump.pipeline.stages import stages_for
from dataplump.pipeline.supervisor import Event, StageFailedError, Supervisor

if TYPE_CHECKING:
    from dataplump.pipeline.ledger import TableLedger

PLAIN_EVERY = 10.0
"""Seconds between progress lines when the output is not a terminal."""

COLUMNS = ("read", "valid", "invalid", "transformed", "failed", "loaded")


def _view(tally: Tally, supervisor: Supervisor, lag: dict[str, dict[str, int]]) -> Table:
    seconds = max(time.monotonic() - tally.started, 1e-9)
    states = "  ".join(
        f"{s.name} [{_style(s.status)}]{s.status}[/]" for s in supervisor.states.values()
    )
    view = Table(title=f"running — {states}", title_justify="left", box=None, padding=(0, 2))
    for name in ("table", *COLUMNS, "rows/s", "lag t/l"):
        view.add_column(name, justify="left" if name == "table" else "right")
    for table in tally.tables:
        row = tally.row(table)
        lags = lag.get(table, {})
        view.add_row(
            table,
            *(
                f"[red]{row[c]:,}[/]" if c in ("invalid", "failed") and row[c] else f"{row[c]:,}"
                for c in COLUMNS
            ),
            f"{row['read'] / seconds:,.0f}",
            "/".join(f"{n:,}" for n in lags.values()) or "-",
        )
    return view


def _style(status: str) -> str:
    return {"running": "green", "done": "green", "restarting": "yellow"}.get(status, "red")


def _plain(tally: Tally, supervisor: Supervisor) -> str:
    parts = [f"{s.name}={s.status}" for s in supervisor.states.values()]
    for table in tally.tables:
        row = tally.row(table)
        parts.append(f"{table}: " + " ".join(f"{c} {row[c]:,}" for c in COLUMNS))
    return "; ".join(parts)


def _ledger_view(ledgers: dict[str, TableLedger], title: str) -> Table:
    view = Table(title=f"ledger ({title})", title_justify="left", box=None, padding=(0, 2))
    columns = ("table", "read", "dead-letter", "failed", "filtered", "loaded", "in flight", "gap")
    for name in columns:
        view.add_column(name, justify="left" if name == "table" else "right")
    for ledger in ledgers.values():
        view.add_row(
            ledger.table,
            f"{ledger.read:,}",
            f"{ledger.in_dlq:,}",
            f"{ledger.in_failed:,}",
            f"{ledger.filtered_total:,}",
            f"{ledger.loaded:,}",
            f"{ledger.in_flight_total:,}",
            f"[red]{ledger.gap:,}[/]" if ledger.gap else "[green]0[/]",
        )
    return view


def run(
    config: Path = ConfigOption,
    once: bool = typer.Option(
        False,
        "--once",
        help="Drain the source to its current end through every stage, check the ledger,"
        " print the summary and exit (1 if any row is unaccounted for).",
    ),
    metrics_port: int = typer.Option(
        9464,
        "--metrics-port",
        min=0,
        max=65535,
        help="Serve Prometheus metrics on http://127.0.0.1:PORT/metrics while running (0: off).",
    ),
    metrics_host: str = typer.Option(
        "127.0.0.1", "--metrics-host", help="Address the metrics endpoint binds."
    ),
) -> None:
    """Run the whole pipeline: extract, transform, load and notify, each in its own process
    (and `report` when `present.reports` schedules reports).

    A stage that crashes or is killed is reported and restarted with a growing backoff
    (1 s up to 60 s); every stage resumes from its last commit, so nothing is lost or
    doubled. Without `kafka.bootstrap_servers` the managed local broker is started first.
    Ctrl-C (or SIGTERM) stops after the current batches; a second Ctrl-C stops at once.

    With `--once` the stages run one after the other, each to the end of its input, then
    the row-accounting ledger is read: every row read must be in the curated table, the
    dead-letter or failed ops tables, or filtered by a step on purpose.

    Example: `dataplump run -c dataplump.yaml --once`
    """
    try:
        pipeline = load_config(config)
        bootstrap = bootstrap_for(pipeline, say=console.print)
        lock = RunLock(pipeline.name, bootstrap, config.resolve())
        lock.acquire()  # one run per pipeline: a second one stops here with one line
    except DataPlumpError as exc:
        fail(str(exc))
    try:
        _supervise(config, pipeline, bootstrap, once, metrics_port, metrics_host)
    finally:
        lock.release()


def _supervise(
    config: Path,
    pipeline: PipelineConfig,
    bootstrap: str,
    once: bool,
    metrics_port: int,
    metrics_host: str,
) -> None:
    tables = list(pipeline.tables)
    tally = Tally(tables)
    lag: dict[str, dict[str, int]] = {}
    live: Live | None = None
    plain_at = [time.monotonic()]

    def on_event(event: Event) -> None:
        kind, stage, payload = event
        if kind == "progress":
            if tally.progress(stage, payload):
                metrics.observe(stage, payload)
        elif kind in ("error", "fatal", "crash"):
            console.print(f"[red]{stage}[/]: {payload}", soft_wrap=True, highlight=False)
        elif kind == "restart":
            error, delay = payload
            tally.restarted(stage)
            if not once:
                reason = f" after: {error}" if error else ""
                console.print(f"{stage} restarts in {delay:.0f}s{reason}", soft_wrap=True)

    supervisor = Supervisor(
        config.resolve(), bootstrap, stages=stages_for(pipeline), on_event=on_event
    )
    if once:  # the first stage's process starts while the ledger is read; it waits for it
        supervisor.warm_up()
    try:
        baseline = _read_ledger(pipeline, bootstrap)  # what the ledger held before this run
    except BaseException:
        supervisor.kill()
        raise
    metrics = RunMetrics(pipeline.name, tally, lambda: supervisor.states, lag)
    if metrics_port:
        try:
            metrics.serve(metrics_port, metrics_host)
            console.print(f"metrics on http://{metrics_host}:{metrics_port}/metrics")
        except OSError as exc:
            console.print(
                f"[yellow]no metrics endpoint: {metrics_host}:{metrics_port}: {exc.strerror}[/]"
                " (choose another with --metrics-port, or 0 for none)"
            )
    lag_at = [0.0]

    lag_reader: threading.Thread | None = None

    def tick() -> None:
        nonlocal lag_reader
        now = time.monotonic()
        if not once and now - lag_at[0] > 5 and (lag_reader is None or not lag_reader.is_alive()):
            lag_at[0] = now  # read in the background: a slow broker must not freeze the view
            lag_reader = threading.Thread(
                target=lambda: lag.update(_lag(pipeline, bootstrap)), daemon=True
            )
            lag_reader.start()
        if live is not None:
            live.update(_view(tally, supervisor, lag))
        elif now - plain_at[0] > PLAIN_EVERY:
            plain_at[0] = now
            console.print(_plain(tally, supervisor), soft_wrap=True, highlight=False)

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        if supervisor.stopping:
            raise KeyboardInterrupt
        supervisor.stop()
        console.print("stopping after the current batches (Ctrl-C again to stop at once)")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    console.print(
        f"running pipeline `{pipeline.name}` ({', '.join(tables)}) on Kafka {bootstrap}"
        + (" once" if once else ""),
        highlight=False,
    )
    try:
        if console.is_terminal:
            live = Live(_view(tally, supervisor, lag), console=console, transient=True)
            live.start()
        if once:  # the last stage's process exits while the ledger is read
            supervisor.run_once(tick, reap=False)
        else:
            supervisor.run_forever(tick)
    except KeyboardInterrupt:
        supervisor.kill()
        if live is not None:
            live.stop()
        console.print("stopped at once; the next run resumes from the last commits")
        raise typer.Exit(130) from None
    except StageFailedError as exc:
        if live is not None:
            live.stop()
        fail(str(exc))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if live is not None:
            live.stop()
    try:
        console.print(_view(tally, supervisor, lag))
        if supervisor.stopping:
            if (stopped := _read_ledger(pipeline, bootstrap)) is not None:
                _print_ledgers(stopped, baseline)
            console.print("stopped; the next run resumes from the last commits")
            raise typer.Exit(130)
        if once:
            _settle(pipeline, bootstrap, baseline)
    finally:
        supervisor.reap()


def _read_ledger(pipeline: PipelineConfig, bootstrap: str) -> dict[str, TableLedger] | None:
    from dataplump.pipeline.ledger import read_ledger

    try:
        return read_ledger(pipeline, bootstrap)
    except DataPlumpError as exc:
        console.print(f"[yellow]could not read the ledger: {exc}[/]", soft_wrap=True)
        return None


def _print_ledgers(
    ledgers: dict[str, TableLedger], baseline: dict[str, TableLedger] | None
) -> None:
    """The ledger of this run (when there were earlier runs) and of every run."""
    earlier = baseline or {}
    if any(lg.read or lg.in_flight_total for lg in earlier.values()):
        this_run = {t: lg.since(earlier[t]) if t in earlier else lg for t, lg in ledgers.items()}
        console.print(_ledger_view(this_run, "this run"))
        console.print(_ledger_view(ledgers, "every run"))
    else:
        console.print(_ledger_view(ledgers, "this run, the first: every run"))


def _settle(
    pipeline: PipelineConfig, bootstrap: str, baseline: dict[str, TableLedger] | None
) -> None:
    """Print the ledgers; exit 1 if a row is unaccounted for."""
    if (ledgers := _read_ledger(pipeline, bootstrap)) is None:
        fail("the ledger could not be read: the rows of this run are not accounted for")
    _print_ledgers(ledgers, baseline)
    problems = [
        f"{t}: {lg.gap:,} row(s) unaccounted for" for t, lg in ledgers.items() if lg.gap
    ] + [
        f"{t}: {lg.in_flight_total:,} row(s) still in flight ({lg.in_flight})"
        for t, lg in ledgers.items()
        if not lg.settled
    ]
    if problems:
        fail("ledger does not balance: " + "; ".join(problems))


def _lag(pipeline: PipelineConfig, bootstrap: str) -> dict[str, dict[str, int]]:
    from dataplump.pipeline.ledger import consumer_lag

    try:
        return consumer_lag(pipeline, bootstrap)
    except DataPlumpError:
        return {}
