"""Notifications as words: one line a person can act on, and the payload of each channel.

    shop.orders: 42 invalid records in the last 5 min (not_null(customer_id): 40,
    min(amount): 2) — contract v3 — sample keys 17, 23, 99 — records kept in
    shop.orders.dlq; fix the source or the contract, then replay

:func:`summary` is that line (the log channel prints it, Slack's ``text``, the
webhook's ``summary``, the e-mail's first line); :func:`title` a short form for
subjects and headers; :func:`details` the facts as label/value pairs.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from dataplump import __version__
from dataplump.notify.incidents import Incident, Notification

MAX_RULES_SHOWN = 5
MALFORMED_RULE = "malformed_alert_event"
"""Rule of the alert ``dataplump notify`` raises itself for a record that is not an event."""
WEBHOOK_SCHEMA = "dataplump.notification/v1"

_NOUNS = {
    "invalid_records": ("invalid record", "invalid records"),
    "failed_records": ("failed record", "failed records"),
    "source_warning": ("source warning", "source warnings"),
    "stage_error": ("failure", "failures"),
}
_ACTIONS = {
    "invalid_records": "fix the source or the contract, then replay",
    "failed_records": "fix the transform step or the output contract, then replay",
    "source_warning": "check the source",
}
_STATUS = {
    "firing": "FIRING",
    "update": "UPDATE",
    "repeat": "STILL FIRING",
    "resolved": "RESOLVED",
}


def _noun(kind: str, count: int) -> str:
    one, many = _NOUNS.get(kind, ("alert", "alerts"))
    return one if count == 1 else many


def _action(incident: Incident) -> str:
    if incident.rule == MALFORMED_RULE:
        return "the record was skipped: check what writes to the alerts topic"
    if incident.kind == "stage_error":
        return f"see the {incident.stage} log, fix the cause, then rerun {incident.stage}"
    return _ACTIONS.get(incident.kind, "have a look")


def _utc(moment: datetime | float) -> datetime:
    if isinstance(moment, datetime):
        return moment.astimezone(UTC)
    return datetime.fromtimestamp(moment, UTC)


def _when(moment: datetime | float, reference: datetime | float) -> str:
    """``10:07 UTC``, with the date when it is not ``reference``'s day."""
    at, ref = _utc(moment), _utc(reference)
    return at.strftime("%H:%M UTC" if at.date() == ref.date() else "%Y-%m-%d %H:%M UTC")


def _between(first: datetime, last: datetime, reference: float) -> str:
    """``between 10:02 and 10:07 UTC`` (dates added when not ``reference``'s day)."""
    start, end = _when(first, reference), _when(last, reference)
    if start == end:
        return f"at {start}"
    if start.endswith(" UTC") and len(start) == len(end) == len("10:02 UTC"):
        start = start.removesuffix(" UTC")
    return f"between {start} and {end}"


def _span(seconds: float) -> str:
    """``in the last 5 min``, rounded up; a minute or less is ``in the last minute``."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes == 1:
        return "in the last minute"
    if minutes < 120:
        return f"in the last {minutes} min"
    return f"in the last {math.ceil(minutes / 60)} h"


def rules_text(counts: dict[str, int], new: tuple[str, ...] = ()) -> str:
    """``not_null(customer_id): 40, min(amount): 2``, most broken first, new rules marked."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    shown = [f"{'new ' if rule in new else ''}{rule}: {n:,}" for rule, n in ordered]
    if len(shown) > MAX_RULES_SHOWN:
        shown = [*shown[:MAX_RULES_SHOWN], f"... and {len(shown) - MAX_RULES_SHOWN} more"]
    return ", ".join(shown)


def _version(version: str) -> str:
    return f"v{version}" if version[:1].isdigit() else version


def _facts(incident: Incident) -> list[str]:
    facts = []
    if incident.contract_versions:
        versions = ", ".join(_version(v) for v in incident.contract_versions)
        facts.append(f"contract{'s' if len(incident.contract_versions) > 1 else ''} {versions}")
    if incident.sample_keys:
        facts.append("sample keys " + ", ".join(incident.sample_keys))
    if everyone := incident.everyone:
        facts.append(f"owner{'s' if len(everyone) > 1 else ''} {', '.join(everyone)}")
    return facts


