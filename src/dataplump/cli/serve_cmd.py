"""``dataplump serve``: the dashboard web app over the lake and the ledger."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import typer

from dataplump.cli.options import ConfigOption
from dataplump.cli.output import console, fail
from dataplump.config import load_config
from dataplump.errors import DataPlumpError


def serve(
    config: Path = ConfigOption,
    port: int | None = typer.Option(
        None, "--port", "-p", min=0, max=65535, help="Port (default: present.port, 8050)."
    ),
    host: str | None = typer.Option(
        None,
        "--host",
        help="Interface to listen on (default: present.host, 127.0.0.1; `0.0.0.0` opens it"
        " to the network: set present.auth_token).",
    ),
    refresh: float | None = typer.Option(
        None,
        "--refresh",
        min=1.0,
        help="Seconds between reads of the lake and ledger (default: present.refresh_seconds).",
    ),
) -> None:
    """Serve the dashboard: overview with the row-accounting ledger, data quality,
    declared charts and table profiles, alerts; and its JSON API (`/openapi.json`).

    Reads the curated and ops tables of the pipeline's sinks and the ledger from Kafka
    (the pages still work when Kafka is down, without the ledger). Starts nothing else.
    Ctrl-C stops it.

    Example: `dataplump serve -c dataplump.yaml --port 8050`
    """
    try:
        pipeline = load_config(config)
    except DataPlumpError as exc:
        fail(str(exc))
    import uvicorn

    from dataplump.pipeline.cluster import bootstrap_for
    from dataplump.present import assets
    from dataplump.present.app import LOOPBACK_HOSTS, create_app
    from dataplump.present.data import DashboardData

    present = pipeline.present
    bind = host or present.host
    at = present.port if port is None else port
    bootstrap = bootstrap_for(pipeline, start=False)
    source = DashboardData(pipeline, bootstrap, refresh_seconds=refresh)
    assets.warm()
    loopback = bind in ("127.0.0.1", "localhost", "::1")
    app = create_app(pipeline, source, allowed_hosts=LOOPBACK_HOSTS if loopback else None)
    if not loopback and present.auth_token is None:
        console.print(
            f"[yellow]warning:[/] serving on {bind} with no present.auth_token: anyone who"
            " reaches this port sees the data",
            highlight=False,
        )
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    try:  # listening before the address is printed: whoever reads it can connect at once
        listening = socket.create_server((bind, at), family=family)
    except OSError as exc:
        why = os.strerror(exc.errno) if exc.errno else str(exc)
        fail(f"cannot listen on {bind}:{at} ({why}); choose another --port or --host")
    at = listening.getsockname()[1]  # the port the system chose for --port 0
    shown = f"[{bind}]" if ":" in bind else bind
    console.print(
        f"dashboard of pipeline `{pipeline.name}` on http://{shown}:{at}/", highlight=False
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=bind, port=at, log_level="warning", server_header=False)
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: uvicorn has stopped cleanly
        server.run(sockets=[listening])
