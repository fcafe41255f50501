"""``dataplump transform``: active topics -> steps -> output contract -> processed / failed."""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.live import Live
from rich.table import Table

from dataplump.bus.kafka import MAX_POLL_RECORDS
from dataplump.cli.options import ConfigOption, TableOption, check_tables
from dataplump.cli.output import console, fail
from dataplump.config import load_config
from dataplump.errors import ConfigError, DataPlumpError
from dataplump.pipeline.cluster import bootstrap_for

if TYPE_CHECKING:  # the stage imports DuckDB, pandas and polars: only when it runs
    from dataplump.pipeline.transform import TransformCounts

Report = Callable[[tuple[str, int, Any]], None]


class EngineChoice(StrEnum):
    """``--engine``: where the steps run."""

    duckdb = "duckdb"
    spark = "spark"


EngineOption = typer.Option(
    None,
    "--engine",
    "-e",
    help="Run the steps on `duckdb` (in-process) or `spark` (`transform.spark.master`:"
    " local or a cluster; the Spark UI's address is printed). Default: `transform.engine`.",
)


def _view(counts: dict[str, TransformCounts], title: str) -> Table:
    view = Table(title=title, title_justify="left", box=None, padding=(0, 2))
    columns = ("table", "consumed", "processed", "failed", "filtered", "batches", "rows/s")
    for name in columns:
        view.add_column(name, justify="left" if name == "table" else "right")
    for c in counts.values():
        filtered = sum(c.filtered.values())
        view.add_row(
            c.table,
            f"{c.consumed:,}",
            f"{c.processed:,}",
            f"[red]{c.failed:,}[/]" if c.failed else "0",
            f"{filtered:,}",
            f"{c.batches:,}",
            f"{c.rows_per_second:,.0f}",
        )
    return view


def _run_slot(
    config: Path,
    bootstrap: str,
    tables: list[str],
    slot: int,
    once: bool,
    max_records: int,
    stop: Any,
    report: Report,
    engine: str | None = None,
) -> None:
    """One worker: transform until stopped (or drained with ``once``), reporting counts."""
    try:
        pipeline = load_config(config)
        from dataplump.pipeline.transform import make_transformer

        worker = make_transformer(
            pipeline,
            bootstrap,
            engine=engine,
            tables=tables or None,
            slot=slot,
            max_records=max_records,
            on_progress=lambda c: report(("progress", slot, asdict(c))),
        )
        if ui := getattr(worker, "ui_address", None):
            report(("info", slot, f"Spark UI: {ui}"))
        try:
            worker.run(once=once, stop=stop)
        finally:
            worker.close()
        report(("done", slot, worker.run_id))
    except ConfigError as exc:  # e.g. a pandas step naming a function its file lacks
        report(("error", slot, f"{exc} (run `dataplump config check -c {config}`)"))
    except DataPlumpError as exc:
        report(("error", slot, str(exc)))
    except KeyboardInterrupt:
        report(("done", slot, None))


