"""Scheduled reports (``present.reports``): written to a folder or e-mailed by ``run``.

A schedule ``{every: 1d, format: pdf, to: reports/}`` is due at every whole multiple of
``every`` since 1970-01-01 UTC (``1d``: each midnight UTC); the report then covers the
period that just ended (``since`` long, default ``every``): ``report-2026-11-27.pdf``
covers the UTC day 2026-11-27. :func:`run_due_reports` writes or sends every report
whose time has come and remembers, per schedule, the end of the last period it
delivered, in a :class:`ReportState`; ``run``'s ``report`` stage keeps that state in the
compacted Kafka topic ``<pipeline>.report-state`` (:class:`KafkaReportState`), as the
other stages keep theirs, so a restart neither repeats a report nor skips the one due.

Only the newest due period is made: after a long stop, the periods missed in between
are not made up (``dataplump report --since ... --until ...`` makes any of them).
A report that fails (a full disk, an SMTP server down) is not remembered and is tried
again at the next wake-up. A report written but not yet remembered when the process
dies is written again after the restart: the same file name for a folder (replaced
whole), a second e-mail with the same ``Message-ID`` for an address.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from dataplump import __version__
from dataplump.errors import DataPlumpError
from dataplump.present.report import Period, Report, make_report

if TYPE_CHECKING:
    from dataplump.config import PipelineConfig
    from dataplump.config.models import ReportSchedule
    from dataplump.present.data import Snapshot

log = logging.getLogger(__name__)

RETRY_AFTER = 60.0
"""Seconds before a report that failed is tried again (while ``run`` runs)."""


class ReportDeliveryError(DataPlumpError):
    """A scheduled report could not be written or sent (tried again later)."""


def due_period(schedule: ReportSchedule, now: datetime) -> Period:
    """The newest period of ``schedule`` that has ended at ``now``."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    every = schedule.every
    boundary = epoch + timedelta(seconds=(now - epoch).total_seconds() // every * every)
    return Period(boundary - timedelta(seconds=schedule.period), boundary)


def next_due(schedule: ReportSchedule, now: datetime) -> datetime:
    """When the next period of ``schedule`` ends (after ``now``)."""
    return due_period(schedule, now).until + timedelta(seconds=schedule.every)


class ReportState:
    """When each schedule last delivered: the end of its last period, by schedule key.

    Kept in memory; subclasses persist it (:meth:`_save`).
    """

    def __init__(self, last: Mapping[str, datetime] | None = None) -> None:
        self._last = dict(last or {})

    def last(self, key: str) -> datetime | None:
        """The end of the last period delivered for schedule ``key``, or None."""
        return self._last.get(key)

    def remember(self, key: str, until: datetime) -> None:
        """Schedule ``key`` delivered the period ending at ``until``."""
        self._last[key] = until
        self._save(key, until)

    def _save(self, key: str, until: datetime) -> None:
        """Persist one change; in memory only by default."""


def state_topic(pipeline: str) -> str:
    """The compacted topic of the report stage's state: ``<pipeline>.report-state``."""
    return f"{pipeline}.report-state"


class KafkaReportState(ReportState):
    """The state in the compacted topic ``<pipeline>.report-state``, one record per
    schedule (key: the schedule's key; value: ``{"until": ISO time}``)."""

    def __init__(self, config: PipelineConfig, bootstrap: str) -> None:
        from dataplump.bus.kafka import Producer
        from dataplump.pipeline.state import ensure_state_topics, read_state

        self.topic = state_topic(config.name)
        self._client = config.kafka.client_config(bootstrap)
        self._client.pop("bootstrap.servers", None)
        ensure_state_topics(
            bootstrap,
            [self.topic],
            replication_factor=config.kafka.topic.replication_factor,
            extra=self._client,
        )
        stored = read_state(bootstrap, self.topic, extra=self._client)
        super().__init__(
            {key: datetime.fromisoformat(value["until"]) for key, value in stored.items()}
        )
        self._producer = Producer(bootstrap, extra=self._client)

    def _save(self, key: str, until: datetime) -> None:
        value = orjson.dumps({"until": until.isoformat(), "saved_at": datetime.now(UTC)})
        self._producer.produce(self.topic, value, key=key.encode())
        self._producer.flush(30)


@dataclass
class Outcome:
    """What :func:`run_due_reports` did with one due report."""

    schedule: str
    """The schedule's key."""
    period: Period
    to: str
    """The file written, or the address sent to."""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def file_name(schedule: ReportSchedule, period: Period) -> str:
    """``<name>-<period>.<format>``: ``report-2026-11-27.pdf``."""
    return f"{schedule.name}-{period.label}.{schedule.format}"


SnapshotReader = Callable[[], "Snapshot"]


def run_due_reports(
    config: PipelineConfig,
    now: datetime,
    state: ReportState,
    *,
    read: SnapshotReader | None = None,
) -> list[Outcome]:
    """Write or send every report of ``present.reports`` whose period has ended at
    ``now`` and was not delivered yet (per ``state``), and remember each one delivered.

    ``read`` gives the snapshot the reports share (read once, only when one is due);
    default: the lake, and the ledger when Kafka answers.
    """
    snapshot: Snapshot | None = None
    outcomes = []
    for schedule in config.present.reports:
        period = due_period(schedule, now)
        last = state.last(schedule.key)
        if last is not None and last >= period.until:
            continue
        if snapshot is None:
            snapshot = read() if read is not None else _read(config)
        what = f"`{schedule.name}` of {period.describe()}"
        try:
            if schedule.is_email:
                _send(config, schedule, period, snapshot, now)
                where, done = schedule.to, f"sent {what} to {schedule.to}"
            else:
                where = str(_write(config, schedule, period, snapshot, now))
                done = f"wrote {where} ({what})"
        except DataPlumpError as exc:
            log.warning("%s failed (tried again later): %s", what, exc)
            outcomes.append(Outcome(schedule.key, period, schedule.to, str(exc)))
            continue
        state.remember(schedule.key, period.until)
        log.info("%s", done)
        outcomes.append(Outcome(schedule.key, period, where))
    return outcomes


def seconds_until_due(config: PipelineConfig, now: datetime, state: ReportState) -> float:
    """Seconds from ``now`` until a schedule is next due (0 when one is due now)."""
    waits = []
    for schedule in config.present.reports:
        period = due_period(schedule, now)
        last = state.last(schedule.key)
        if last is None or last < period.until:
            return 0.0
        waits.append((next_due(schedule, now) - now).total_seconds())
    return max(0.0, min(waits, default=3600.0))


def _read(config: PipelineConfig) -> Snapshot:
    from dataplump.present.report import read_for_report

    return read_for_report(config)


def _write(
    config: PipelineConfig,
    schedule: ReportSchedule,
    period: Period,
    snapshot: Snapshot,
    now: datetime,
) -> Path:
    folder = schedule.folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportDeliveryError(
            f"cannot make the report folder {folder}: {exc.strerror}"
        ) from None
    target = folder / file_name(schedule, period)
    path, _ = make_report(
        config, target, schedule.format, period.since, period.until, schedule.tables,
        snapshot, now=now,
    )  # fmt: skip
    return path


def _send(
    config: PipelineConfig,
    schedule: ReportSchedule,
    period: Period,
    snapshot: Snapshot,
    now: datetime,
) -> None:
    from dataplump.notify.channels import SmtpChannel, build_channels
    from dataplump.notify.errors import NotifyError

    channel = next((c for c in build_channels(config.notify) if isinstance(c, SmtpChannel)), None)
    if channel is None:  # the config's validation makes this impossible
        raise ReportDeliveryError(f"no `email` channel in notify.channels to send to {schedule.to}")
    with tempfile.TemporaryDirectory(prefix="dataplump-report-") as folder:
        target = Path(folder) / file_name(schedule, period)
        path, made = make_report(
            config, target, schedule.format, period.since, period.until, schedule.tables,
            snapshot, now=now,
        )  # fmt: skip
        message = _message(config, schedule, made, path, channel.sender)
        try:
            channel.send_message(message)
        except NotifyError as exc:
            raise ReportDeliveryError(f"report to {schedule.to} not sent: {exc}") from None


def _message(
    config: PipelineConfig, schedule: ReportSchedule, made: Report, path: Path, sender: str
) -> EmailMessage:
    """The e-mail: the summary as text, the report (and a Markdown report's charts) attached."""
    from dataplump.present.report import scrub, secret_values

    message = EmailMessage()
    message["Subject"] = f"DataPlump {schedule.name}: {made.pipeline}, {made.period.describe()}"
    message["From"] = sender
    message["To"] = schedule.to
    message["Date"] = format_datetime(made.generated_at)
    digest = hashlib.sha256(f"{schedule.key}|{made.period.label}".encode()).hexdigest()[:24]
    message["Message-ID"] = f"<report-{digest}@dataplump>"  # the same for a repeat
    summary = "\n".join(f"- {line.replace('`', '')}" for line in made.headline)
    text = (
        f"{made.period.describe()}, pipeline {made.pipeline}.\n\n{summary}\n\n"
        f"The whole report is attached ({path.name}).\n\n-- \nDataPlump {__version__}\n"
    )
    message.set_content(scrub(text, secret_values(config)))
    attachments = [path]
    files = path.parent / f"{path.stem}_files"
    if files.is_dir():
        attachments += sorted(files.iterdir())
    for item in attachments:
        kind = {".md": "text/markdown", ".html": "text/html"}.get(item.suffix) or (
            mimetypes.guess_type(item.name)[0] or "application/octet-stream"
        )
        maintype, subtype = kind.split("/", 1)
        message.add_attachment(
            item.read_bytes(), maintype=maintype, subtype=subtype, filename=item.name
        )
    return message


def describe(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    """The outcomes as JSON-able dicts (for logs and the stage's events)."""
    return [
        {"schedule": o.schedule, "period": o.period.label, "to": o.to, "error": o.error}
        for o in outcomes
    ]


__all__ = [
    "KafkaReportState",
    "Outcome",
    "ReportDeliveryError",
    "ReportState",
    "due_period",
    "file_name",
    "next_due",
    "run_due_reports",
    "seconds_until_due",
    "state_topic",
]