def _headline(n: Notification) -> str:
    """The part after ``subject: `` that says what happened and over which time."""
    inc = n.incident
    count, noun = inc.count, _noun(inc.kind, inc.count)
    stage = f" at {inc.stage}" if inc.stage != "extract" and inc.kind != "stage_error" else ""
    rules = f" ({rules_text(inc.counts_by_rule, n.new_rules)})" if inc.counts_by_rule else ""
    rule = f" ({inc.rule})" if inc.rule and not inc.counts_by_rule else ""
    message = f": {inc.message}" if inc.message else ""
    if n.kind == "resolved":
        span = _between(inc.first_seen, inc.last_seen, n.at)
        what = f"{inc.stage} {noun}" if inc.kind == "stage_error" else noun
        return (
            f"resolved — no new {_noun(inc.kind, 2)}{stage} since {_when(inc.last_seen, n.at)};"
            f" {count:,} {what} {span}{rules}{rule}"
        )
    if n.kind == "firing":
        window = _span((inc.last_seen - inc.first_seen).total_seconds())
    else:
        added = count - n.previous_count
        since_last = f", +{added:,} since the last notice" if added > 0 else ""
        window = f"since {_when(inc.first_seen, n.at)}{since_last}"
    prefix = {"firing": "", "update": "update — ", "repeat": "still happening — "}[n.kind]
    if inc.kind == "stage_error":
        times = "once" if count == 1 else f"{count:,} times"
        return f"{prefix}{inc.stage} failed {times} {window}{rule}{message}"
    return f"{prefix}{count:,} {noun}{stage} {window}{rules}{rule}{message}"


def summary(n: Notification) -> str:
    """The one line a person reads and acts on."""
    inc = n.incident
    parts = [f"{inc.subject}: {_headline(n)}", *_facts(inc)]
    kept = f"records kept in {inc.kept_in}; " if inc.kept_in else ""
    if n.kind == "resolved":
        if inc.kept_in:
            parts.append(f"records kept in {inc.kept_in}; replay them once the cause is fixed")
    elif inc.kind == "stage_error":
        parts.append(f"run {inc.run_id}; {_action(inc)}" if inc.run_id else _action(inc))
    else:
        parts.append(kept + _action(inc))
    return " — ".join(parts)


def title(n: Notification) -> str:
    """A short line for a subject or a header: ``[FIRING] shop.orders: 42 invalid records``."""
    inc = n.incident
    if inc.kind == "stage_error":
        what = f"{inc.stage} failed" + ("" if inc.count == 1 else f" {inc.count:,} times")
    else:
        what = f"{inc.count:,} {_noun(inc.kind, inc.count)}"
        if inc.stage != "extract":
            what += f" at {inc.stage}"
    return f"[{_STATUS[n.kind]}] {inc.subject}: {what}"


def details(n: Notification) -> list[tuple[str, str]]:
    """The incident's facts as (label, value) pairs, for fields and e-mail bodies."""
    inc = n.incident
    rows = [
        ("pipeline", inc.pipeline),
        ("table", inc.table or "-"),
        ("stage", inc.stage),
        ("kind", inc.kind),
        ("count", f"{inc.count:,}"),
    ]
    if inc.counts_by_rule:
        rows.append(("by rule", rules_text(inc.counts_by_rule, n.new_rules)))
    if inc.rule:
        rows.append(("rule", inc.rule))
    if inc.message:
        rows.append(("message", inc.message))
    rows.append(("first seen", _utc(inc.first_seen).strftime("%Y-%m-%d %H:%M:%S UTC")))
    rows.append(("last seen", _utc(inc.last_seen).strftime("%Y-%m-%d %H:%M:%S UTC")))
    if inc.sample_keys:
        rows.append(("sample keys", ", ".join(inc.sample_keys)))
    if inc.contract_versions:
        rows.append(("contract", ", ".join(_version(v) for v in inc.contract_versions)))
    if inc.kept_in:
        rows.append(("kept in", inc.kept_in))
    if everyone := inc.everyone:
        rows.append(("owners" if len(everyone) > 1 else "owner", ", ".join(everyone)))
    if inc.run_id:
        rows.append(("run", inc.run_id))
    rows.append(("incident", f"{inc.id} ({n.kind}, notice {n.id})"))
    return rows


