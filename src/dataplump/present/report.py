"""Reports: what a manager reads in two minutes, for one period, as HTML, PDF or Markdown.

:func:`build_report` turns a :class:`~dataplump.present.data.Snapshot` into a
:class:`Report` for a period ``[since, until)`` — the same queries the dashboard runs
(:mod:`dataplump.present.data`), filtered to the period and to the one before it:

- key figures per table: rows extracted (the extract runs of ``_runs`` that ended in the
  period), loaded (curated rows whose ``_dp_extracted_at`` is in it), invalid (``_dlq``)
  and failed (``_failed``, both by ``kafka_timestamp``), each with its change from the
  previous period of the same length; the quarantined share and freshness; the ledger
  (cumulative, from Kafka: missing when Kafka is down);
- data quality: the rules that fired most in the period, per table, with their share;
- alerts: incidents opened, resolved, or open at the end of the period, and how far
  their notifications got (from the notifier's state in Kafka);
- the charts of ``present.charts``, each with the warning the dashboard shows beside it.

:func:`write_report` reads the lake (and Kafka, if it answers) and writes the file; the
renderers live in :mod:`dataplump.present.report_render`, scheduled reports in
:mod:`dataplump.present.report_schedule`. Every figure is counted over whole tables, not
sampled. No secret of the pipeline file reaches a report: the rendered text is scrubbed
of every secret value the config holds (:func:`secret_values`).

    >>> p = Period(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))
    >>> p.label, p.previous.label, p.describe()
    ('2026-11-27', '2026-11-26', '2026-11-27 00:00 to 2026-11-28 00:00 UTC (1 day)')
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, SecretStr

from dataplump.errors import DataPlumpError, TerminalError
from dataplump.present import data

if TYPE_CHECKING:
    from dataplump.config import PipelineConfig

log = logging.getLogger(__name__)

Format = Literal["html", "pdf", "md"]
FORMATS: tuple[str, ...] = get_args(Format)
DEFAULT_PERIOD = timedelta(hours=24)
TOP_REASONS = 10
"""Rows of the top-reasons table (the rest is counted as "... and N more")."""
MAX_INCIDENTS = 50
FIGURES = ("extracted", "loaded", "invalid", "failed")
MASK = "***"


class ReportError(DataPlumpError):
    """A report that cannot be made."""


class ReportInputError(ReportError, TerminalError):
    """A report asked for wrongly: a period, a table, a format or a path."""


# --- the period ------------------------------------------------------------------------


_RELATIVE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d|w)\s*", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(text: str, now: datetime) -> datetime:
    """A point in time from ``now``, a length of time before ``now`` (``7d``, ``24h``,
    ``90m``, ``2w``), an ISO date (``2026-11-27``: its midnight, UTC) or an ISO date and
    time (``2026-11-27T10:00``, UTC unless it carries an offset such as ``+01:00``)."""
    value = text.strip()
    if value.lower() == "now":
        return now
    relative = _RELATIVE.fullmatch(value)
    if relative is not None:
        number, unit = relative.groups()
        return now - timedelta(seconds=float(number) * _UNIT_SECONDS[unit.lower()])
    try:
        found = datetime.fromisoformat(value.replace(" ", "T", 1) if " " in value else value)
    except ValueError:
        raise ReportInputError(
            f"`{text}` is not a time: use an ISO date (2026-11-27), a date and time"
            " (2026-11-27T10:00, UTC unless it has an offset), a length of time before now"
            " (24h, 7d, 2w) or `now`"
        ) from None
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)


def _span(seconds: float) -> str:
    """``1 day``, ``7 days``, ``24 h``, ``1.5 h``... : a period's length in words."""
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"about {seconds / size:.1f} {unit}"
    return f"{seconds:g} s"


def _stamp(at: datetime) -> str:
    """A compact time for file names: ``2026-11-27T1000Z`` (seconds only when not 0)."""
    return at.strftime("%Y-%m-%dT%H%M%SZ" if at.second or at.microsecond else "%Y-%m-%dT%H%MZ")


