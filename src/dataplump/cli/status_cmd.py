"""``dataplump status``: the ledger, consumer lag, last runs and last alert of a pipeline."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from dataplump.cli.options import ConfigOption, TableOption, check_tables
from dataplump.cli.output import console, fail
from dataplump.config import PipelineConfig, load_config
from dataplump.errors import DataPlumpError
from dataplump.pipeline.cluster import bootstrap_for

STATUS_VERSION = 1
"""Version of the ``--json`` shape (documented in docs/run.md); bumped on any change
that is not an added key."""


def collect(pipeline: PipelineConfig, bootstrap: str, tables: list[str] | None) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-able data."""
    from dataplump.pipeline.ledger import consumer_lag, read_ledger
    from dataplump.sinks.read import read_table

    ledgers = read_ledger(pipeline, bootstrap, tables)
    lag = consumer_lag(pipeline, bootstrap, tables)
    _, ops = pipeline.ops_sink
    runs = read_table(ops, "_runs")
    last_runs: dict[str, Any] = {}
    if runs.height:
        newest = runs.sort("ended_at").group_by("stage").last()
        for row in newest.iter_rows(named=True):
            last_runs[row["stage"]] = {
                key: _json_value(row.get(key))
                for key in (
                    "run_id",
                    "started_at",
                    "ended_at",
                    "seconds",
                    "rows",
                    "status",
                    "error",
                )
            }
    alerts = read_table(ops, "_alerts")
    last_alert = None
    if alerts.height:
        row = alerts.sort("kafka_timestamp").row(-1, named=True)
        last_alert = {
            key: _json_value(row.get(key))
            for key in ("kafka_timestamp", "table", "stage", "kind", "rule", "count", "message")
        }
    tables_data = {}
    for table, ledger in ledgers.items():
        data = ledger.as_dict()
        data["lag"] = lag.get(table, {})
        tables_data[table] = data
    return {
        "version": STATUS_VERSION,
        "pipeline": pipeline.name,
        "ok": all(t["gap"] == 0 for t in tables_data.values()),
        "tables": tables_data,
        "last_runs": last_runs,
        "last_alert": last_alert,
    }


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def status(
    config: Path = ConfigOption,
    table: list[str] = TableOption,
    as_json: bool = typer.Option(
        False, "--json", help="Print the status as JSON (the shape is documented in docs/run.md)."
    ),
) -> None:
    """Show the pipeline's row-accounting ledger, consumer lag, last runs and last alert.

    Per table: rows read by the extraction, in the dead-letter and failed ops tables,
    filtered by steps, loaded into the curated table, still in flight, and the gap (rows
    unaccounted for: must be 0). Exits 1 when a gap is found. Reads Kafka and the lake;
    starts nothing.

    Example: `dataplump status -c dataplump.yaml --json`
    """
    try:
        pipeline = load_config(config)
        check_tables(pipeline, table, config)
        bootstrap = bootstrap_for(pipeline, start=False)
        data = collect(pipeline, bootstrap, table or None)
    except DataPlumpError as exc:
        fail(f"{exc} (is Kafka up? `dataplump kafka status -c {config}`)")
    if as_json:
        typer.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())
    else:
        _print(data)
    if not data["ok"]:
        raise typer.Exit(1)


def _print(data: dict[str, Any]) -> None:
    view = Table(title=f"pipeline {data['pipeline']}", title_justify="left", box=None)
    names = ("table", "read", "dead-letter", "failed", "filtered", "loaded", "in flight", "gap")
    for name in (*names, "lag"):
        view.add_column(name, justify="left" if name == "table" else "right")
    for table, t in data["tables"].items():
        view.add_row(
            table,
            f"{t['read']:,}",
            f"{t['in_dlq']:,}",
            f"{t['in_failed']:,}",
            f"{t['filtered_total']:,}",
            f"{t['loaded']:,}",
            f"{t['in_flight_total']:,}",
            f"[red]{t['gap']:,}[/]" if t["gap"] else "[green]0[/]",
            " ".join(f"{s} {n:,}" for s, n in t["lag"].items()) or "-",
        )
    console.print(view)
    for stage, run in data["last_runs"].items():
        error = f" — {run['error']}" if run.get("error") else ""
        console.print(
            f"last {stage}: {run['status']} at {run['ended_at']}, {run['rows']:,} rows"
            f" in {run['seconds']:.1f}s{error}",
            highlight=False,
            soft_wrap=True,
        )
    alert = data["last_alert"]
    if alert:
        what = alert["message"] or f"{alert['count']:,} {alert['kind']} ({alert['rule']})"
        where = f" {alert['stage']} {alert['table']}:" if alert["table"] else ""
        console.print(
            f"last alert: {alert['kafka_timestamp']}{where} {what}", highlight=False, soft_wrap=True
        )
