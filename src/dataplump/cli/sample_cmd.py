"""``dataplump sample``: a realistic, deliberately dirty shop database to run pipelines on."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.live import Live
from rich.table import Table

from dataplump.cli.output import console, fail
from dataplump.errors import DataPlumpError

if TYPE_CHECKING:  # numpy, pyarrow and Faker load only when a command runs
    from dataplump.sample import Manifest
    from dataplump.sample.grow import GrowCounts

app = typer.Typer(
    help=(
        "Build and grow a sample shop database (customers, products, orders, order_items)"
        " with counted faults, for trying and testing pipelines.\n\n"
        "Example: `dataplump sample create --rows 5000 && dataplump sample grow --rate 20`."
        " The matching pipeline is examples/shop; see docs/sample.md."
    ),
    no_args_is_help=True,
)

UrlOption = typer.Option(
    "sqlite:///shop.db",
    "--url",
    "-u",
    envvar="SHOP_DB_URL",
    help="SQLAlchemy URL of the database: sqlite:///shop.db (relative to the current folder),"
    " postgresql+psycopg://user:pw@host/db, mysql+pymysql://user:pw@host/db.",
)
DirtyOption = typer.Option(
    0.05, "--dirty", min=0.0, max=1.0, help="Share of rows with a fault (0 to 1; 0.05 is 5%)."
)

NowOption = typer.Option(
    None,
    "--now",
    formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
    help="Place the timestamps around this instant (UTC unless it has an offset)"
    " instead of the current time; with the same seed, the same bytes.",
)
ManifestOption = typer.Option(
    None,
    "--manifest",
    "-m",
    help="Where to write the manifest (JSON). [default: beside a SQLite file, e.g."
    " shop.manifest.json; for a server database `<database>.manifest.json` here]",
)


@app.callback()
def _group() -> None:
    """Build and grow a sample shop database with counted faults."""


def _tables(manifest: Manifest) -> Table:
    view = Table(box=None, padding=(0, 2), title_justify="left")
    for name in ("table", "rows", "faulty", "to dlq", "to failed", "cleaned", "curated"):
        view.add_column(name, justify="left" if name == "table" else "right")
    for t in manifest.tables.values():
        view.add_row(
            t.name,
            f"{t.rows:,}",
            f"{t.faulty:,}",
            f"{t.rows_to('dlq'):,}",
            f"{t.rows_to('failed'):,}",
            f"{t.rows_to('cleaned'):,}",
            f"{t.curated:,}",
        )
    return view


def _faults(manifest: Manifest) -> Table:
    view = Table(box=None, padding=(0, 2))
    for name in ("table", "fault", "rows", "expected"):
        view.add_column(name, justify="right" if name == "rows" else "left")
    for t in manifest.tables.values():
        for f in t.faults:
            by = f"{f.outcome}: {f.rule}" if f.rule else f"cleaned: {f.step}"
            view.add_row(t.name, f.kind, f"{f.rows:,}", by)
    return view


@app.command()
def create(
    url: str = UrlOption,
    rows: int = typer.Option(
        10_000,
        "--rows",
        "-n",
        min=1,
        help="Orders to create; customers, products and items follow.",
    ),
    dirty: float = DirtyOption,
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed: the same seed, the same rows."),
    now: datetime | None = NowOption,
    replace: bool = typer.Option(
        False, "--replace", help="Drop the shop's tables first if they exist."
    ),
    manifest: Path | None = ManifestOption,
    as_json: bool = typer.Option(
        False, "--json", help="Print the manifest as JSON on stdout instead of tables."
    ),
) -> None:
    """Create the shop's tables and fill them with realistic rows, some of them faulty.

    Tables `customers`, `products`, `orders` and `order_items` (foreign keys, decimals,
    free text, `created_at`/`updated_at` for incremental extraction). A `--dirty` share
    of the rows gets exactly one fault each, the kinds in equal shares: missing required
    values, malformed e-mails and phones, negative quantities, unknown foreign keys,
    future dates, out-of-range values, duplicated natural keys (rejected by the contracts
    of examples/shop) and stray whitespace and mixed case (fixed by its cleaning steps).

    The manifest says per table and fault kind how many rows were spoiled and which
    contract rule or step catches them, so a test can compare it with the `_dlq` and
    `_failed` ops tables.

    Example: `dataplump sample create --url sqlite:///shop.db --rows 100000 --seed 7`
    """
    try:
        from dataplump.sample import create_sample, default_manifest_path

        target = manifest or default_manifest_path(url)
        made = create_sample(url, orders=rows, dirty=dirty, seed=seed, now=now, replace=replace)
        made.write(target)
    except DataPlumpError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the manifest {target}: {exc.strerror or exc}")
    if as_json:
        typer.echo(made.to_json())
        return
    total = sum(t.rows for t in made.tables.values())
    console.print(f"created the sample shop in {made.url}: {total:,} rows in {made.seconds:.1f}s")
    console.print(_tables(made))
    console.print()
    console.print(_faults(made))
    console.print(f"\nmanifest: {target}")


def _counts(counts: GrowCounts, title: str) -> Table:
    view = Table(title=title, title_justify="left", box=None, padding=(0, 2))
    for name in ("table", "inserted", "updated", "faulty", "faults"):
        view.add_column(
            name, justify="right" if name in ("inserted", "updated", "faulty") else "left"
        )
    for table, inserted in counts.inserted.items():
        kinds = {k: n for k, n in counts.faults[table].items() if n}
        view.add_row(
            table,
            f"{inserted:,}",
            f"{counts.updated[table]:,}",
            f"{sum(kinds.values()):,}",
            ", ".join(f"{k} {n}" for k, n in kinds.items()),
        )
    return view


@app.command()
def grow(
    url: str = UrlOption,
    rate: float = typer.Option(
        10.0, "--rate", "-r", min=0.01, help="Orders per second, new and updated together."
    ),
    duration: float | None = typer.Option(
        None, "--duration", "-d", min=0.0, help="Stop after this many seconds. [default: Ctrl-C]"
    ),
    update_share: float = typer.Option(
        0.2,
        "--update-share",
        min=0.0,
        max=1.0,
        help="Share of the changes that update an existing order (or a product's stock).",
    ),
    dirty: float = DirtyOption,
    seed: int | None = typer.Option(None, "--seed", "-s", help="Random seed. [default: random]"),
    as_json: bool = typer.Option(
        False, "--json", help="Print the final counts as JSON on stdout; no live table."
    ),
) -> None:
    """Keep inserting and updating rows of a sample database at a rate, until Ctrl-C.

    New orders come with their items, and new customers and products now and then; a
    share of the changes updates existing orders. Every change sets `updated_at` to now,
    so `dataplump extract` running beside it reads them incrementally. New rows have the
    same fault mix as `sample create` (`--dirty` on average). A live table shows the
    counts.

    Example: `dataplump sample grow --rate 50 --duration 60`
    """
    from dataplump.sample.grow import grow as run

    started = time.monotonic()
    try:
        if as_json:
            counts = run(
                url, rate=rate, duration=duration, update_share=update_share, dirty=dirty, seed=seed
            )
            typer.echo(json.dumps(counts.to_dict(), indent=2))
            return
        with Live(console=console, transient=False, refresh_per_second=4) as live:

            def show(c: GrowCounts) -> None:
                rows_per_s = c.rows / c.seconds if c.seconds else 0.0
                live.update(_counts(c, f"growing {c.seconds:.0f}s, {rows_per_s:,.0f} rows/s"))

            counts = run(
                url,
                rate=rate,
                duration=duration,
                update_share=update_share,
                dirty=dirty,
                seed=seed,
                on_tick=show,
            )
            live.update(_counts(counts, f"grew for {time.monotonic() - started:.1f}s"))
    except DataPlumpError as exc:
        fail(str(exc))
