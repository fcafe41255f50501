"""Per-channel delivery state: what each channel still owes, and which incidents it paged.

The outbox is part of the notifier's persisted state (see :mod:`dataplump.notify.service`):
a notification enters every channel's queue in the same Kafka transaction that
commits the events behind it, and leaves a channel's queue only after that
channel's :meth:`~dataplump.notify.channels.Channel.send` returned. So a dead
channel's backlog survives restarts, and a channel that delivered is not asked again.

Bounded: a channel holds at most one pending notification per incident. A newer
notice of the same incident replaces the queued one (keeping its place in line); a
channel that never got an incident's first page gets the newer notice shown as the
first page (:meth:`Notification.as_firing`).

Thread-safe: the notifier's main thread adds and snapshots, each channel's delivery
thread takes and acknowledges its own entries.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from dataplump.notify.incidents import Incident, Notification


@dataclass
class Pending:
    """One notification a channel still has to deliver."""

    notification: Notification
    attempts: int = 0
    """Failed attempts so far (across restarts)."""
    last_error: str | None = None
    """The latest failure, secret-free."""


@dataclass
class ChannelState:
    """What one channel owes (in order) and which open incidents it has paged."""

    pending: list[Pending] = field(default_factory=list)
    paged: list[str] = field(default_factory=list)
    """Incidents whose first page this channel delivered (until their resolve is delivered)."""


@dataclass(frozen=True)
class Delivery:
    """An entry handed to a delivery thread: what to send, and what to acknowledge."""

    channel: str
    incident_id: str
    notification: Notification
    """As it should be sent (a missed first page shown as ``firing``)."""
    queued_id: str
    """Id of the queued notification it was made from."""


class Outbox:
    """Every channel's queue. Entries become deliverable once persisted (:meth:`persisted`)."""

    def __init__(
        self,
        channels: Iterable[str],
        state: dict[str, ChannelState] | None = None,
        *,
        routes: Mapping[str, Callable[[Incident], bool]] | None = None,
    ) -> None:
        """``routes`` says, per channel name, which incidents it delivers (default: all)."""
        self._routes = dict(routes or {})
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)
        """Notified whenever an entry is added, persisted or acknowledged."""
        self._channels: dict[str, ChannelState] = {name: ChannelState() for name in channels}
        self.dropped: dict[str, int] = {}
        """Pending notifications of restored channels that no longer exist, by channel."""
        for name, saved in copy.deepcopy(state or {}).items():
            if name in self._channels:
                self._channels[name] = saved
            elif saved.pending:
                self.dropped[name] = len(saved.pending)
        self._generation = 1
        self._persisted = 1
        # generation of each queued entry's current notification; restored ones are persisted
        self._gen: dict[tuple[str, str], int] = {}
        self._not_before: dict[tuple[str, str], float] = {}
        self.version = 0
        """Grows with every change that must be persisted."""

    # -- main thread ------------------------------------------------------------------
    def add(self, notifications: Iterable[Notification]) -> None:
        """Queue each notification for every channel it is routed to (replacing a queued
        one of its incident)."""
        with self._lock:
            self._generation += 1
            for notification in notifications:
                incident = notification.incident.id
                for name, state in self._channels.items():
                    route = self._routes.get(name)
                    if route is not None and not route(notification.incident):
                        continue
                    entry = next(
                        (p for p in state.pending if p.notification.incident.id == incident), None
                    )
                    if entry is None:
                        state.pending.append(Pending(notification))
                    else:
                        entry.notification = notification
                    self._gen[(name, incident)] = self._generation
                    self._not_before.pop((name, incident), None)
                self.version += 1

    def snapshot(self) -> tuple[dict[str, ChannelState], int, int]:
        """A copy of every channel's state, the generation it covers (for :meth:`persisted`)
        and the :attr:`version` it holds."""
        with self._lock:
            return copy.deepcopy(self._channels), self._generation, self.version

    def persisted(self, generation: int) -> None:
        """Entries up to ``generation`` are in Kafka: they may be delivered now."""
        with self._lock:
            self._persisted = max(self._persisted, generation)
            self.changed.notify_all()

    # -- delivery threads ---------------------------------------------------------------
    def next(self, channel: str, now: float) -> Delivery | float | None:
        """The channel's next deliverable entry; else when one may be (or none pending)."""
        with self._lock:
            state = self._channels[channel]
            wake: float | None = None
            for entry in state.pending:
                incident = entry.notification.incident.id
                if self._gen.get((channel, incident), 0) > self._persisted:
                    continue
                not_before = self._not_before.get((channel, incident), 0.0)
                if not_before > now:
                    wake = not_before if wake is None else min(wake, not_before)
                    continue
                queued = entry.notification
                shown = queued if incident in state.paged else queued.as_firing()
                return Delivery(channel, incident, shown, queued.id)
            return wake

    def delivered(self, delivery: Delivery) -> None:
        """``delivery`` reached its receiver: forget it (unless a newer notice replaced it)."""
        with self._lock:
            state = self._channels[delivery.channel]
            incident = delivery.incident_id
            if delivery.notification.resolved:
                state.paged = [i for i in state.paged if i != incident]
            elif incident not in state.paged:
                state.paged.append(incident)
            for entry in state.pending:
                if entry.notification.incident.id == incident:
                    if entry.notification.id == delivery.queued_id:
                        state.pending.remove(entry)
                        self._gen.pop((delivery.channel, incident), None)
                    break
            self.version += 1
            self.changed.notify_all()

    def failed(self, delivery: Delivery, error: str, retry_at: float | None = None) -> None:
        """An attempt failed. With ``retry_at``, delivery gave up for now: the entry waits
        until then (``inf``: not in this run); without, a retry follows at once."""
        with self._lock:
            for entry in self._channels[delivery.channel].pending:
                if entry.notification.incident.id == delivery.incident_id:
                    entry.attempts += 1
                    entry.last_error = error
                    if retry_at is not None:
                        self._not_before[(delivery.channel, delivery.incident_id)] = retry_at
                    break
            self.version += 1
            self.changed.notify_all()

    def still_queued(self, delivery: Delivery) -> Delivery | None:
        """The current version of ``delivery``'s entry (a newer notice may have replaced it)."""
        with self._lock:
            state = self._channels[delivery.channel]
            for entry in state.pending:
                if entry.notification.incident.id == delivery.incident_id:
                    if self._gen.get((delivery.channel, delivery.incident_id), 0) > self._persisted:
                        return delivery  # the newer notice is not in Kafka yet: send the older
                    queued = entry.notification
                    paged = delivery.incident_id in state.paged
                    shown = queued if paged else queued.as_firing()
                    return Delivery(delivery.channel, delivery.incident_id, shown, queued.id)
            return None

    # -- reporting ----------------------------------------------------------------------
    def pending(self) -> dict[str, list[Pending]]:
        """Copies of every channel's pending entries."""
        with self._lock:
            return {name: copy.deepcopy(s.pending) for name, s in self._channels.items()}
