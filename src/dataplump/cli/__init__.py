"""The ``dataplump`` command line.

CLI modules only parse arguments, call the library and print; everything a
command does is also a Python call in the package.
"""

from __future__ import annotations

import typer

from dataplump import __version__
from dataplump.cli import (
    config_cmd,
    extract_cmd,
    init_cmd,
    kafka_cmd,
    lake_cmd,
    load_cmd,
    notify_cmd,
    transform_cmd,
)

app = typer.Typer(
    name="dataplump",
    help="Move raw rows from a SQL database through Apache Kafka into validated, curated data.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("init")(init_cmd.init)
app.add_typer(config_cmd.app, name="config")
app.add_typer(kafka_cmd.app, name="kafka")
app.command("extract")(extract_cmd.extract)
app.command("transform")(transform_cmd.transform)
app.command("load")(load_cmd.load)
app.add_typer(lake_cmd.app, name="lake")
app.add_typer(notify_cmd.app, name="notify")


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
) -> None:
    """DataPlump: SQL database -> Kafka -> validated, curated lake or warehouse."""


def main() -> None:
    """Console-script entry point."""
    app()