@dataclass(frozen=True)
class Period:
    """The half-open interval ``[since, until)``, both in UTC."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        if self.until <= self.since:
            shown = [t.isoformat(timespec="seconds") for t in (self.since, self.until)]
            raise ReportInputError(
                f"the period is empty: --since {shown[0]} is not before --until {shown[1]}"
            )

    @property
    def length(self) -> timedelta:
        return self.until - self.since

    @property
    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.since - self.length, self.since)

    @property
    def label(self) -> str:
        """The period in a file name: ``2026-11-27`` (a UTC day), ``2026-11-20--2026-11-26``
        (whole days), else ``2026-11-27T1000Z--2026-11-27T1100Z``."""
        midnight = all(t.time() == datetime.min.time() for t in (self.since, self.until))
        if midnight:
            last: date = (self.until - timedelta(days=1)).date()
            first = self.since.date()
            return first.isoformat() if first == last else f"{first}--{last}"
        return f"{_stamp(self.since)}--{_stamp(self.until)}"

    def describe(self) -> str:
        """``2026-11-27 00:00 to 2026-11-28 00:00 UTC (1 day)``."""
        form = "%Y-%m-%d %H:%M:%S" if self.since.second or self.until.second else "%Y-%m-%d %H:%M"
        return (
            f"{self.since.strftime(form)} to {self.until.strftime(form)} UTC"
            f" ({_span(self.length.total_seconds())})"
        )


def resolve_period(
    since: str | datetime | None, until: str | datetime | None, now: datetime
) -> Period:
    """The period of ``--since``/``--until`` (either may be missing: ``until`` defaults to
    ``now``, ``since`` to 24 h before ``until``)."""
    end = parse_time(until, now) if isinstance(until, str) else until or now
    start = parse_time(since, now) if isinstance(since, str) else since or end - DEFAULT_PERIOD
    return Period(start.astimezone(UTC), end.astimezone(UTC))


# --- secrets ---------------------------------------------------------------------------


def secret_values(config: PipelineConfig) -> list[str]:
    """Every secret the pipeline file holds (tokens, passwords, webhook URLs with their
    path and query, S3 keys, secret Kafka properties), longest first: what a report must
    never show."""
    from dataplump.config.models import _SECRET_PROPERTY, SecretUrl, url_secrets

    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, SecretUrl):
            url = value.get_secret_value()
            found.add(url)
            found.update(url_secrets(url))  # its password and the query's credentials
        elif isinstance(value, SecretStr):
            secret = value.get_secret_value()
            found.add(secret)
            if "://" in secret:  # a webhook URL: its path and query may hold the token
                rest = secret.split("://", 1)[1]
                path = rest.partition("/")[2]
                found.update(p for p in (path, path.partition("?")[2]) if len(p) >= 6)
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, str) and _SECRET_PROPERTY.search(str(key)):
                    found.add(item)
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(config)
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***`` (and URL passwords masked)."""
    from dataplump.notify.events import redact

    for secret in secrets:
        text = text.replace(secret, MASK)
    return redact(text)


# --- the model -------------------------------------------------------------------------


@dataclass
class Figure:
    """A count in the period, the same count in the previous period, and the change."""

    value: int
    previous: int

    @property
    def change(self) -> int:
        return self.value - self.previous

    @property
    def change_pct(self) -> float | None:
        """The change as a share of the previous value (None when that was 0)."""
        return self.change / self.previous if self.previous else None

    def describe_change(self, short: bool = False) -> str:
        """``+1,234 (+12.5%)``, ``-3 (-50.0%)``, ``+20 (was 0)``, ``±0``; ``short``:
        ``+1,234, +12.5%`` (for a cell that puts it in brackets itself)."""
        if self.change == 0:
            return "±0"
        pct = self.change_pct
        relative = "was 0" if pct is None else f"{pct:+.1%}"
        return f"{self.change:+,}, {relative}" if short else f"{self.change:+,} ({relative})"


