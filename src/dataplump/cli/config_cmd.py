"""``dataplump config``: check the pipeline file and show the config DataPlump would run."""

from __future__ import annotations

import io
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text
from ruamel.yaml import YAML

from dataplump.cli.output import console, err_console, fail
from dataplump.config import (
    CONFIG_ENV_VAR,
    DEFAULT_CONFIG_FILE,
    ConfigError,
    InvalidConfigError,
    PipelineConfig,
    load_config,
)
from dataplump.config.loader import locate

app = typer.Typer(
    help=(
        "Check the pipeline file (dataplump.yaml) and show the config DataPlump would run.\n\n"
        "Example: `dataplump config check -c examples/dataplump.yaml --show`."
    ),
    no_args_is_help=True,
)

ConfigOption = typer.Option(
    Path(DEFAULT_CONFIG_FILE),
    "--config",
    "-c",
    envvar=CONFIG_ENV_VAR,
    help="The pipeline file.",
    show_default=True,
)


@app.callback()
def _group() -> None:
    """Check the pipeline file and show the config DataPlump would run."""


@app.command(
    help=(
        "Validate the pipeline file, its ${VAR} references and DATAPLUMP__* overrides.\n\n"
        "Prints every problem as `FILE:LINE:COL: key.path: message` (or `env VAR: key.path: "
        "message` when an override caused it) and exits with 1. On success prints a summary "
        "(or, with --show, the effective config as YAML) and exits with 0. Secrets are never "
        "printed.\n\n"
        "Example: `DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS=kafka:9092 dataplump config check "
        "-c examples/dataplump.yaml --show`"
    )
)
def check(
    config: Path = ConfigOption,
    show: bool = typer.Option(
        False, "--show", help="Print the effective config as YAML, secrets masked."
    ),
    steps: bool = typer.Option(
        True,
        "--steps/--no-steps",
        help="Also run each table's transform steps on an empty batch shaped like its"
        " contract: imports user functions, loads reference tables, and finds unknown"
        " columns in SQL and built-in steps (needs the source database for references).",
    ),
) -> None:
    """Validate the pipeline file; print its problems, or a summary."""
    try:
        pipeline = load_config(config)
        if steps:
            from dataplump.engine import check_steps  # imports DuckDB, pandas, polars

            problems = list(  # a reference several tables use is one problem
                dict.fromkeys(
                    (problem.path, problem.message)
                    for table in pipeline.transform.steps
                    for problem in check_steps(pipeline, table)
                )
            )
            if problems:
                raise InvalidConfigError(config, locate(config, problems))
    except InvalidConfigError as exc:
        for issue in exc.issues:
            err_console.print(
                Text.assemble((issue.where, "bold"), ": ", *_path(issue.path), issue.message),
                soft_wrap=True,
            )
        count = len(exc.issues)
        err_console.print(
            f"{count} problem{'s' if count != 1 else ''} in {config}; fix and run again.",
            style="red",
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(1) from None
    except ConfigError as exc:
        fail(str(exc))
    if show:
        yaml = YAML(typ="rt")
        yaml.default_flow_style = False
        text = io.StringIO()
        yaml.dump(pipeline.redacted_dump(), text)
        console.print(text.getvalue(), end="", markup=False, soft_wrap=True)
    else:
        _summary(config, pipeline)


def _path(path: str) -> tuple[str | tuple[str, str], ...]:
    return ((path, "cyan"), ": ") if path else ()


def _summary(file: Path, config: PipelineConfig) -> None:
    kafka, schema = config.kafka, config.source.db_schema
    lines = [
        ("pipeline", config.name),
        ("source", config.source.masked_url() + (f" (schema {schema})" if schema else "")),
        (
            "kafka",
            f"managed broker on 127.0.0.1:{kafka.managed.port} ({kafka.managed.data_dir})"
            if kafka.is_managed
            else f"{kafka.bootstrap_servers} ({kafka.security_protocol})",
        ),
        (
            "sinks",
            "; ".join(
                f"{name}: {s.kind} {s.url.masked() if s.url else s.path} ({s.mode})"
                for name, s in config.sinks.items()
            ),
        ),
        ("transform", config.transform.engine),
        ("notify", ", ".join(channel.kind for channel in config.notify.channels)),
    ]
    console.print(Text.assemble((f"{file}", "bold"), " is valid", style="green"))
    for label, value in lines:
        console.print(Text.assemble((f"  {label:<10}", "dim"), value), soft_wrap=True)
    tables = Table("table", "mode", "primary key", "cursor", "batch", box=None, padding=(0, 2))
    for name, table in config.tables.items():
        cursor = f"{table.cursor} (lag {table.lag_seconds:g}s)" if table.cursor else "-"
        key = ", ".join(table.primary_key)
        tables.add_row(name, table.mode, key, cursor, str(table.batch_size))
    console.print(tables)
