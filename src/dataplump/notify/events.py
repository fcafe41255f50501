"""Alert events: what a stage puts on ``<pipeline>.alerts`` when something needs a person.

A stage never sends one message per bad row: after checking a batch it builds one
:class:`AlertEvent` that summarizes it (how many records, how many per rule, a few
sample keys) and queues it with :func:`produce_alert` on its own producer, inside
the transaction that writes the batch and its DLQ records. The event is visible
exactly when those records are, and producing it costs the stage one queued record:
delivery to people happens later, in ``dataplump notify``, and never slows a stage.

    >>> from dataplump.notify.events import records_alert, encode, decode
    >>> event = records_alert(
    ...     "shop", "orders", stage="extract", count=42,
    ...     counts_by_rule={"not_null(customer_id)": 40, "min(amount)": 2},
    ...     sample_keys=[17, 23, 99], contract_version="3", kept_in="shop.orders.dlq",
    ... )
    >>> decode(encode(event)) == event
    True
    >>> alert_topic("shop")
    'shop.alerts'

The value is a JSON object (schema in ``docs/notify.md``); the record key is the
incident key, so every event of one incident lands on the same partition.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    ValidationError,
    model_validator,
)

from dataplump.bus.kafka import Producer
from dataplump.notify.errors import MalformedAlertError
from dataplump.pipeline import topics

SCHEMA_VERSION = 1
"""Version of the event schema this code writes and reads (field ``v``)."""
MAX_SAMPLE_KEYS = 5
"""An event, and an incident, keeps at most this many sample keys."""
MAX_TEXT = 500
"""Longest ``message`` (and rule name) kept, in characters; longer text is cut with ``…``."""

AlertKind = Literal["invalid_records", "failed_records", "source_warning", "stage_error", "cleared"]
"""What happened: rows that broke the contract (kept in the DLQ), rows a transform step
or the output contract rejected (kept in ``<pipeline>.failed``), a warning from the
source, a stage that failed — or ``cleared``: a replay sent every kept record of a table
back, which resolves the incident of the kind named in ``rule``."""
ALERT_KINDS: tuple[AlertKind, ...] = (
    "invalid_records",
    "failed_records",
    "source_warning",
    "stage_error",
    "cleared",
)

IncidentKey = tuple[str, str | None, str, str, str | None, str]
"""(pipeline, table, stage, kind, rule, fingerprint): events with the same key are one incident."""

# `postgresql://user:secret@host` -> `postgresql://user:***@host`; `password=x` -> `password=***`
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
_KEY_VALUE_SECRET = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|secret|token|api[_-]?key)\s*[=:]\s*)[^\s,;&]+",
    re.IGNORECASE,
)
_VOLATILE = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]{8,}\b|\d+")


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cut_optional(value: Any) -> Any:
    return _cut(value) if isinstance(value, str) else value


def _keys(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_key(k) for k in value[:MAX_SAMPLE_KEYS])
    return value


def _key(key: object) -> str:
    if isinstance(key, bytes):
        return _cut(key.decode("utf-8", "replace"), 200)
    if isinstance(key, list | tuple):
        return ",".join(_key(part) for part in key)
    return _cut(str(key), 200)


Text = Annotated[str, BeforeValidator(_cut_optional), Field(min_length=1)]
OptionalText = Annotated[str | None, BeforeValidator(_cut_optional)]


class AlertEvent(BaseModel):
    """One alert event: the summary of one batch (or one failure) of one table at one stage.

    Events with the same :attr:`key` are one incident; ``dataplump notify`` adds them
    up. Unknown fields are ignored when reading, so a newer producer can add fields.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    v: int = SCHEMA_VERSION
    """Schema version; readers refuse versions newer than theirs."""
    pipeline: Annotated[str, Field(min_length=1, max_length=100)]
    """Pipeline name."""
    table: Annotated[str | None, Field(max_length=200)] = None
    """Source table, or none for an alert about a whole stage."""
    stage: Annotated[str, Field(min_length=1, max_length=50)]
    """Stage that raised it: `extract`, `transform`, `load` (or `notify` itself)."""
    kind: AlertKind
    """What happened (see :data:`AlertKind`)."""
    rule: OptionalText = None
    """The one rule or check the event is about, when it is about one (a source warning's
    code, a failed step); none for a batch summary, whose rules are in `counts_by_rule`."""
    fingerprint: Annotated[str, Field(min_length=1, max_length=64)]
    """Stable identity of the problem (see :func:`fingerprint`): same fingerprint, same
    incident."""
    count: NonNegativeInt
    """Records affected (a record that breaks two rules counts once), or occurrences of an
    error or warning."""
    counts_by_rule: dict[Text, NonNegativeInt] = Field(default_factory=dict)
    """Per broken rule (e.g. `not_null(customer_id)`), the records that broke it."""
    sample_keys: Annotated[tuple[str, ...], BeforeValidator(_keys)] = ()
    """Up to 5 keys of affected records, so a person can look at them."""
    contract_version: OptionalText = None
    """Version of the contract the records were checked against."""
    owner: OptionalText = None
    """Team or person responsible for the table, for routing (e.g. `@data-team`)."""
    owners: Annotated[tuple[Text, ...], Field(max_length=20)] = ()
    """Owners of the broken rules (rule, column or contract `owner`), for routing."""
    first_seen: AwareDatetime
    """When the first record or failure of this event was seen."""
    last_seen: AwareDatetime
    """When the last one was seen."""
    run_id: OptionalText = None
    """The stage run that raised it (header `dp.run` of the records)."""
    kept_in: OptionalText = None
    """Kafka topic where the affected records are kept (`shop.orders.dlq`, `shop.failed`)."""
    message: OptionalText = None
    """One line for a person (an error's text, a warning); secrets already redacted."""

    @model_validator(mode="after")
    def _ordered_times(self) -> AlertEvent:
        if self.last_seen < self.first_seen:
            raise ValueError("last_seen is before first_seen")
        return self

    @property
    def key(self) -> IncidentKey:
        """The incident this event belongs to."""
        return (self.pipeline, self.table, self.stage, self.kind, self.rule, self.fingerprint)