@dataclass
class TableFigures:
    """Key figures of one table for the period."""

    table: str
    extracted: Figure
    loaded: Figure
    invalid: Figure
    failed: Figure
    newest: str | None = None
    """The newest ``_dp_extracted_at`` of the curated table before the period's end."""
    age_seconds: float | None = None
    """Its age at the end of the period (or now, when that is earlier)."""
    ledger: dict[str, Any] | None = None
    """The cumulative ledger of the table (None without Kafka)."""

    @property
    def quarantined_share(self) -> float | None:
        """Invalid + failed, of the rows extracted in the period (or, with no extract run
        in it, of loaded + invalid + failed)."""
        rejected = self.invalid.value + self.failed.value
        base = self.extracted.value or self.loaded.value + rejected
        return rejected / base if base else None

    def figure(self, name: str) -> Figure:
        value: Figure = getattr(self, name)
        return value


@dataclass
class Report:
    """Everything a report shows, computed; the renderers only lay it out."""

    pipeline: str
    generated_at: datetime
    period: Period
    tables: list[str]
    figures: list[TableFigures]
    totals: TableFigures
    ledger_error: str | None
    ledger_ok: bool | None
    reasons: list[dict[str, Any]]
    more_reasons: int
    incidents: list[dict[str, Any]]
    more_incidents: int
    incident_counts: dict[str, int]
    charts: list[dict[str, Any]]
    headline: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resolve_after: float = 3600.0
    all_tables: list[str] = field(default_factory=list)
    """Every table of the pipeline (``tables`` may be fewer)."""

    @property
    def previous(self) -> Period:
        return self.period.previous

    @property
    def limited(self) -> bool:
        """Whether the report covers only some of the pipeline's tables."""
        return len(self.tables) < len(self.all_tables)


def _figure(now: Any, before: Any, table: str, key: str | None) -> Figure:
    def pick(found: dict[str, Any]) -> int:
        value = found.get(table, {} if key else 0)
        return int(value.get(key, 0) if key else value)

    return Figure(pick(now), pick(before))


def _figures(
    snapshot: data.Snapshot, tables: list[str], period: Period, at: datetime
) -> list[TableFigures]:
    """Key figures of every table in ``tables``: this period against the previous one."""
    both = (period, period.previous)
    extracted = [data.extracted_counts(snapshot, p.since, p.until) for p in both]
    loaded = [data.curated_counts(snapshot, p.since, p.until) for p in both]
    rejected = [data.rejected_counts(snapshot, p.since, p.until) for p in both]
    fresh = data.freshness(snapshot, at, before=period.until)
    found = []
    for table in tables:
        entry = TableFigures(
            table=table,
            extracted=_figure(extracted[0], extracted[1], table, "read"),
            loaded=_figure(loaded[0], loaded[1], table, None),
            invalid=_figure(rejected[0], rejected[1], table, "invalid"),
            failed=_figure(rejected[0], rejected[1], table, "failed"),
            **fresh.get(table, {}),
        )
        if snapshot.ledger is not None and table in snapshot.ledger:
            ledger = snapshot.ledger[table]
            entry.ledger = {
                "read": ledger["read"],
                "loaded": ledger["loaded"],
                "in_dlq": ledger["in_dlq"],
                "in_failed": ledger["in_failed"],
                "filtered": ledger["filtered_total"],
                "in_flight": ledger["in_flight_total"],
                "gap": ledger["gap"],
            }
        found.append(entry)
    return found


def _totals(figures: list[TableFigures]) -> TableFigures:
    def add(name: str) -> Figure:
        parts = [f.figure(name) for f in figures]
        return Figure(sum(p.value for p in parts), sum(p.previous for p in parts))

    ledgers = [f.ledger for f in figures]
    ledger = None
    if ledgers and all(lg is not None for lg in ledgers):
        ledger = {k: sum(lg[k] for lg in ledgers if lg is not None) for k in ledgers[0] or {}}
    return TableFigures(
        "all tables",
        extracted=add("extracted"),
        loaded=add("loaded"),
        invalid=add("invalid"),
        failed=add("failed"),
        ledger=ledger,
    )


