"""The ``dataplump`` command line.

CLI modules only parse arguments, call the library and print; everything a
command does is also a Python call in the package.
"""

from __future__ import annotations

import logging
import os
from enum import StrEnum

import typer

from dataplump import __version__
from dataplump.cli import (
    config_cmd,
    demo_cmd,
    extract_cmd,
    init_cmd,
    kafka_cmd,
    lake_cmd,
    load_cmd,
    notify_cmd,
    replay_cmd,
    report_cmd,
    run_cmd,
    sample_cmd,
    serve_cmd,
    status_cmd,
    trace_cmd,
    transform_cmd,
)
from dataplump.logs import LOG_FORMAT_ENV, setup_logging

app = typer.Typer(
    name="dataplump",
    help="Move raw rows from a SQL database through Apache Kafka into validated, curated data.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("demo")(demo_cmd.demo)
app.command("init")(init_cmd.init)
app.add_typer(config_cmd.app, name="config")
app.add_typer(kafka_cmd.app, name="kafka")
app.command("extract")(extract_cmd.extract)
app.command("transform")(transform_cmd.transform)
app.command("load")(load_cmd.load)
app.add_typer(lake_cmd.app, name="lake")
app.add_typer(notify_cmd.app, name="notify")
app.command("run")(run_cmd.run)
app.command("status")(status_cmd.status)
app.command("trace")(trace_cmd.trace)
app.command("replay")(replay_cmd.replay)
app.add_typer(sample_cmd.app, name="sample")
app.command("serve")(serve_cmd.serve)
app.command("report")(report_cmd.report)


class LogFormatChoice(StrEnum):
    text = "text"
    json = "json"


class LogLevel(StrEnum):
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


LogFormatOption = typer.Option(
    LogFormatChoice.text,
    "--log-format",
    envvar=LOG_FORMAT_ENV,
    help="Logs on stderr: `text` for people, `json` (one object per line) for machines."
    " Secrets are masked in both.",
)
LogLevelOption = typer.Option(
    LogLevel.warning, "--log-level", envvar="DATAPLUMP_LOG_LEVEL", help="Least severe log shown."
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dataplump {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        "-V",
        help="Print the version and exit.",
        callback=_print_version,
        is_eager=True,
    ),
    log_format: LogFormatChoice = LogFormatOption,
    log_level: LogLevel = LogLevelOption,
) -> None:
    """DataPlump: SQL database -> Kafka -> validated, curated lake or warehouse."""
    os.environ[LOG_FORMAT_ENV] = log_format.value  # the stage processes of `run` inherit it
    os.environ["DATAPLUMP_LOG_LEVEL"] = log_level.value
    setup_logging(log_format.value, level=logging.getLevelName(log_level.value.upper()))


def main() -> None:
    """Console-script entry point."""
    app()
