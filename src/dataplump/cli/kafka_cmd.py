"""``dataplump kafka``: install, start, inspect and stop the managed Apache Kafka broker."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dataplump.cli.output import console, fail
from dataplump.errors import KafkaServiceError
from dataplump.services.kafka import DEFAULT_PORT, KafkaManager

app = typer.Typer(
    help=(
        "Run Apache Kafka (KRaft, one node on 127.0.0.1) for DataPlump.\n\n"
        "The broker's jars come from Maven Central (`dataplump kafka install`); each data dir "
        "holds one broker: its config, its data, its log and its pid.\n\n"
        "Example: `dataplump kafka up --port 9092` then `kcat -b 127.0.0.1:9092 -L`."
    ),
    no_args_is_help=True,
)

DEFAULT_DATA_DIR = Path(".dataplump/kafka")

DataDirOption = typer.Option(
    DEFAULT_DATA_DIR,
    "--data-dir",
    "-d",
    envvar="DATAPLUMP_KAFKA_DATA_DIR",
    help="The broker's folder: config, data, log and pid live here.",
    show_default=True,
)


def _manager(data_dir: Path, port: int = DEFAULT_PORT) -> KafkaManager:
    try:
        return KafkaManager(data_dir, port=port)
    except KafkaServiceError as exc:
        fail(str(exc))


@app.command()
def install() -> None:
    """Fetch the Kafka broker's jars from Maven Central into the cache (once per machine)."""
    manager = _manager(DEFAULT_DATA_DIR)
    try:
        with console.status(f"Fetching Apache Kafka {manager.version} with Maven..."):
            fetched = manager.install()
    except KafkaServiceError as exc:
        fail(str(exc))
    verb = "installed in" if fetched else "already in"
    console.print(f"Kafka {manager.version} {verb} {manager.libs_dir}")


@app.command()
def up(
    port: int = typer.Option(
        DEFAULT_PORT, "--port", "-p", min=1, max=65535, help="Broker port on 127.0.0.1."
    ),
    data_dir: Path = DataDirOption,
    timeout: float = typer.Option(90.0, help="Seconds to wait for the broker to answer."),
) -> None:
    """Start the broker in the background and wait until it answers; print its address.

    Formats the storage on first start. Running it again while the broker runs is harmless.
    """
    manager = _manager(data_dir, port)
    try:
        with console.status(f"Starting Kafka {manager.version} on 127.0.0.1:{port}..."):
            info = manager.up(timeout=timeout)
    except KafkaServiceError as exc:
        fail(str(exc))
    if info.already_running:
        console.print(f"Kafka already running (pid {info.pid})", style="dim")
    else:
        console.print(f"Kafka {manager.version} started in {info.seconds:.1f}s (pid {info.pid})")
    typer.echo(info.bootstrap)


@app.command()
def status(
    data_dir: Path = DataDirOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead."),
) -> None:
    """Say whether the broker runs and answers; exit 1 when it does not."""
    state = _manager(data_dir).status()
    if as_json:
        typer.echo(json.dumps(state.as_dict()))
    elif state.reachable:
        console.print(
            f"[green]running[/]  {state.bootstrap}  pid {state.pid}  Kafka {state.version}  "
            f"data {state.data_dir}"
        )
    elif state.running:
        console.print(f"[yellow]starting or stuck[/]  pid {state.pid}, not answering yet")
    else:
        console.print(f"[red]not running[/]  (data dir {state.data_dir})")
    if not state.reachable:
        raise typer.Exit(1)


@app.command()
def down(
    data_dir: Path = DataDirOption,
    timeout: float = typer.Option(
        30.0, help="Seconds to wait for a clean shutdown before killing the broker."
    ),
) -> None:
    """Stop the broker cleanly (killed after --timeout); its port is free when this returns."""
    manager = _manager(data_dir)
    with console.status("Stopping Kafka..."):
        stopped = manager.down(timeout=timeout)
    console.print("Kafka stopped" if stopped else "Kafka was not running")


@app.command()
def logs(
    data_dir: Path = DataDirOption,
    lines: int = typer.Option(50, "--lines", "-n", min=0, help="How many last lines to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """Print the end of the broker's log (and follow it with -f)."""
    manager = _manager(data_dir)
    try:
        for line in manager.follow_log(lines=lines, follow=follow):
            typer.echo(line)
    except KafkaServiceError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
