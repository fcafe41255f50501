"""``dataplump load``: processed topics -> curated tables; DLQ, failed, alerts -> ops tables."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.live import Live
from rich.table import Table

from dataplump.bus.kafka import MAX_POLL_RECORDS
from dataplump.cli.options import ConfigOption, TableOption, check_tables
from dataplump.cli.output import console, fail
from dataplump.config import load_config
from dataplump.errors import DataPlumpError
from dataplump.pipeline.cluster import bootstrap_for

if TYPE_CHECKING:
    from dataplump.pipeline.load import LoadCounts


def _view(counts: dict[str, LoadCounts], title: str) -> Table:
    view = Table(title=title, title_justify="left", box=None, padding=(0, 2))
    for name in ("table", "consumed", "loaded", "skipped", "batches", "rows/s"):
        view.add_column(name, justify="left" if name == "table" else "right")
    for c in counts.values():
        loaded = ", ".join(f"{sink} {n:,}" for sink, n in c.loaded.items()) or "0"
        view.add_row(
            c.table,
            f"{c.consumed:,}",
            loaded,
            f"{c.skipped:,}",
            f"{c.batches:,}",
            f"{c.rows_per_second:,.0f}",
        )
    return view


def load(
    config: Path = ConfigOption,
    table: list[str] = TableOption,
    once: bool = typer.Option(False, "--once", help="Load what the topics hold now, then exit."),
    ops: bool = typer.Option(
        True,
        "--ops/--no-ops",
        help="Also load the dead-letter, failed, alert and run records into the ops tables.",
    ),
    max_records: int = typer.Option(
        50_000,
        "--max-records",
        min=1,
        max=MAX_POLL_RECORDS,
        help="Records per poll, and so per sink commit (with `kafka.topic.framing: arrow`,"
        " rows: a frame counts its rows): smaller means less work redone after a crash"
        " and less memory, larger means fewer (bigger) commits.",
    ),
) -> None:
    """Commit the processed rows to the curated tables of every sink, exactly once.

    Reads `<pipeline>.<table>.processed` as the consumer group `dataplump.<pipeline>.load`
    and commits each poll to the table's sinks (`sinks`, or `tables.<t>.sinks`) together
    with its Kafka offsets, in the sink's own commit; a restart resumes from the offsets
    the sinks hold. The dead-letter topics, `<pipeline>.failed`, `<pipeline>.alerts` and
    `<pipeline>.runs` go to the ops tables `_dlq`, `_failed`, `_alerts` and `_runs` of the
    first sink.

    Example: `dataplump load -c dataplump.yaml --once`
    """
    from dataplump.pipeline.load import Loader  # here: it imports every sink library

    try:
        pipeline = load_config(config)
        check_tables(pipeline, table, config)
        bootstrap = bootstrap_for(pipeline, say=console.print)
    except DataPlumpError as exc:
        fail(str(exc))
    counts: dict[str, LoadCounts] = {}
    stop = threading.Event()

    def on_signal(_sig: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        console.print("stopping after the current batch (Ctrl-C again to quit now)")

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        with Live(_view(counts, "loading"), console=console, transient=True) as live:

            def show(c: LoadCounts) -> None:
                counts[c.table] = c
                live.update(_view(counts, "loading"))

            loader = Loader(
                pipeline,
                bootstrap,
                tables=table or None,
                ops=ops,
                on_progress=show,
                max_records=max_records,
            )
            loader.run(once=once, stop=stop)
    except DataPlumpError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("stopped; the next run resumes from the offsets the sinks hold")
        raise typer.Exit(130) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    console.print(_view(counts, f"loaded (run {loader.run_id})"))
    if stop.is_set():
        raise typer.Exit(130)