def alert_topic(pipeline: str) -> str:
    """The Kafka topic alert events of ``pipeline`` go to: ``<pipeline>.alerts``."""
    return topics.alerts(pipeline)


def encode(event: AlertEvent) -> bytes:
    """The event as the JSON value of a Kafka record."""
    return event.model_dump_json().encode()


def decode(value: bytes | str | None) -> AlertEvent:
    """Read an event from a record value; raise :class:`MalformedAlertError` if it is not one."""
    if value is None:
        raise MalformedAlertError("not an alert event: the record has no value")
    try:
        event = AlertEvent.model_validate_json(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise MalformedAlertError(f"not an alert event: {where}: {first['msg']}{more}") from None
    if event.v > SCHEMA_VERSION:
        raise MalformedAlertError(
            f"alert event schema v{event.v} is newer than this DataPlump reads"
            f" (v{SCHEMA_VERSION}); upgrade dataplump"
        )
    return event


def incident_key_bytes(key: IncidentKey) -> bytes:
    """The Kafka record key of an incident's events."""
    return "\x1f".join("" if part is None else part for part in key).encode()


def fingerprint(*parts: str | None) -> str:
    """A short stable hash (16 hex digits) identifying a problem from its parts."""
    text = "\x1f".join("" if part is None else part for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def error_fingerprint(error_type: str, message: str) -> str:
    """The fingerprint of an error: its type and its text with numbers and ids blanked.

    ``timeout after 30s on row 17`` and ``timeout after 31s on row 99`` are the same problem.
    """
    return fingerprint(error_type, _VOLATILE.sub("#", message))


def redact(text: str) -> str:
    """``text`` with URL passwords and ``password=...``/``token=...`` values masked."""
    text = _URL_PASSWORD.sub(r"\g<head>***@", text)
    return _KEY_VALUE_SECRET.sub(r"\g<head>***", text)


def _now() -> datetime:
    return datetime.now(UTC)


def records_alert(
    pipeline: str,
    table: str,
    *,
    stage: str,
    count: int,
    counts_by_rule: Mapping[str, int],
    sample_keys: Iterable[object] = (),
    kind: Literal["invalid_records", "failed_records"] = "invalid_records",
    contract_version: str | None = None,
    kept_in: str | None = None,
    owner: str | None = None,
    owners: Iterable[str] = (),
    run_id: str | None = None,
    first_seen: datetime | None = None,
    last_seen: datetime | None = None,
) -> AlertEvent:
    """The event for a batch with rejected records: call it once per batch, not per row.

    ``count`` is the number of rejected records (one breaking two rules counts once);
    ``counts_by_rule`` how many broke each rule; ``sample_keys`` a few of their keys
    (only the first 5 are kept; composite keys as tuples). Every batch of one table,
    stage and kind is one incident until it goes quiet, whatever rules break.
    """
    keys: list[object] = []
    for key in sample_keys:
        keys.append(key)
        if len(keys) == MAX_SAMPLE_KEYS:
            break
    first = first_seen or last_seen or _now()
    return AlertEvent(
        pipeline=pipeline,
        table=table,
        stage=stage,
        kind=kind,
        fingerprint=fingerprint(kind, pipeline, table, stage),
        count=count,
        counts_by_rule=dict(counts_by_rule),
        sample_keys=tuple(_key(k) for k in keys),
        contract_version=contract_version,
        owner=owner,
        owners=tuple(dict.fromkeys(owners)),
        first_seen=first,
        last_seen=last_seen or first,
        run_id=run_id,
        kept_in=kept_in,
    )


def error_alert(
    pipeline: str,
    *,
    stage: str,
    error: BaseException | str,
    table: str | None = None,
    kind: Literal["stage_error", "source_warning"] = "stage_error",
    rule: str | None = None,
    count: int = 1,
    owner: str | None = None,
    run_id: str | None = None,
    at: datetime | None = None,
) -> AlertEvent:
    """The event for a failed stage (or a source warning, with ``kind="source_warning"``).

    The message is the error's type and text with passwords redacted; the fingerprint
    ignores numbers and ids in it, so the same failure repeating is one incident.
    """
    if isinstance(error, BaseException):
        error_type, text = type(error).__name__, str(error) or type(error).__name__
        message = f"{error_type}: {text}"
    else:
        error_type, text = kind, error
        message = error
    message = redact(message)
    seen = at or _now()
    return AlertEvent(
        pipeline=pipeline,
        table=table,
        stage=stage,
        kind=kind,
        rule=rule,
        fingerprint=error_fingerprint(error_type, redact(text)),
        count=count,
        owner=owner,
        first_seen=seen,
        last_seen=seen,
        run_id=run_id,
        message=message,
    )


def cleared_alert(
    pipeline: str,
    table: str,
    *,
    stage: str,
    cleared: Literal["invalid_records", "failed_records"],
    count: int,
    run_id: str | None = None,
) -> AlertEvent:
    """The event that resolves the ``cleared`` incident of ``table`` at ``stage``: a replay
    sent its last kept record (``count`` in this replay) back into the flow."""
    now = _now()
    where = "dead-letter topic" if cleared == "invalid_records" else "failed store"
    return AlertEvent(
        pipeline=pipeline,
        table=table,
        stage=stage,
        kind="cleared",
        rule=cleared,
        fingerprint=fingerprint(cleared, pipeline, table, stage),
        count=count,
        first_seen=now,
        last_seen=now,
        run_id=run_id,
        message=f"replay {run_id} sent {count} record(s) back; nothing of {table} is left"
        f" in the {where}",
    )


def produce_alert(producer: Producer, event: AlertEvent) -> None:
    """Queue ``event`` on ``<pipeline>.alerts`` with the stage's own producer.

    Only queues (inside the stage's open transaction, if any): the stage's
    ``commit``/``flush`` delivers it with the batch. Never waits on a channel.
    """
    producer.produce(alert_topic(event.pipeline), encode(event), key=incident_key_bytes(event.key))