def _reasons(
    snapshot: data.Snapshot, tables: list[str], period: Period, figures: list[TableFigures]
) -> tuple[list[dict[str, Any]], int]:
    """The rules that fired most in the period: records, share of the table's rejected
    records, and the count in the previous period."""
    rejected = {f.table: f.invalid.value + f.failed.value for f in figures}
    now = data.rejects_by_rule(snapshot, period.since, period.until)
    before = {
        (r["rule"], r["table"], r["store"]): int(r["records"])
        for r in data.rejects_by_rule(snapshot, period.previous.since, period.previous.until)
    }
    rows = []
    for r in now:
        if r["table"] not in rejected:
            continue
        records = int(r["records"])
        total = rejected[r["table"]]
        rows.append(
            {
                "rule": r["rule"],
                "table": r["table"],
                "store": "dead-letter" if r["store"] == "dlq" else "failed",
                "records": records,
                "share": records / total if total else None,
                "previous": before.get((r["rule"], r["table"], r["store"]), 0),
            }
        )
    return rows[:TOP_REASONS], max(0, len(rows) - TOP_REASONS)


def _incidents(
    snapshot: data.Snapshot,
    config: PipelineConfig,
    tables: list[str],
    period: Period,
    at: datetime,
) -> tuple[list[dict[str, Any]], int, dict[str, int]]:
    """Incidents opened or resolved in the period, or open at its end (as they stood
    then), with how far their notifications got."""
    resolve_after = config.notify.grouping.resolve_after
    found = data.incidents(snapshot, resolve_after, now=at, before=period.until)
    chosen, counts = [], {"opened": 0, "resolved": 0, "open": 0}
    for incident in found:
        if incident["table"] is not None and incident["table"] not in tables:
            continue
        opened_in = _within(incident["first_seen"], period)
        resolved_in = _within(incident["resolved_at"], period)
        is_open = incident["status"] == "open"
        if not (opened_in or resolved_in or is_open):
            continue
        counts["opened"] += opened_in
        counts["resolved"] += resolved_in
        counts["open"] += is_open
        state = data.delivery_state(snapshot, incident)
        chosen.append({**incident, "opened_in": opened_in, "delivery": state})
    chosen.sort(key=lambda i: i["status"] != "open")  # open first, each newest first
    return chosen[:MAX_INCIDENTS], max(0, len(chosen) - MAX_INCIDENTS), counts


def _within(value: str | None, period: Period) -> bool:
    """Whether the ISO time ``value`` is in ``period``."""
    if value is None:
        return False
    return period.since <= datetime.fromisoformat(value) < period.until


def _charts(
    snapshot: data.Snapshot, config: PipelineConfig, tables: list[str], at: datetime
) -> list[dict[str, Any]]:
    """The declared charts over the chosen tables: rows, spec, warnings (as the
    dashboard's Data page shows them)."""
    from dataplump.present import charts

    present = config.present
    over = data.overview(snapshot, config, at)
    everything = list(config.tables)
    found = []
    for chart in present.charts:
        used = data.chart_tables(chart, everything)
        if used and not set(used) & set(tables):
            continue
        entry: dict[str, Any] = {
            "name": chart.name,
            "title": chart.title or chart.name,
            "description": chart.description,
            "kind": chart.kind,
            "tables": used,
            "warnings": data.warnings_for(used, over, present.quarantine_warning),
        }
        try:
            rows = data.chart_rows(snapshot, chart)
            entry |= {"rows": len(rows), "spec": charts.declared_chart(chart, rows), "error": None}
        except data.DashboardError as exc:
            entry |= {"rows": 0, "spec": None, "error": str(exc)}
        found.append(entry)
    return found


