"""Options and checks the stage commands share."""

from __future__ import annotations

from difflib import get_close_matches
from pathlib import Path

import typer

from dataplump.cli.output import fail
from dataplump.config import CONFIG_ENV_VAR, DEFAULT_CONFIG_FILE, PipelineConfig

ConfigOption = typer.Option(
    Path(DEFAULT_CONFIG_FILE), "--config", "-c", envvar=CONFIG_ENV_VAR, help="The pipeline file."
)
TableOption = typer.Option([], "--table", "-t", help="Only this table (repeat for several).")


def check_tables(pipeline: PipelineConfig, tables: list[str], config: Path) -> None:
    """Stop with one line when ``tables`` names a table the pipeline file does not have."""
    unknown = [name for name in tables if name not in pipeline.tables]
    if unknown:
        close = get_close_matches(unknown[0], list(pipeline.tables), n=1)
        hint = f"did you mean `{close[0]}`? " if close else ""
        fail(f"no table `{unknown[0]}` in {config}; {hint}(tables: {', '.join(pipeline.tables)})")
