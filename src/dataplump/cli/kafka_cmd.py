"""``dataplump kafka``: install, start, inspect and stop the managed Apache Kafka broker."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from dataplump.cli.output import console, fail
from dataplump.config import CONFIG_ENV_VAR, ConfigError, KafkaConfig, load_config
from dataplump.errors import KafkaServiceError
from dataplump.services.kafka import DEFAULT_PORT, KafkaManager, metadata_ok

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

ConfigOption = typer.Option(
    None,
    "--config",
    "-c",
    envvar=CONFIG_ENV_VAR,
    help=(
        "Pipeline file: the broker's port and data dir come from its `kafka.managed`; "
        "when it names `kafka.bootstrap_servers`, that cluster is used and nothing is started."
    ),
)
DataDirOption = typer.Option(
    None,
    "--data-dir",
    "-d",
    envvar="DATAPLUMP_KAFKA_DATA_DIR",
    help=f"The broker's folder: config, data, log and pid live here. [default: {DEFAULT_DATA_DIR}]",
)


def _target(
    config: Path | None, port: int | None = None, data_dir: Path | None = None
) -> KafkaManager | KafkaConfig:
    """The managed broker to act on, or the external cluster the pipeline file names.

    An explicit ``--port``/``--data-dir`` wins over the file's ``kafka.managed``.
    """
    if config is not None:
        try:
            kafka = load_config(config).kafka
        except ConfigError as exc:
            fail(f"{exc} (run `dataplump config check -c {config}`)")
        if not kafka.is_managed:
            return kafka
        port = port or kafka.managed.port
        data_dir = data_dir or kafka.managed.data_dir
    try:
        return KafkaManager(data_dir or DEFAULT_DATA_DIR, port=port or DEFAULT_PORT)
    except KafkaServiceError as exc:
        fail(str(exc))


def _external(kafka: KafkaConfig) -> str:
    return f"the pipeline file names kafka.bootstrap_servers={kafka.bootstrap_servers}"


@app.command()
def install() -> None:
    """Fetch the Kafka broker's jars from Maven Central into the cache (once per machine)."""
    try:
        manager = KafkaManager(DEFAULT_DATA_DIR)
        with console.status(f"Fetching Apache Kafka {manager.version} with Maven..."):
            fetched = manager.install()
    except KafkaServiceError as exc:
        fail(str(exc))
    verb = "installed in" if fetched else "already in"
    console.print(f"Kafka {manager.version} {verb} {manager.libs_dir}")


@app.command()
def up(
    port: int | None = typer.Option(
        None,
        "--port",
        "-p",
        min=1,
        max=65535,
        help=f"Broker port on 127.0.0.1. [default: {DEFAULT_PORT}]",
    ),
    data_dir: Path | None = DataDirOption,
    config: Path | None = ConfigOption,
    timeout: float = typer.Option(90.0, help="Seconds to wait for the broker to answer."),
) -> None:
    """Start the broker in the background and wait until it answers; print its address.

    Formats the storage on first start. Running it again while the broker runs is harmless.
    """
    manager = _target(config, port, data_dir)
    if isinstance(manager, KafkaConfig):
        console.print(f"{_external(manager)}: DataPlump uses that cluster and starts nothing")
        typer.echo(manager.bootstrap_servers)
        return
    try:
        with console.status(f"Starting Kafka {manager.version} on 127.0.0.1:{manager.port}..."):
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
    data_dir: Path | None = DataDirOption,
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead."),
) -> None:
    """Say whether the broker runs and answers; exit 1 when it does not."""
    manager = _target(config, data_dir=data_dir)
    if isinstance(manager, KafkaConfig):
        servers = manager.bootstrap_servers or ""
        reachable = metadata_ok(servers, timeout=5.0, client_config=manager.client_config())
        if as_json:
            typer.echo(json.dumps({"external": servers, "reachable": reachable}))
        else:
            word = "[green]reachable[/]" if reachable else "[red]not reachable[/]"
            console.print(f"{word}  {servers} (external cluster)")
        raise typer.Exit(0 if reachable else 1)
    state = manager.status()
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
    data_dir: Path | None = DataDirOption,
    config: Path | None = ConfigOption,
    timeout: float = typer.Option(
        30.0, help="Seconds to wait for a clean shutdown before killing the broker."
    ),
) -> None:
    """Stop the broker cleanly (killed after --timeout); its port is free when this returns."""
    manager = _target(config, data_dir=data_dir)
    if isinstance(manager, KafkaConfig):
        console.print(f"{_external(manager)}: DataPlump started no broker, nothing to stop")
        return
    with console.status("Stopping Kafka..."):
        stopped = manager.down(timeout=timeout)
    console.print("Kafka stopped" if stopped else "Kafka was not running")


@app.command()
def logs(
    data_dir: Path | None = DataDirOption,
    config: Path | None = ConfigOption,
    lines: int = typer.Option(50, "--lines", "-n", min=0, help="How many last lines to show."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines."),
) -> None:
    """Print the end of the broker's log (and follow it with -f)."""
    manager = _target(config, data_dir=data_dir)
    if isinstance(manager, KafkaConfig):
        fail(f"{_external(manager)}: its logs are on its own machines")
    try:
        for line in manager.follow_log(lines=lines, follow=follow):
            typer.echo(line)
    except KafkaServiceError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
