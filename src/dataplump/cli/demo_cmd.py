"""``dataplump demo``: the whole pipeline on the sample shop, from nothing to a dashboard."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dataplump.cli import run_cmd, serve_cmd
from dataplump.cli.output import console, fail
from dataplump.errors import DataPlumpError

if TYPE_CHECKING:
    from dataplump.sample.demo import DemoFolder

DEFAULT_DASHBOARD_PORT = 8050
LIVE_RATE = 5.0
"""Orders per second `--live` adds (with their items, now and then a customer)."""
DirOption = typer.Option(
    Path("demo"),
    "--dir",
    "-d",
    help="Folder for the demo's database, pipeline, lake, broker and report; emptied"
    " first if an earlier demo made it.",
)


def demo(
    folder: Path = DirOption,
    orders: int = typer.Option(
        10_000, "--orders", "-n", min=1, help="Orders in the sample shop (items follow)."
    ),
    seed: int = typer.Option(7, "--seed", "-s", help="Random seed of the sample shop."),
    live: bool = typer.Option(
        False,
        "--live",
        help="After the batch, keep the pipeline running and the shop growing"
        f" ({LIVE_RATE:g} orders/s) so the dashboard moves.",
    ),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Serve the dashboard after the report (until Ctrl-C)."
    ),
    port: int = typer.Option(
        DEFAULT_DASHBOARD_PORT,
        "--port",
        "-p",
        min=1,
        max=65535,
        help="Dashboard port (another free one when it is taken).",
    ),
) -> None:
    """Run the whole pipeline on a sample shop and show the result: no config needed.

    1. creates a dirty sample shop (customers, products, orders, items; 5% of the rows
       spoiled) in SQLite in `--dir`, with the shop pipeline of `examples/shop`;
    2. starts the managed Kafka broker (port 9092, another free one when it is taken);
    3. runs extract, transform, load and notify once to the end, with live counts, and
       checks the row-accounting ledger: every row is curated, dead-lettered or failed;
    4. writes the report to `report.html` and `report.pdf` in `--dir`;
    5. serves the dashboard on http://127.0.0.1:8050/ until Ctrl-C (`--no-serve`: stop
       here), then stops the broker. `--live` keeps the shop growing and the pipeline
       running meanwhile.

    The folder is a normal pipeline folder: `dataplump status -c demo/dataplump.yaml`,
    `trace`, `replay` and `serve` work on it while its broker runs
    (`dataplump kafka up -c demo/dataplump.yaml`).

    Example: `dataplump demo` (about a minute and a half on two cores), then open the URL.
    """
    from dataplump.sample import create_sample, default_manifest_path
    from dataplump.sample.demo import kafka_data_dir, prepare
    from dataplump.services.kafka import KafkaManager

    started = time.monotonic()
    overridden = sorted(k for k in os.environ if k.startswith("DATAPLUMP__"))
    for key in overridden:  # the demo runs on the embedded defaults
        del os.environ[key]
    if overridden:
        console.print(f"ignoring {', '.join(overridden)}: the demo runs on its own settings")
    try:
        made = prepare(folder)
        console.print(f"[bold]1/4[/] the sample shop: {orders:,} orders in {made.database}")
        shop = create_sample(made.url, orders=orders, seed=seed)
        shop.write(default_manifest_path(made.url))
        rows = sum(t.rows for t in shop.tables.values())
        faulty = sum(t.faulty for t in shop.tables.values())
        console.print(f"    {rows:,} rows, {faulty:,} of them spoiled on purpose")
    except DataPlumpError as exc:
        fail(str(exc))
    console.print(f"[bold]2/4[/] the pipeline, once to the end ({made.config})")
    try:
        run_cmd.run(config=made.config, once=True, metrics_port=0, metrics_host="127.0.0.1")
        console.print("[bold]3/4[/] the report")
        _reports(made.config, [made.report("html"), made.report("pdf")])
        console.print(f"batch part done in {time.monotonic() - started:.0f}s")
        if serve:
            _serve(made, port, live=live)
    finally:
        KafkaManager(kafka_data_dir(made.root)).down()


def _reports(config: Path, paths: list[Path]) -> None:
    from dataplump.config import load_config
    from dataplump.present.report import read_for_report, write_report

    try:
        pipeline = load_config(config)
        started = time.monotonic()
        snapshot = read_for_report(pipeline)  # the lake, the ledger, the notifier: once
        console.print(f"    read the lake and the ledger in {time.monotonic() - started:.1f}s")
        for path in paths:
            started = time.monotonic()
            write_report(pipeline, path, path.suffix.lstrip("."), snapshot=snapshot)
            console.print(f"    {path} ({time.monotonic() - started:.1f}s)")
    except DataPlumpError as exc:
        fail(str(exc))


def _serve(made: DemoFolder, port: int, *, live: bool) -> None:
    from dataplump.services.kafka import free_port, port_is_free

    at = port if port_is_free(port) else free_port()
    console.print("[bold]4/4[/] the dashboard (Ctrl-C stops it and the broker)")
    children: list[subprocess.Popen[bytes]] = []
    if live:
        logs = made.root / "logs"
        logs.mkdir(exist_ok=True)
        for name, args in (
            ("grow", ["sample", "grow", "--url", made.url, "--rate", str(LIVE_RATE), "--json"]),
            ("run", ["run", "-c", str(made.config), "--metrics-port", "0"]),
        ):
            with (logs / f"{name}.log").open("wb") as out:
                children.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "dataplump", *args],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # Ctrl-C reaches them through us, in order
                    )
                )
        console.print(
            f"    the shop grows by {LIVE_RATE:g} orders/s and the pipeline runs on;"
            f" their output is in {logs}"
        )
    try:
        serve_cmd.serve(config=made.config, port=at, host=None, refresh=5.0 if live else None)
    finally:
        _stop(children)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    """Stop the grower, then the pipeline, and wait for all they started.

    The pipeline's stages and multiprocessing's resource tracker are its children;
    they end a moment after it does, and the demo must not return before them.
    """
    import psutil  # type: ignore[import-untyped]

    descendants: list[psutil.Process] = []
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            descendants += psutil.Process(child.pid).children(recursive=True)
    for child in children:  # the grower first, then the pipeline finishes its batches
        child.send_signal(signal.SIGINT)
    for child in children:
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    _, alive = psutil.wait_procs(descendants, timeout=15)
    for process in alive:
        process.kill()