def _headline(report: Report) -> list[str]:
    t = report.totals
    lines = []
    share = t.quarantined_share
    lines.append(
        f"{t.extracted.value:,} rows extracted, {t.loaded.value:,} loaded,"
        f" {t.invalid.value:,} invalid and {t.failed.value:,} failed"
        + (f" ({share:.1%} quarantined)" if share is not None else "")
        + f"; the previous period extracted {t.extracted.previous:,}"
        + (f" ({t.extracted.describe_change(short=True)})." if t.extracted.previous else ".")
    )
    if report.ledger_ok is None:
        lines.append(f"Ledger missing: {report.ledger_error or 'not read'}.")
    elif report.ledger_ok:
        lines.append("Ledger balanced: every row read is loaded, kept or in flight (gap 0).")
    else:
        gaps = ", ".join(
            f"{f.table} {f.ledger['gap']:+,}"
            for f in report.figures
            if f.ledger and f.ledger["gap"]
        )
        lines.append(f"Ledger out of balance: rows unaccounted for in {gaps}.")
    c = report.incident_counts
    lines.append(
        f"{c['opened']:,} incident{'s' if c['opened'] != 1 else ''} opened and"
        f" {c['resolved']:,} resolved in the period; {c['open']:,} open at its end."
    )
    if report.reasons:
        top = report.reasons[0]
        share_text = f", {top['share']:.0%} of its rejected rows" if top["share"] else ""
        lines.append(
            f"Most frequent reason: `{top['rule']}` on {top['table']}"
            f" ({top['records']:,} records{share_text})."
        )
    return lines


def build_report(
    config: PipelineConfig,
    snapshot: data.Snapshot,
    period: Period,
    *,
    tables: list[str] | None = None,
    now: datetime | None = None,
) -> Report:
    """The report of ``period`` over ``snapshot`` (``tables``: a subset, default all);
    how far each incident's notifications got is the snapshot's ``delivery``."""
    chosen = check_tables(config, tables)
    generated = now or datetime.now(UTC)
    at = min(period.until, generated)
    figures = _figures(snapshot, chosen, period, at)
    reasons, more_reasons = _reasons(snapshot, chosen, period, figures)
    incidents, more_incidents, counts = _incidents(snapshot, config, chosen, period, at)
    gaps = [f.ledger["gap"] for f in figures if f.ledger is not None]
    ledger_ok = None if snapshot.ledger is None or len(gaps) < len(figures) else not any(gaps)
    report = Report(
        pipeline=config.name,
        generated_at=generated,
        period=period,
        tables=chosen,
        figures=figures,
        totals=_totals(figures),
        ledger_error=snapshot.ledger_error if snapshot.ledger is None else None,
        ledger_ok=ledger_ok,
        reasons=reasons,
        more_reasons=more_reasons,
        incidents=incidents,
        more_incidents=more_incidents,
        incident_counts=counts,
        charts=_charts(snapshot, config, chosen, at),
        resolve_after=config.notify.grouping.resolve_after,
        all_tables=list(config.tables),
    )
    report.headline = _headline(report)
    report.notes = [f"could not read `{t}`: {e}" for t, e in snapshot.errors.items()]
    return report


