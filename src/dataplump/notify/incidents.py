"""Incidents: alert events grouped by what went wrong, and when to tell a person.

Events with the same key — (pipeline, table, stage, kind, rule, fingerprint) — are
one :class:`Incident`: its counts, counts by rule and sample keys add up. When to
notify follows Grafana/Alertmanager's timers (:class:`GroupingPolicy`):

- a new incident waits ``group_wait`` (30 s) for more events, then **fires**: the one page;
- more events of an open incident only update it, they do not page again;
- something *new* in an open incident (a rule not reported yet, a new contract
  version) sends an **update**, at most once per ``group_interval`` (5 min);
- an incident still open ``repeat_interval`` (4 h) after its last notification is
  **repeated**, with its new totals;
- an incident with no event for ``resolve_after`` (1 h) is **resolved**: one last
  notification, and the next event of that key opens a new incident.

:class:`Incidents` does no I/O and reads no clock: every call takes ``now`` (seconds
since the epoch), so the whole policy is tested with a fake clock.

    >>> from dataplump.notify.events import records_alert
    >>> incidents = Incidents(GroupingPolicy(group_wait=30))
    >>> event = records_alert("shop", "orders", stage="extract", count=2,
    ...                       counts_by_rule={"not_null(id)": 2})
    >>> _ = incidents.observe(event, now=1000.0)
    >>> incidents.due(now=1010.0)
    []
    >>> [n.kind for n in incidents.due(now=1030.0)]
    ['firing']
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

from dataplump.notify.events import MAX_SAMPLE_KEYS, AlertEvent, IncidentKey, fingerprint

NotificationKind = Literal["firing", "update", "repeat", "resolved"]
"""``firing``: the first notice of an incident (the page); ``update``: something new in it;
``repeat``: still open after ``repeat_interval``; ``resolved``: quiet for ``resolve_after``."""

MAX_CONTRACT_VERSIONS = 5


@dataclass(frozen=True)
class GroupingPolicy:
    """When incidents notify; every value in seconds (future config: ``notify.grouping``)."""

    group_wait: float = 30.0
    """A new incident waits this long for more events before its first notification."""
    group_interval: float = 300.0
    """At most one update per incident per this interval."""
    repeat_interval: float = 4 * 3600.0
    """An open incident is notified again after this long without a notification."""
    resolve_after: float = 3600.0
    """An incident with no event for this long is resolved. Make it longer than the gap
    between runs of a batch pipeline, or every run pages again."""

    def __post_init__(self) -> None:
        for name in ("group_wait", "group_interval", "repeat_interval", "resolve_after"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value}")


@dataclass
class Incident:
    """One problem: every event with the same key since it opened, added up.

    Times named ``*_at`` are the notifier's clock (epoch seconds); ``first_seen`` and
    ``last_seen`` come from the events (when the stage saw the records).
    """

    id: str
    """Unique id, `<key hash>-<n>`: the same key opened again gets a new id."""
    pipeline: str
    table: str | None
    stage: str
    kind: str
    rule: str | None
    fingerprint: str
    opened_at: float
    """When the notifier saw its first event."""
    last_event_at: float
    """When the notifier saw its latest event (quiet period counts from here)."""
    first_seen: datetime
    last_seen: datetime
    count: int = 0
    """Records (or occurrences) over every event."""
    events: int = 0
    """Alert events added up."""
    counts_by_rule: dict[str, int] = field(default_factory=dict)
    sample_keys: list[str] = field(default_factory=list)
    """The first (at most 5) distinct sample keys seen."""
    contract_versions: list[str] = field(default_factory=list)
    """Contract versions seen, oldest first (at most 5)."""
    owner: str | None = None
    owners: list[str] = field(default_factory=list)
    """Owners of the rules broken so far (besides ``owner``, the table's)."""
    run_id: str | None = None
    """The latest run that raised an event."""
    kept_in: str | None = None
    message: str | None = None
    """The latest event's message."""
    resolved_at: float | None = None
    cleared_at: float | None = None
    """When a replay cleared it (a ``cleared`` event): resolved at the next :meth:`due`."""
    notices: int = 0
    """Notifications emitted so far."""
    notified_at: float | None = None
    """When the latest notification was emitted; none before the first."""
    notified_count: int = 0
    """``count`` at the latest notification."""
    notified_rules: list[str] = field(default_factory=list)
    """Rules already reported, so an update can say which are new."""
    notified_versions: list[str] = field(default_factory=list)

    @property
    def key(self) -> IncidentKey:
        return (self.pipeline, self.table, self.stage, self.kind, self.rule, self.fingerprint)

    @property
    def subject(self) -> str:
        """``pipeline.table``, or the pipeline alone for an alert about a whole stage."""
        return f"{self.pipeline}.{self.table}" if self.table else self.pipeline

    @property
    def everyone(self) -> list[str]:
        """Everybody to tell: the table's owner, then the owners of the broken rules."""
        return list(dict.fromkeys([*([self.owner] if self.owner else []), *self.owners]))

    def new_rules(self) -> list[str]:
        """Rules broken since the latest notification that it did not report."""
        return [rule for rule in self.counts_by_rule if rule not in self.notified_rules]

    def new_versions(self) -> list[str]:
        return [v for v in self.contract_versions if v not in self.notified_versions]

    def changed(self) -> bool:
        """Something new since the latest notification (not merely more of the same)."""
        return bool(self.new_rules() or self.new_versions())

    def add(self, event: AlertEvent, now: float) -> None:
        """Add one event of this incident, seen by the notifier at ``now``."""
        self.events += 1
        self.count += event.count
        self.last_event_at = max(self.last_event_at, now)
        self.first_seen = min(self.first_seen, event.first_seen)
        self.last_seen = max(self.last_seen, event.last_seen)
        for rule, n in event.counts_by_rule.items():
            self.counts_by_rule[rule] = self.counts_by_rule.get(rule, 0) + n
        for key in event.sample_keys:
            if len(self.sample_keys) >= MAX_SAMPLE_KEYS:
                break
            if key not in self.sample_keys:
                self.sample_keys.append(key)
        version = event.contract_version
        if version is not None and version not in self.contract_versions:
            self.contract_versions = [*self.contract_versions, version][-MAX_CONTRACT_VERSIONS:]
        self.owner = event.owner or self.owner
        self.owners += [o for o in event.owners if o not in self.owners]
        self.run_id = event.run_id or self.run_id
        self.kept_in = event.kept_in or self.kept_in
        self.message = event.message or self.message


@dataclass(frozen=True)
class Notification:
    """What one channel is asked to deliver: one notice about one incident.

    ``incident`` is a copy taken when the notification was made; ``id`` (`<incident
    id>.<n>`) is unique and stable across restarts, so receivers can deduplicate by it.
    """

    id: str
    kind: NotificationKind
    incident: Incident
    at: float
    """When it was made (notifier clock)."""
    previous_count: int = 0
    """The incident's count at the notification before this one (0 for `firing`)."""
    new_rules: tuple[str, ...] = ()
    """Rules this notification reports for the first time (for `update`)."""

    @property
    def resolved(self) -> bool:
        return self.kind == "resolved"

    def as_firing(self) -> Notification:
        """This notification shown as the first page (for a channel that missed the firing)."""
        if self.kind == "firing" or self.resolved:
            return self
        return replace(self, kind="firing", previous_count=0, new_rules=())


@dataclass
class IncidentsState:
    """What :class:`Incidents` persists: the open incidents and the id counter."""

    open: list[Incident] = field(default_factory=list)
    next_id: int = 1


class Incidents:
    """The grouping engine: add events with :meth:`observe`, collect notices with :meth:`due`.

    Pure: no I/O, no clock, not thread-safe (one thread owns it).
    """

    def __init__(
        self, policy: GroupingPolicy | None = None, state: IncidentsState | None = None
    ) -> None:
        self.policy = policy or GroupingPolicy()
        state = copy.deepcopy(state) if state is not None else IncidentsState()
        self._open: dict[IncidentKey, Incident] = {i.key: i for i in state.open}
        self._next_id = state.next_id

    @property
    def open(self) -> list[Incident]:
        """Open incidents, oldest first."""
        return list(self._open.values())

    def state(self) -> IncidentsState:
        """A deep copy of the state, to persist."""
        return IncidentsState(open=copy.deepcopy(self.open), next_id=self._next_id)

    def observe(self, event: AlertEvent, now: float) -> Incident | None:
        """Add ``event`` (seen at ``now``) to its open incident, opening one if needed.

        Resolving is :meth:`due`'s job: an incident quiet for longer than
        ``resolve_after`` but not yet resolved by it takes the event and stays open.
        The notifier observes a poll's events before calling :meth:`due`, so a backlog
        read after the notifier was down keeps its incidents open instead of resolving
        them and paging again. A ``cleared`` event opens nothing: it marks the incident
        it names to be resolved (None if that incident is not open).
        """
        if event.kind == "cleared":
            return self._clear(event, now)
        incident = self._open.get(event.key)
        if incident is None:
            incident = Incident(
                id=f"{fingerprint(*event.key)[:8]}-{self._next_id}",
                pipeline=event.pipeline,
                table=event.table,
                stage=event.stage,
                kind=event.kind,
                rule=event.rule,
                fingerprint=event.fingerprint,
                opened_at=now,
                last_event_at=now,
                first_seen=event.first_seen,
                last_seen=event.last_seen,
            )
            self._next_id += 1
            self._open[event.key] = incident
        incident.add(event, now)
        return incident

    def _clear(self, event: AlertEvent, now: float) -> Incident | None:
        """Mark the incident a ``cleared`` event names (its kind is the event's rule)."""
        cleared = (event.pipeline, event.table, event.stage, event.rule, None, event.fingerprint)
        incident = self._open.get(cleared)  # type: ignore[arg-type]
        if incident is not None:
            incident.cleared_at = now
            incident.message = event.message
        return incident

    def due(self, now: float, *, flush: bool = False) -> list[Notification]:
        """The notifications due at ``now``; resolved incidents are closed and forgotten.

        ``flush`` skips ``group_wait`` (``notify --once`` tells about everything it read).
        """
        p = self.policy
        notices: list[Notification] = []
        for key, incident in list(self._open.items()):
            if incident.cleared_at is not None or now - incident.last_event_at >= p.resolve_after:
                incident.resolved_at = now
                notices.append(self._notice(incident, "resolved", now))
                del self._open[key]
            elif incident.notified_at is None:
                if flush or now >= incident.opened_at + p.group_wait:
                    notices.append(self._notice(incident, "firing", now))
            elif incident.changed() and now >= incident.notified_at + p.group_interval:
                notices.append(self._notice(incident, "update", now))
            elif now >= incident.notified_at + p.repeat_interval:
                notices.append(self._notice(incident, "repeat", now))
        return notices

    def next_due(self) -> float | None:
        """The earliest time :meth:`due` may return something, if any incident is open."""
        p = self.policy
        times: list[float] = []
        for incident in self._open.values():
            times.append(incident.last_event_at + p.resolve_after)
            if incident.notified_at is None:
                times.append(incident.opened_at + p.group_wait)
                continue
            if incident.changed():
                times.append(incident.notified_at + p.group_interval)
            times.append(incident.notified_at + p.repeat_interval)
        return min(times, default=None)

    def _notice(self, incident: Incident, kind: NotificationKind, now: float) -> Notification:
        new_rules = tuple(incident.new_rules()) if kind == "update" else ()
        previous = incident.notified_count
        incident.notices += 1
        incident.notified_at = now
        incident.notified_count = incident.count
        incident.notified_rules = list(incident.counts_by_rule)
        incident.notified_versions = list(incident.contract_versions)
        return Notification(
            id=f"{incident.id}.{incident.notices}",
            kind=kind,
            incident=copy.deepcopy(incident),
            at=now,
            previous_count=previous,
            new_rules=new_rules,
        )