def _iso(moment: datetime | float | None) -> str | None:
    return None if moment is None else _utc(moment).isoformat().replace("+00:00", "Z")


def webhook_payload(n: Notification) -> dict[str, Any]:
    """The JSON body a generic webhook receives (schema ``dataplump.notification/v1``)."""
    inc = n.incident
    return {
        "schema": WEBHOOK_SCHEMA,
        "id": n.id,
        "notification": n.kind,
        "status": "resolved" if n.resolved else "firing",
        "title": title(n),
        "summary": summary(n),
        "new_rules": list(n.new_rules),
        "previous_count": n.previous_count,
        "sent_at": _iso(n.at),
        "incident": {
            "id": inc.id,
            "pipeline": inc.pipeline,
            "table": inc.table,
            "stage": inc.stage,
            "kind": inc.kind,
            "rule": inc.rule,
            "fingerprint": inc.fingerprint,
            "count": inc.count,
            "events": inc.events,
            "counts_by_rule": dict(inc.counts_by_rule),
            "sample_keys": list(inc.sample_keys),
            "contract_versions": list(inc.contract_versions),
            "owner": inc.owner,
            "owners": inc.everyone,
            "run_id": inc.run_id,
            "kept_in": inc.kept_in,
            "message": inc.message,
            "first_seen": _iso(inc.first_seen),
            "last_seen": _iso(inc.last_seen),
            "opened_at": _iso(inc.opened_at),
            "resolved_at": _iso(inc.resolved_at),
        },
        "sender": f"dataplump {__version__}",
    }


def _mrkdwn(text: str) -> str:
    """Text safe inside Slack ``mrkdwn``: only ``&``, ``<`` and ``>`` need escaping."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def slack_payload(n: Notification) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the summary) and Block Kit ``blocks``.

    Within Slack's limits: header 150 characters, section text 3000, at most 10
    fields of 2000.
    """
    emoji = {"firing": ":rotating_light:", "update": ":arrows_counterclockwise:"}
    fields = [
        {"type": "mrkdwn", "text": _cut(f"*{label}*\n{_mrkdwn(value)}", 2000)}
        for label, value in details(n)
        if label not in ("pipeline", "incident")
    ][:10]
    return {
        "text": _cut(_mrkdwn(summary(n)), 3000),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": _cut(title(n), 150), "emoji": True},
            },
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": _cut(
                        f"{emoji.get(n.kind, ':white_check_mark:' if n.resolved else ':bell:')} "
                        + _mrkdwn(summary(n)),
                        3000,
                    ),
                },
            },
            {"type": "section", "fields": fields},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": _mrkdwn(
                            f"DataPlump · pipeline {n.incident.pipeline} · incident "
                            f"{n.incident.id} · notice {n.id}"
                        ),
                    }
                ],
            },
        ],
    }


def email_message(n: Notification, *, sender: str, to: tuple[str, ...] | list[str]) -> EmailMessage:
    """A plain-text e-mail; notices of one incident share ``References`` to thread together."""
    message = EmailMessage()
    message["Subject"] = title(n)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = format_datetime(_utc(n.at))
    message["Message-ID"] = f"<{n.id}@dataplump>"
    message["References"] = f"<{n.incident.id}@dataplump>"
    message["X-DataPlump-Incident"] = n.incident.id
    message["X-DataPlump-Notification"] = n.kind
    width = max(len(label) for label, _ in details(n))
    body = "\n".join(f"{label + ':':<{width + 1}} {value}" for label, value in details(n))
    message.set_content(f"{summary(n)}\n\n{body}\n\n-- \nDataPlump {__version__} notify\n")
    return message
