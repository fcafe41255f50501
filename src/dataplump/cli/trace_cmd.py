"""``dataplump trace``: the whole path of one source row."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

from dataplump.cli.options import ConfigOption, check_tables
from dataplump.cli.output import console, fail
from dataplump.config import load_config
from dataplump.errors import DataPlumpError
from dataplump.pipeline.cluster import bootstrap_for

TableArgument = typer.Option(..., "--table", "-t", help="The source table of the row.")
KeyOption = typer.Option(
    ...,
    "--key",
    "-k",
    help="The row's primary key: `--key 42`, or `--key col=value` for each column of a"
    " composite key.",
)


def trace(
    config: Path = ConfigOption,
    table: str = TableArgument,
    key: list[str] = KeyOption,
    as_json: bool = typer.Option(False, "--json", help="Print the trace as JSON."),
) -> None:
    """Show the whole path of one source row: when it was extracted and by which run,
    the rules it broke (dead-letter) or the step that failed it, its replays, and the
    curated row with the Kafka record it came from and the Delta table version it landed in.

    Exits 1 if the pipeline kept nothing of the row.

    Example: `dataplump trace -c dataplump.yaml --table orders --key 42`
    """
    from dataplump.pipeline.trace import parse_key
    from dataplump.pipeline.trace import trace as trace_row

    try:
        pipeline = load_config(config)
        check_tables(pipeline, [table], config)
        bootstrap = bootstrap_for(pipeline, start=False)
        found = trace_row(pipeline, table, parse_key(pipeline, table, key), bootstrap)
    except DataPlumpError as exc:
        fail(str(exc))
    if as_json:
        data = {
            "table": found.table,
            "key": found.key,
            "source_row": found.source_row,
            "steps": [
                {"at": s.at, "stage": s.stage, "what": s.what, "where": s.where, "detail": s.detail}
                for s in found.steps
            ],
        }
        typer.echo(
            orjson.dumps(
                data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str
            ).decode()
        )
    else:
        shown = ", ".join(f"{k}={v}" for k, v in found.key.items())
        state = "in the source now" if found.source_row is not None else "not in the source now"
        console.print(f"[bold]{table}[/] {shown}: {state}", highlight=False)
        if found.source_row is not None:
            console.print(f"  source row: {found.source_row}", highlight=False, soft_wrap=True)
        for step in found.steps:
            at = step.at.isoformat(timespec="seconds") if step.at else "-"
            console.print(
                f"  {at:25} {step.stage:12} {step.what} [dim]({step.where})[/]",
                highlight=False,
                soft_wrap=True,
            )
    if not found.found:
        fail(f"the pipeline kept nothing of {table} {found.key} (not extracted yet?)")