def _child(
    config: Path,
    bootstrap: str,
    tables: list[str],
    slot: int,
    once: bool,
    max_records: int,
    stop: Any,
    results: Any,
    engine: str | None = None,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    _run_slot(config, bootstrap, tables, slot, once, max_records, stop, results.put, engine)


def transform(
    config: Path = ConfigOption,
    table: list[str] = TableOption,
    once: bool = typer.Option(
        False, "--once", help="Drain the active topics to their current end, then exit."
    ),
    workers: int = typer.Option(
        1, "--workers", "-w", min=1, max=64, help="Worker processes (one consumer each)."
    ),
    slot: int = typer.Option(
        0,
        "--slot",
        min=0,
        help="First worker slot. Each slot has its own transactional id, so a restarted slot"
        " fences its predecessor; give other machines or processes other slots"
        " (e.g. `--slot 2` beside a `--workers 2` process) to join the same group.",
    ),
    max_records: int = typer.Option(
        10_000,
        "--max-records",
        min=1,
        max=MAX_POLL_RECORDS,
        help="Records per poll, and so per transaction (with `kafka.topic.framing: arrow`,"
        " rows: a frame counts its rows): smaller means less work redone after a crash,"
        " larger means fewer transactions (DuckDB engine; Spark reads"
        " `transform.spark.batch_records` per micro-batch).",
    ),
    engine: EngineChoice | None = EngineOption,
) -> None:
    """Clean, wrangle and enrich the validated rows: the steps of `transform.steps`.

    Reads `<pipeline>.<table>.active` as the consumer group `dataplump.<pipeline>.transform`,
    runs the table's steps (SQL on DuckDB, pandas or polars functions, built-in cleaning),
    checks the table's `output_contract`, and writes `<pipeline>.<table>.processed`; every
    record that fails goes to the failed store `<pipeline>.failed` with its reasons, and
    alerts to `<pipeline>.alerts`. Each poll's output and consumed offsets are one Kafka
    transaction, so a restart resumes without loss or duplicates.

    With `--engine spark` (or `transform.engine: spark`) Spark Structured Streaming reads
    the active topics and runs the same steps and contract; each micro-batch is one Kafka
    transaction written the same way (docs/spark.md).

    Example: `dataplump transform -c dataplump.yaml --once --workers 2`
    """
    try:
        pipeline = load_config(config)
    except ConfigError as exc:
        fail(f"{exc} (run `dataplump config check -c {config}`)")
    check_tables(pipeline, table, config)
    if (engine or pipeline.transform.engine) == EngineChoice.spark and (workers > 1 or slot):
        fail("--workers and --slot are the DuckDB engine's: Spark spreads the work itself")
    try:
        bootstrap = bootstrap_for(pipeline, say=console.print)
    except DataPlumpError as exc:
        fail(str(exc))
    from dataplump.pipeline.transform import TransformCounts as counts_type

    counts: dict[tuple[int, str], TransformCounts] = {}
    errors: list[str] = []
    results: queue.Queue[tuple[str, int, Any]] | Any
    spark = (engine or pipeline.transform.engine) == EngineChoice.spark
    if workers == 1 and not spark:  # Spark's gateway starts only from a main thread
        stop: Any = threading.Event()
        results = queue.Queue()
        runner = threading.Thread(
            target=_run_slot,
            args=(config, bootstrap, table, slot, once, max_records, stop, results.put, engine),
            daemon=True,
        )
        alive: Callable[[], bool] = runner.is_alive
        runner.start()

        def join() -> None:
            runner.join(30)
    else:
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        results = context.Queue()
        processes = [
            context.Process(
                target=_child,
                args=(config, bootstrap, table, slot + i, once, max_records, stop, results, engine),
                daemon=True,
            )
            for i in range(workers)
        ]
        for process in processes:
            process.start()

        def alive() -> bool:
            return any(p.is_alive() for p in processes)

        def join() -> None:
            for process in processes:
                process.join(30)

    finished = 0
    interrupted = False
    signals: list[int] = []

    def on_terminate(signum: int, _frame: Any) -> None:
        signals.append(signum)
        raise KeyboardInterrupt

    # SIGTERM (a service manager, `kill`) stops like the first Ctrl-C: after the batch.
    previous = signal.signal(signal.SIGTERM, on_terminate)
    try:
        with Live(_view({}, "transforming"), console=console, transient=True) as live:
            while finished < workers:
                try:
                    kind, who, payload = results.get(timeout=0.5)
                    if kind == "info":
                        console.print(payload)
                    elif kind == "progress":
                        c = counts_type(**payload)
                        counts[(who, c.table)] = c
                        live.update(_view(_by_table(counts), "transforming"))
                    else:
                        finished += 1
                        if kind == "error":
                            errors.append(payload)
                            stop.set()
                except queue.Empty:
                    if not alive():
                        break
                except KeyboardInterrupt:
                    if interrupted:
                        raise typer.Exit(130) from None
                    interrupted = True
                    stop.set()
                    console.print("stopping after the current batch (Ctrl-C again to quit now)")
    finally:
        signal.signal(signal.SIGTERM, previous)
    # Wait for the workers to release DuckDB and librdkafka: native threads torn down by
    # the interpreter's exit abort the process ("FATAL: exception not rethrown").
    join()
    if counts or not errors:  # no empty table above an error that came before any work
        console.print(_view(_by_table(counts), "transformed"))
    if errors:
        fail(errors[0])
    if finished < workers:
        fail("a transform worker exited without a report (killed?); run again to resume")
    if interrupted:
        raise typer.Exit(143 if signal.SIGTERM in signals else 130)


def _by_table(counts: dict[tuple[int, str], TransformCounts]) -> dict[str, TransformCounts]:
    """Every slot's counts of a table added up (rows/s over the longest-running slot)."""
    from dataplump.pipeline.transform import TransformCounts

    total: dict[str, TransformCounts] = {}
    for c in counts.values():
        sum_ = total.setdefault(c.table, TransformCounts(c.table, started=c.started))
        sum_.add(c)
        sum_.retries += c.retries
        sum_.started = min(sum_.started, c.started)
        if c.finished is not None:
            sum_.finished = max(sum_.finished or c.finished, c.finished)
    return total
