"""``dataplump report``: one report of a period, as HTML, PDF or Markdown."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from dataplump.cli.options import ConfigOption, TableOption, check_tables
from dataplump.cli.output import console, err_console, fail
from dataplump.config import load_config
from dataplump.errors import DataPlumpError


class ReportFormat(StrEnum):
    html = "html"
    pdf = "pdf"
    md = "md"


FormatOption = typer.Option(
    None,
    "--format",
    "-f",
    help="`html` (one self-contained file), `pdf` (A4, paginated) or `md` (Markdown, charts"
    " as PNG files in `<name>_files/` beside it). Default: the suffix of -o, else pdf.",
    show_default=False,
)
OutputOption = typer.Option(
    None,
    "--output",
    "-o",
    help="The file to write. Default: `report.<format>` in the current folder.",
    show_default=False,
)


def report(
    config: Path = ConfigOption,
    fmt: ReportFormat | None = FormatOption,
    since: str | None = typer.Option(
        None,
        "--since",
        help="Start of the period (included): an ISO date `2026-11-20`, a date and time"
        " `2026-11-20T08:00` (UTC unless it has an offset), a length of time before now"
        " (`7d`, `24h`, `90m`, `2w`) or `now`. Default: 24 h before --until.",
        show_default=False,
    ),
    until: str | None = typer.Option(
        None,
        "--until",
        help="End of the period (excluded), written like --since. Default: now.",
        show_default=False,
    ),
    table: list[str] = TableOption,
    output: Path | None = OutputOption,
) -> None:
    """Write a report a manager reads in two minutes: the key figures of a period (rows
    extracted, loaded, invalid, failed) and their change from the period before, the
    ledger, the rules that rejected most records, the alerts, and the pipeline's declared
    charts.

    Reads the curated and ops tables of the lake, and the ledger and the notifier's state
    from Kafka; when Kafka does not answer, the report is made from the lake alone and
    says that the ledger is missing. Starts nothing. No secret of the pipeline file
    appears in a report.

    Examples:

    - `dataplump report -c dataplump.yaml`: the last 24 h, as report.pdf
    - `dataplump report --since 7d -o week.html`: the last 7 days, one HTML file
    - `dataplump report --since 2026-11-01 --until 2026-12-01 -t orders -f md`: November
    """
    try:
        pipeline = load_config(config)
    except DataPlumpError as exc:
        fail(str(exc))
    check_tables(pipeline, table, config)
    from dataplump.present.report import make_report

    try:
        path, made = make_report(
            pipeline, output, fmt.value if fmt is not None else None, since, until, table or None
        )
    except DataPlumpError as exc:
        fail(str(exc))
    if made.ledger_ok is None:
        err_console.print(
            f"[yellow]warning:[/] the ledger is missing: {made.ledger_error}", soft_wrap=True
        )
    size = path.stat().st_size
    console.print(
        f"wrote {path} ({size / 1024:,.0f} KiB): {made.period.describe()},"
        f" {len(made.tables)} table{'s' if len(made.tables) != 1 else ''}",
        soft_wrap=True,
    )
