"""``dataplump init``: scaffold a working pipeline folder from an existing database."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.text import Text

from dataplump.cli.output import console, fail
from dataplump.errors import DataPlumpError

FolderArgument = typer.Argument(
    Path(),
    metavar="DIR",
    help="The pipeline folder to write (created if missing).",
    show_default=".",
)


def init(
    folder: Path = FolderArgument,
    url: str = typer.Option(
        ...,
        "--url",
        envvar="DATAPLUMP_INIT_URL",
        help="SQLAlchemy URL of the source database, e.g."
        " `postgresql+psycopg://shop:pw@db:5432/shop`, `mysql+pymysql://...`,"
        " `sqlite:///shop.db`. Its password is used to read the catalog and is never"
        " written: the file references `${<NAME>_DB_PASSWORD}` instead.",
        show_default=False,
    ),
    tables: str | None = typer.Option(
        None,
        "--tables",
        help="Comma-separated tables (or views) to scaffold, e.g. `orders,customers`;"
        " default: every table of the schema.",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="Pipeline name (part of every Kafka topic name); default: the database's name.",
    ),
    schema: str | None = typer.Option(
        None,
        "--schema",
        help="Database schema of the tables (PostgreSQL); default: the"
        " connection's default schema.",
    ),
    password_env: str | None = typer.Option(
        None,
        "--password-env",
        help="Environment variable the source password is read from; default:"
        " `<NAME>_DB_PASSWORD`.",
    ),
    sample_rows: int = typer.Option(
        10_000,
        "--sample-rows",
        min=0,
        help="Rows of each table read to propose rules (min: 0, accepted_values) and to"
        " check the proposed contract on.",
    ),
    force: bool = typer.Option(False, "--force", help="Overwrite files that exist already."),
) -> None:
    """Scaffold a working pipeline folder for an existing database.

    Reflects the tables with SQLAlchemy and writes `DIR/dataplump.yaml` (every section
    explained, the password replaced by a `${VAR}` reference), one data contract per table
    under `DIR/contracts/` (types from the columns, NOT NULL and key rules, conservative
    rules from a sample, checked on it; foreign keys as relationships rules of an output
    contract), a SQL and a pandas step for one table (`DIR/steps/`), and a Delta lake
    sink under `DIR/lake`. An incremental cursor is chosen when a NOT NULL
    updated_at/modified-like timestamp exists; otherwise tables are read in full.
    Existing files are never overwritten without --force. The folder passes
    `dataplump config check --steps`.

    Example: `dataplump init shop --url postgresql+psycopg://shop:pw@db/shop --tables
    orders,customers`
    """

    from dataplump.scaffold import scaffold

    wanted = [t.strip() for t in tables.split(",") if t.strip()] if tables else None
    try:
        result = scaffold(
            url,
            folder,
            tables=wanted,
            name=name,
            schema=schema,
            password_env=password_env,
            force=force,
            sample_rows=sample_rows,
        )
    except DataPlumpError as exc:
        fail(str(exc))
    plan = result.plan
    config = folder / "dataplump.yaml"
    console.print(
        Text.assemble(("wrote", "green"), f" pipeline `{plan.name}` in {folder}:"), soft_wrap=True
    )
    for path in result.written:
        console.print(f"  {path}", soft_wrap=True, markup=False)
    for proposal in plan.proposals:
        mode = f"incremental by {proposal.cursor}" if proposal.cursor else "full"
        rules = sum(len(c.spec) - 1 for c in proposal.columns if c.spec) + len(proposal.rules)
        console.print(
            f"  table {proposal.name}: {mode}, {len(proposal.columns)} columns, {rules} rules"
            + (f", {len(proposal.relationships)} foreign keys" if proposal.relationships else ""),
            soft_wrap=True,
            markup=False,
        )
    for skipped in plan.skipped:
        console.print(
            Text.assemble(("skipped", "yellow"), f" {skipped.name}: {skipped.reason}"),
            soft_wrap=True,
        )
    for line in plan.dropped:
        console.print(Text.assemble(("rule left out", "yellow"), f" {line}"), soft_wrap=True)
    if result.problems:
        for problem in result.problems:
            console.print(Text.assemble(("problem", "red"), f" {problem}"), soft_wrap=True)
        fail(
            f"{config} was written but `dataplump config check --steps` finds the problems"
            " above; this is a bug of `dataplump init`: please report it"
        )
    c = shlex.quote(str(config))
    console.print("next:")
    if plan.password_variable:
        console.print(
            f"  export {plan.password_variable}=...   # the source password; it is in no file",
            soft_wrap=True,
            markup=False,
        )
        console.print(
            "  # as it is, even with characters URLs reserve (`@`, `/`, `%`):"
            " DataPlump encodes it in the URL",
            soft_wrap=True,
            markup=False,
        )
    for command in (
        f"dataplump config check -c {c} --steps",
        f"dataplump extract -c {c} --once      # starts a local Kafka unless one is configured",
        f"dataplump transform -c {c} --once",
        f"dataplump load -c {c} --once",
        f"dataplump kafka down -c {c}          # stops the local Kafka",
    ):
        console.print(f"  {command}", soft_wrap=True, markup=False)