def check_tables(config: PipelineConfig, tables: Iterable[str] | None) -> list[str]:
    """``tables`` (default: all of the pipeline), each checked against the pipeline file."""
    from difflib import get_close_matches

    if not tables:
        return list(config.tables)
    chosen = list(dict.fromkeys(tables))
    for table in chosen:
        if table not in config.tables:
            close = get_close_matches(table, list(config.tables), n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise ReportInputError(
                f"no table `{table}` in the pipeline; {hint}(tables: {', '.join(config.tables)})"
            )
    return chosen


# --- reading ---------------------------------------------------------------------------


def read_for_report(config: PipelineConfig, bootstrap: str | None = None) -> data.Snapshot:
    """The lake, and the ledger and the notifier's delivery state when Kafka answers
    (within a few seconds); without Kafka the snapshot says why they are missing."""
    from dataplump.services.kafka import metadata_ok

    if bootstrap is None:
        from dataplump.pipeline.cluster import bootstrap_for

        bootstrap = bootstrap_for(config, start=False)
    client = config.kafka.client_config(bootstrap)
    client.pop("bootstrap.servers", None)
    if not metadata_ok(bootstrap, 3.0, client):
        snapshot = data.read_snapshot(config, None, ledger=True)
        why = f"Kafka at {bootstrap} does not answer"
        snapshot.ledger_error = f"{why}; this report is from the lake alone"
        snapshot.delivery_error = why
        return snapshot
    return data.read_snapshot(config, bootstrap, ledger=True)


def output_path(path: str | Path | None, fmt: str | None) -> tuple[Path, Format]:
    """The file to write and its format: ``fmt``, else the suffix of ``path``, else pdf;
    ``path`` defaults to ``report.<format>``."""
    if fmt is None:
        suffix = Path(path).suffix.lower().lstrip(".") if path is not None else ""
        fmt = {"htm": "html", "markdown": "md"}.get(suffix, suffix) or "pdf"
        if fmt not in FORMATS:
            raise ReportInputError(
                f"cannot tell the format from `{path}`: give --format (html, pdf or md)"
            )
    if fmt not in FORMATS:
        raise ReportInputError(f"unknown format `{fmt}` (html, pdf or md)")
    target = Path(path) if path is not None else Path(f"report.{fmt}")
    return target, fmt  # type: ignore[return-value]


def write_report(
    config: PipelineConfig,
    path: str | Path | None,
    fmt: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    tables: Iterable[str] | None = None,
    snapshot: data.Snapshot | None = None,
    *,
    now: datetime | None = None,
) -> Path:
    """Write the report of ``[since, until)`` (default: the last 24 h) to ``path``
    (default ``report.<fmt>``; the format from its suffix when ``fmt`` is None) and
    return the path. ``snapshot``: one already read (else the lake, and Kafka if it
    answers within a few seconds). ``since``/``until``: datetimes, or text as
    :func:`parse_time` reads it. Raises :class:`ReportInputError` for a wrong period,
    table, format or path."""
    return make_report(config, path, fmt, since, until, tables, snapshot, now=now)[0]


def make_report(
    config: PipelineConfig,
    path: str | Path | None,
    fmt: str | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    tables: Iterable[str] | None = None,
    snapshot: data.Snapshot | None = None,
    *,
    now: datetime | None = None,
) -> tuple[Path, Report]:
    """:func:`write_report`, returning the :class:`Report` written too."""
    from dataplump.present import report_render

    target, chosen = output_path(path, fmt)
    generated = now or datetime.now(UTC)
    period = resolve_period(since, until, generated)
    selected = check_tables(config, tables)
    _check_writable(target)
    if snapshot is None:
        snapshot = read_for_report(config)
    report = build_report(config, snapshot, period, tables=selected, now=generated)
    report_render.write(report, target, chosen, secret_values(config))
    return target, report


def _check_writable(target: Path) -> None:
    folder = target.parent if str(target.parent) else Path()
    if target.is_dir():
        raise ReportInputError(f"cannot write the report to {target}: it is a folder")
    if not folder.is_dir():
        raise ReportInputError(f"cannot write the report to {target}: no folder {folder}")
    import os

    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise ReportInputError(f"cannot write the report to {target}: permission denied")


def iter_figures(report: Report) -> Iterator[tuple[str, str, Figure]]:
    """(table, figure name, figure) of every key figure, the totals last."""
    for entry in [*report.figures, report.totals]:
        for name in FIGURES:
            yield entry.table, name, entry.figure(name)


__all__ = [
    "FORMATS",
    "Figure",
    "Period",
    "Report",
    "ReportError",
    "ReportInputError",
    "TableFigures",
    "build_report",
    "make_report",
    "parse_time",
    "read_for_report",
    "resolve_period",
    "scrub",
    "secret_values",
    "write_report",
]
