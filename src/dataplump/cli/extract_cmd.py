"""``dataplump extract``: source tables -> contract -> active and dead-letter topics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.live import Live
from rich.table import Table

from dataplump.cli.options import ConfigOption, TableOption, check_tables
from dataplump.cli.output import console, fail
from dataplump.config import load_config
from dataplump.config.models import MAX_SECONDS
from dataplump.errors import DataPlumpError
from dataplump.pipeline.cluster import bootstrap_for

if TYPE_CHECKING:  # the stage imports DuckDB and the drivers: only when it runs
    from dataplump.pipeline.extract import TableCounts


def _table(counts: dict[str, TableCounts], title: str) -> Table:
    view = Table(title=title, title_justify="left", box=None, padding=(0, 2))
    for name in ("table", "read", "valid", "invalid", "batches", "rows/s", "seconds"):
        view.add_column(name, justify="left" if name == "table" else "right")
    for c in counts.values():
        view.add_row(
            c.table,
            f"{c.read:,}",
            f"{c.valid:,}",
            f"[red]{c.invalid:,}[/]" if c.invalid else "0",
            f"{c.batches:,}",
            f"{c.rows_per_second:,.0f}",
            f"{c.seconds:.1f}",
        )
    return view


def extract(
    config: Path = ConfigOption,
    table: list[str] = TableOption,
    once: bool = typer.Option(
        False, "--once", help="Read up to the current end of each table, then exit."
    ),
    interval: float | None = typer.Option(
        None,
        "--interval",
        min=0.1,
        max=MAX_SECONDS,
        help="Seconds between polls when running without --once."
        " [default: `extract.poll_interval`, 10]",
    ),
) -> None:
    """Read source tables, validate every row against its contract, write Kafka topics.

    Valid rows go to `<pipeline>.<table>.active`, invalid ones with their reasons to
    `<pipeline>.<table>.dlq`, a summary alert to `<pipeline>.alerts`; each batch and its
    watermark are committed in one Kafka transaction, so a restart resumes exactly
    where the last committed batch ended.

    Example: `dataplump extract -c dataplump.yaml --once`
    """
    try:
        pipeline = load_config(config)
        check_tables(pipeline, table, config)
        bootstrap = bootstrap_for(pipeline, say=console.print)
        counts: dict[str, TableCounts] = {}
        with Live(_table(counts, "extracting"), console=console, transient=True) as live:

            def show(c: TableCounts) -> None:
                counts[c.table] = c
                live.update(_table(counts, "extracting"))

            from dataplump.pipeline.extract import Extractor

            extractor = Extractor(pipeline, bootstrap, on_progress=show)
            while True:
                extractor.run_once(table or None)
                if once:
                    break
                time.sleep(pipeline.extract.poll_interval if interval is None else interval)
    except DataPlumpError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        console.print("stopped; the next run resumes after the last committed batch")
        raise typer.Exit(130) from None
    console.print(_table(counts, f"extracted (run {extractor.run_id})"))
