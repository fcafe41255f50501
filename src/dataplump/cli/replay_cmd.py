"""``dataplump replay``: send kept records that pass now back into the flow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import typer

from dataplump.cli.options import ConfigOption, TableOption, check_tables
from dataplump.cli.output import console, fail
from dataplump.config import load_config
from dataplump.config.models import parse_duration
from dataplump.errors import DataPlumpError
from dataplump.pipeline.cluster import bootstrap_for


class Kind(StrEnum):
    dlq = "dlq"
    failed = "failed"


def parse_since(text: str) -> datetime:
    """An ISO time (``2026-11-27T10:00``, UTC if no zone) or a duration back from now
    (``2h``, ``1d``)."""
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"`{text}` is neither a time (2026-11-27T10:00) nor a duration (2h, 1d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


KindArgument = typer.Argument(
    ..., help="`dlq`: rows the contract rejected; `failed`: records the transformation failed."
)


def replay(
    kind: Kind = KindArgument,
    config: Path = ConfigOption,
    table: list[str] = TableOption,
    rule: str | None = typer.Option(
        None, "--rule", "-r", help="Only records that broke this rule, e.g. `max(id)`."
    ),
    since: str | None = typer.Option(
        None,
        "--since",
        metavar="TIME",
        help="Only records kept since TIME: an ISO time (UTC if no zone) or a duration (`2h`).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", "-n", help="Show what would pass and what still fails; send nothing."
    ),
) -> None:
    """Check kept records again under the current contract and steps; send those that pass
    back into the flow, leave the rest where they are.

    `dlq` re-checks the rows in the ops table `_dlq` against each table's contract; those
    that pass go to `<pipeline>.<table>.active`. `failed` runs the inputs in `_failed`
    through the current steps and output contract (nothing written); those that come out
    whole go to `.active` to be transformed for real. A record is never replayed twice
    (`<pipeline>.replays` remembers each one, in the same Kafka transaction). When a
    replay leaves nothing of a table in the store, its incident is resolved and the
    channels are told. The pipeline (`dataplump run`) then carries the rows to the lake.

    Example: `dataplump replay dlq -c dataplump.yaml --table orders --dry-run`
    """
    from dataplump.pipeline import replay as replays

    start = parse_since(since) if since else None
    try:
        pipeline = load_config(config)
        check_tables(pipeline, table, config)
        bootstrap = bootstrap_for(pipeline, say=console.print)
        planned = replays.plan(
            pipeline, bootstrap, kind.value, tables=table or None, rule=rule, since=start
        )
    except DataPlumpError as exc:
        fail(str(exc))
    verb = "would now pass" if dry_run else "pass now"
    for name, t in planned.tables.items():
        if not t.considered:
            continue
        fresh = t.considered - t.already - len(t.superseded)
        line = f"{name}: {len(t.passing):,} of {fresh:,} {verb}"
        if t.failing:
            top = ", ".join(f"{rule} {n:,}" for rule, n in t.still_failing.most_common(5))
            line += f"; {t.failing:,} still fail: {top}"
        if t.superseded:
            line += f"; {len(t.superseded):,} older copies of the same keys set aside"
        if t.already:
            line += f" ({t.already:,} replayed before, skipped)"
        console.print(line, highlight=False, soft_wrap=True)
    if not any(t.considered for t in planned.tables.values()):
        console.print(f"nothing kept in the {kind.value} store matches", highlight=False)
        return
    if dry_run:
        return
    try:
        sent = replays.apply(pipeline, bootstrap, planned)
    except DataPlumpError as exc:
        fail(str(exc))
    console.print(
        f"replay {planned.replay_id}: sent {sent:,} record(s) back to the active topics;"
        f" `dataplump run -c {config}` carries them to the lake",
        highlight=False,
        soft_wrap=True,
    )
