"""``dataplump lake``: compact, vacuum and show the history of the Delta tables of the lake
(local folders and ``s3://`` lakes alike)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import typer
from rich.table import Table

from dataplump.cli.options import ConfigOption, TableOption, check_tables
from dataplump.cli.output import console, fail
from dataplump.config import PipelineConfig, load_config
from dataplump.errors import DataPlumpError

app = typer.Typer(
    help="Maintain the Delta tables of the lake sinks: compact small files, vacuum old ones,"
    " show the commit history.",
    no_args_is_help=True,
)

OPS = ("_dlq", "_failed", "_alerts", "_runs")


def _tables(config: Path, tables: list[str]) -> list[tuple[str, str, dict[str, str] | None]]:
    """(label, location, storage options) of every Delta table of the lake sinks (or of
    ``tables``); a location is a folder or an ``s3://`` URL."""
    from deltalake import DeltaTable

    from dataplump.sinks._lake import table_place

    pipeline: PipelineConfig = load_config(config)
    check_tables(pipeline, [t for t in tables if t not in OPS], config)
    found = []
    for table in tables or [*pipeline.tables, *OPS]:
        sinks = dict([pipeline.ops_sink]) if table in OPS else pipeline.sinks_of(table)
        for name, sink in sinks.items():
            if sink.kind != "delta":
                continue
            place = table_place(sink, table)
            options = place.storage_options
            if place.local is not None:
                exists = (place.local / "_delta_log").is_dir()
            else:
                try:
                    exists = DeltaTable.is_deltatable(place.uri, options)
                except Exception as error:  # delta-rs raises plain Exception for I/O failures
                    fail(f"cannot reach {place.uri}: {' '.join(str(error).split())[:300]}")
            if exists:
                found.append((f"{name}/{table}", place.uri, options))
    if not found:
        fail(f"no Delta table written yet for {', '.join(tables) or 'this pipeline'} ({config})")
    return found


@app.command()
def compact(
    config: Path = ConfigOption,
    table: list[str] = TableOption,
    target_size: int | None = typer.Option(
        None, "--target-size", min=1, help="Bytes per file to aim at (default: the library's)."
    ),
) -> None:
    """Rewrite small files into larger ones (readers keep working; the old files stay
    until `vacuum`).

    Example: `dataplump lake compact -c dataplump.yaml --table orders`
    """
    from dataplump.sinks.lake import compact as compact_table

    view = Table("table", "files added", "files removed", "version", box=None, padding=(0, 2))
    try:
        for label, path, options in _tables(config, table):
            result = compact_table(path, target_size, storage_options=options)
            view.add_row(
                label, f"{result.files_added}", f"{result.files_removed}", f"{result.version}"
            )
    except DataPlumpError as exc:
        fail(str(exc))
    console.print(view)


@app.command()
def vacuum(
    config: Path = ConfigOption,
    table: list[str] = TableOption,
    retention: float = typer.Option(
        7 * 24.0,
        "--retention-hours",
        min=0,
        help="Keep files a reader of a version this recent may need (under 168 needs --force).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be deleted."),
    force: bool = typer.Option(
        False, "--force", help="Allow a retention under 7 days (time travel and slow readers)."
    ),
) -> None:
    """Delete the files no version within the retention needs.

    Example: `dataplump lake vacuum -c dataplump.yaml --dry-run`
    """
    from dataplump.sinks.lake import vacuum as vacuum_table

    try:
        for label, path, options in _tables(config, table):
            files = vacuum_table(
                path,
                dt.timedelta(hours=retention),
                dry_run=dry_run,
                force=force,
                storage_options=options,
            )
            verb = "would delete" if dry_run else "deleted"
            console.print(f"{label}: {verb} {len(files)} file(s)", markup=False)
    except DataPlumpError as exc:
        fail(str(exc))


@app.command()
def history(
    config: Path = ConfigOption,
    table: list[str] = TableOption,
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="Newest commits to show."),
) -> None:
    """Show the newest commits of each table: version, time, operation, rows added and the
    Kafka partitions whose offsets the commit stored.

    Example: `dataplump lake history -c dataplump.yaml --table orders -n 5`
    """
    from dataplump.sinks.lake import history as table_history

    try:
        for label, path, options in _tables(config, table):
            view = Table(title=label, title_justify="left", box=None, padding=(0, 2))
            for column in ("version", "time (UTC)", "operation", "rows added"):
                view.add_column(column, no_wrap=True)
            view.add_column("offsets of", overflow="fold")
            for commit in table_history(path, limit, storage_options=options):
                view.add_row(
                    str(commit.version),
                    commit.timestamp.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
                    commit.operation,
                    "-" if commit.rows_added is None else f"{commit.rows_added:,}",
                    ", ".join(commit.app_ids) or "-",
                )
            console.print(view)
    except DataPlumpError as exc:
        fail(str(exc))
