"""The notifier: consume ``<pipeline>.alerts``, group into incidents, deliver to every channel.

How it keeps its promises (details in ``docs/notify.md``):

- **No alert is lost.** The notifier's whole state — open incidents and each
  channel's queue of undelivered notifications (:mod:`~dataplump.notify.outbox`) —
  is a snapshot record on the compacted topic ``<pipeline>.notify.state``. Each
  poll commits, in one Kafka transaction, the new snapshot and the consumer offsets
  of the events it contains (``send_offsets_to_transaction``). So an event's offset
  is committed exactly when its effect, and every notification it caused, is
  persisted; a notification leaves a channel's queue only after that channel
  delivered it. After ``kill -9`` the next start restores the last snapshot and
  reads on from the offsets committed with it.
- **A delivered notification is not sent again** — except when the process dies
  between a channel's delivery and the next snapshot (at most ``poll_timeout``
  later, 0.25 s by default): that one notification is sent to that one channel
  again. Its ``id`` is the same, so receivers can drop it (webhook
  ``Idempotency-Key``, e-mail ``Message-ID``). At least once, never zero.
- **A dead channel blocks nothing.** Each channel has its own delivery thread
  with retries and exponential backoff (tenacity); its backlog waits in its own
  queue (one entry per incident at most), other channels deliver meanwhile, and
  the stages only ever produce events to Kafka.
- **One notifier per pipeline.** The snapshot producer's transactional id is
  ``<pipeline>.notify``: a second ``dataplump notify`` for the same pipeline fences
  the first one, which stops, and takes over from the last snapshot.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from pydantic import TypeAdapter, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, wait_exponential_jitter

from dataplump.bus.kafka import Producer, consumer, create_topics, wrap_kafka_error
from dataplump.config.models import PipelineConfig
from dataplump.errors import TerminalBusError, TransientBusError
from dataplump.notify.channels import Channel, build_channels
from dataplump.notify.errors import (
    MalformedAlertError,
    NotifyError,
    TerminalNotifyError,
    TransientNotifyError,
)
from dataplump.notify.events import AlertEvent, alert_topic, decode, error_alert, redact
from dataplump.notify.incidents import GroupingPolicy, Incidents, IncidentsState
from dataplump.notify.outbox import ChannelState, Delivery, Outbox
from dataplump.notify.render import MALFORMED_RULE
from dataplump.pipeline.cluster import bootstrap_for

log = logging.getLogger("dataplump.notify")

STATE_KEY = b"state"
STATE_VERSION = 1
MAX_STATE_BYTES = 16 * 1024 * 1024
STATE_TOPIC_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(3_600_000),
    "min.cleanable.dirty.ratio": "0.1",
    "max.message.bytes": str(MAX_STATE_BYTES),
}
"""The state topic keeps the latest snapshot (compacted within hours); a snapshot may be up
to 16 MiB before compression, for many open incidents times several channels."""
FENCED = frozenset({"_FENCED", "FENCED_INSTANCE_ID", "PRODUCER_FENCED", "INVALID_PRODUCER_EPOCH"})
"""Error codes saying another notifier with the same ids started."""


def state_topic(pipeline: str) -> str:
    """The compacted topic holding the notifier's state: ``<pipeline>.notify.state``."""
    return f"{pipeline}.notify.state"


def notify_group(pipeline: str) -> str:
    """Consumer group (and transactional id) of ``dataplump notify``: ``<pipeline>.notify``."""
    return f"{pipeline}.notify"


@dataclass
class NotifyState:
    """The notifier's persisted state: one snapshot record on ``<pipeline>.notify.state``."""

    v: int = STATE_VERSION
    saved_at: float | None = None
    incidents: IncidentsState = field(default_factory=IncidentsState)
    channels: dict[str, ChannelState] = field(default_factory=dict)


_STATE = TypeAdapter(NotifyState)


def encode_state(state: NotifyState) -> bytes:
    return _STATE.dump_json(state)


def decode_state(value: bytes) -> NotifyState:
    """Read a snapshot; raise :class:`TerminalNotifyError` if it is not one this code reads."""
    try:
        state = _STATE.validate_json(value)
    except ValidationError as exc:
        raise TerminalNotifyError(
            f"the notifier state is unreadable ({exc.error_count()} problems); delete the"
            " state topic to start afresh (open incidents and pending notifications are lost)"
        ) from None
    if state.v > STATE_VERSION:
        raise TerminalNotifyError(
            f"the notifier state was written by a newer DataPlump (v{state.v}); upgrade dataplump"
        )
    return state


def _eof(message: Any) -> bool:
    err = message.error()
    return err is not None and err.code() == KafkaError._PARTITION_EOF


def _consume(client: Consumer, what: str, max_records: int, timeout: float) -> list[Any]:
    """Messages and partition-EOF markers; raises a bus error on any other consumer error."""
    try:
        messages: list[Any] = client.consume(max_records, timeout)
    except KafkaException as exc:
        raise wrap_kafka_error(exc, f"consuming {what}") from None
    for message in messages:
        err = message.error()
        if err is not None and not _eof(message):
            raise wrap_kafka_error(err, f"consuming {what}")
    return messages


def _partitions(client: Consumer, topic: str, deadline: float, *, missing_ok: bool) -> list[int]:
    """Partition ids of ``topic``; [] when it does not exist and ``missing_ok``."""
    while True:
        try:
            metadata = client.list_topics(topic, timeout=max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            raise wrap_kafka_error(exc, f"reading the metadata of {topic}") from None
        info = metadata.topics.get(topic)
        error = None if info is None else info.error
        if info is not None and error is None and info.partitions:
            return sorted(info.partitions)
        unknown = info is None or (
            error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        )
        if unknown and missing_ok:
            return []
        if time.monotonic() > deadline:
            reason = "does not exist" if unknown else f"is not available ({error})"
            raise TransientBusError(f"topic {topic} {reason}", code="_TIMED_OUT")
        time.sleep(0.5)


def load_state(
    bootstrap: str,
    pipeline: str,
    *,
    kafka_config: Mapping[str, str] | None = None,
    topic: str | None = None,
    missing_ok: bool = True,
    timeout: float = 60.0,
) -> NotifyState:
    """The last committed snapshot of ``pipeline``'s notifier (empty if there is none).

    A state topic that does not exist means an empty state when ``missing_ok``;
    otherwise (the notifier just created it) its metadata is awaited up to ``timeout``.
    """
    topic = topic or state_topic(pipeline)
    extra = {**(kafka_config or {}), "enable.partition.eof": "true"}
    reader = consumer(bootstrap, f"{topic}.reader", extra=extra)
    deadline = time.monotonic() + timeout
    try:
        ids = _partitions(reader, topic, deadline, missing_ok=missing_ok)
        if not ids:
            return NotifyState()
        partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in ids]
        try:
            reader.assign(partitions)
        except KafkaException as exc:
            raise wrap_kafka_error(exc, f"reading {topic}") from None
        latest: bytes | None = None
        ended: set[int] = set()
        while len(ended) < len(partitions):
            if time.monotonic() > deadline:
                raise TransientBusError(
                    f"reading {topic} did not reach its end within {timeout:.0f}s",
                    code="_TIMED_OUT",
                )
            for message in _consume(reader, topic, 1000, 0.5):
                if _eof(message):
                    ended.add(message.partition())
                elif message.key() == STATE_KEY and message.value() is not None:
                    latest = message.value()
        return decode_state(latest) if latest is not None else NotifyState()
    finally:
        reader.close()


@dataclass(frozen=True)
class RetryPolicy:
    """How a channel's delivery thread retries (future config: ``notify.retry``)."""

    initial: float = 1.0
    """First wait after a transient failure, in seconds; doubles each attempt (with jitter)."""
    maximum: float = 300.0
    """Longest wait between attempts."""
    give_up_after: float | None = None
    """With ``--once``: how long a failing channel is retried in this run (its budget, from
    its first failure in a row, not per notification); then it stops, and everything it
    still owes stays pending for the next run. None: retry while running."""
    terminal_retry_after: float = 900.0
    """After a terminal error the notification waits this long before the next try."""


@dataclass
class RunReport:
    """What a run of the notifier did."""

    events: int = 0
    """Alert events read."""
    malformed: int = 0
    """Records on the alerts topic that were not alert events (skipped, and alerted on)."""
    notifications: int = 0
    """Notifications made (each goes to every channel)."""
    delivered: dict[str, int] = field(default_factory=dict)
    """Notifications delivered, by channel."""
    pending: dict[str, int] = field(default_factory=dict)
    """Notifications still owed at the end, by channel; they are retried on the next run."""
    errors: dict[str, str] = field(default_factory=dict)
    """The latest error of each channel with pending notifications."""
    open_incidents: int = 0

    @property
    def complete(self) -> bool:
        """Every channel delivered everything it owed."""
        return not any(self.pending.values())


class _Stopped(Exception):
    """Raised out of a retry's sleep when the notifier stops."""


class _Deliverer(threading.Thread):
    """One channel's delivery thread: takes its queued notifications in order, retries."""

    def __init__(
        self,
        channel: Channel,
        outbox: Outbox,
        retry: RetryPolicy,
        stop: threading.Event,
        clock: Callable[[], float],
        *,
        drain: bool,
    ) -> None:
        super().__init__(name=f"dataplump-notify-{channel.name}", daemon=True)
        self.channel, self.outbox, self.retry = channel, outbox, retry
        self.stop, self.clock, self.drain = stop, clock, drain
        self.delivered = 0
        self.crashed: BaseException | None = None
        self.gave_up = False
        """The channel spent its ``give_up_after`` budget: it stops for this run."""
        self._failing_since: float | None = None
        """Monotonic time of the first failure since the last delivery."""
        self._backoff = wait_exponential_jitter(
            multiplier=retry.initial, max=retry.maximum, jitter=retry.initial
        )

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: report it, never die silently
            self.crashed = exc
            log.error("%s: delivery thread stopped: %s", self.channel.name, type(exc).__name__)

    def _loop(self) -> None:
        while not self.stop.is_set():
            now = self.clock()
            item = self.outbox.next(self.channel.name, now)
            if isinstance(item, Delivery):
                self._deliver(item)
                if self.gave_up:  # keep the rest for the next run, untried: no 60 s each
                    owed = len(self.outbox.pending().get(self.channel.name, []))
                    log.error(
                        "%s: gave up for this run after %.0fs of failures; %d notification(s)"
                        " kept pending for the next run",
                        self.channel.name,
                        self.retry.give_up_after or 0.0,
                        owed,
                    )
                    return
                continue
            if self.drain and (item is None or math.isinf(item)):
                return
            wait = 1.0 if item is None else min(1.0, max(0.01, item - now))
            with self.outbox.changed:
                self.outbox.changed.wait(wait)

    def _wait(self, state: RetryCallState) -> float:
        base = self._backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, TransientNotifyError) and error.retry_after is not None:
            return max(base, min(error.retry_after, self.retry.maximum))
        return base

    def _stop_retrying(self, state: RetryCallState) -> bool:
        if self.stop.is_set():
            return True
        limit = self.retry.give_up_after
        if limit is None:
            return False
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now - (state.seconds_since_start or 0.0)
        return now - self._failing_since >= limit

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s (attempt %d; next in %.1fs)", error, state.attempt_number, wait)
        delivery = state.args[0] if state.args else None
        if isinstance(delivery, Delivery):
            self.outbox.failed(delivery, str(error))

    def _sleep(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise _Stopped

    def _attempt(self, first: Delivery) -> None:
        current = self.outbox.still_queued(first)
        if current is None:
            return
        self.channel.send(current.notification)
        self._failing_since = None
        self.outbox.delivered(current)
        self.delivered += 1
        log.debug("%s: delivered %s", self.channel.name, current.notification.id)

    def _deliver(self, item: Delivery) -> None:
        retrying = Retrying(
            retry=retry_if_exception_type(TransientNotifyError),
            wait=self._wait,
            stop=self._stop_retrying,
            sleep=self._sleep,
            before_sleep=self._before_sleep,
            reraise=True,
        )
        later = math.inf if self.drain else None
        try:
            retrying(self._attempt, item)
        except _Stopped:
            return  # shutting down: the entry stays queued as it is
        except TransientNotifyError as exc:
            retry_at = later or self.clock() + self.retry.maximum
            self.outbox.failed(item, str(exc), retry_at)
            self.gave_up = self.drain and not self.stop.is_set()
            if not self.stop.is_set():
                log.error("%s; kept pending, retried %s", exc, _when_retried(later))
        except TerminalNotifyError as exc:
            retry_at = later or self.clock() + self.retry.terminal_retry_after
            self.outbox.failed(item, str(exc), retry_at)
            log.error("%s; kept pending, retried %s", exc, _when_retried(later, terminal=True))
        except Exception as exc:
            message = f"{self.channel.name}: unexpected {type(exc).__name__}: {redact(str(exc))}"
            retry_at = later or self.clock() + self.retry.terminal_retry_after
            self.outbox.failed(item, message, retry_at)
            log.error("%s; kept pending, retried %s", message, _when_retried(later, terminal=True))


def _when_retried(later: float | None, *, terminal: bool = False) -> str:
    if later is not None:
        return "on the next run"
    return "later and after a restart" if terminal else "in a while"


class Notifier:
    """``dataplump notify`` as a Python object: :meth:`run` consumes, groups and delivers.

    ``kafka_config`` holds librdkafka client properties (security, SASL, extra) without
    ``bootstrap.servers``. ``clock`` returns epoch seconds (tests pass a fake one).
    """

    def __init__(
        self,
        pipeline: str,
        bootstrap: str,
        channels: Sequence[Channel],
        *,
        kafka_config: Mapping[str, str] | None = None,
        policy: GroupingPolicy | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        replication_factor: int = 1,
        poll_timeout: float = 0.25,
        restart_delay: float = 5.0,
        once_timeout: float = 120.0,
    ) -> None:
        names = [channel.name for channel in channels]
        if len(set(names)) != len(names):
            raise ValueError(f"channel names must be unique, got {names}")
        self.pipeline, self.bootstrap, self.channels = pipeline, bootstrap, list(channels)
        self.kafka = {k: v for k, v in (kafka_config or {}).items() if k != "bootstrap.servers"}
        self.policy = policy or GroupingPolicy()
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.replication_factor = replication_factor
        self.poll_timeout = poll_timeout
        self.restart_delay = restart_delay
        self.once_timeout = once_timeout
        self.topic = alert_topic(pipeline)
        self.state_topic = state_topic(pipeline)
        self.group_id = notify_group(pipeline)

    @classmethod
    def from_config(
        cls,
        config: PipelineConfig,
        *,
        bootstrap: str | None = None,
        policy: GroupingPolicy | None = None,
        retry: RetryPolicy | None = None,
    ) -> Notifier:
        """The notifier of a pipeline file: its Kafka, its channels (``log`` always).

        ``bootstrap`` overrides the cluster; otherwise ``kafka.bootstrap_servers``, or
        the managed broker at ``127.0.0.1:<kafka.managed.port>``.
        """
        kafka = config.kafka
        servers = bootstrap or bootstrap_for(config, start=False)
        client = kafka.client_config(servers)
        return cls(
            config.name,
            servers,
            build_channels(config.notify),
            kafka_config=client,
            policy=policy or GroupingPolicy(**config.notify.grouping.model_dump()),
            retry=retry,
            replication_factor=kafka.topic.replication_factor,
        )

    def describe(self) -> str:
        channels = ", ".join(channel.describe() for channel in self.channels)
        return (
            f"reading {self.topic} from {self.bootstrap} (group {self.group_id});"
            f" channels: {channels}"
        )

    def ensure_topics(self) -> None:
        """Create ``<pipeline>.alerts`` and the state topic if they do not exist."""
        rf = self.replication_factor
        create_topics(self.bootstrap, [self.topic], replication_factor=rf, extra=self.kafka)
        create_topics(
            self.bootstrap,
            [self.state_topic],
            replication_factor=rf,
            config=STATE_TOPIC_CONFIG,
            extra=self.kafka,
        )

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> RunReport:
        """Deliver until ``stop`` is set; with ``once``, what is on the topic now, then return.

        ``once`` skips ``group_wait`` (everything read is told now), delivers with
        ``retry.give_up_after`` as the limit per notification, and returns; what could
        not be delivered stays pending (``RunReport.pending``) for the next run.
        A transient Kafka failure restarts the loop from the last snapshot (forever
        mode) or raises (``once``); a terminal one (e.g. fenced by another notifier)
        raises :class:`~dataplump.errors.BusError`.
        """
        stop = stop or threading.Event()
        self.ensure_topics()
        while True:
            try:
                return self._session(once=once, stop=stop)
            except TerminalBusError as exc:
                if exc.code in FENCED or (exc.code == "_FATAL" and "fenced" in str(exc)):
                    raise TerminalBusError(
                        f"another `dataplump notify` for pipeline {self.pipeline} took over;"
                        f" this one stops ({exc})",
                        code=exc.code,
                    ) from None
                raise
            except TransientBusError as exc:
                if once or stop.is_set():
                    raise
                log.warning(
                    "%s; restarting from the last committed state in %gs", exc, self.restart_delay
                )
                if stop.wait(self.restart_delay):
                    return RunReport()

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    # -- one session: restore, consume, deliver, persist ----------------------------------
    def _session(self, *, once: bool, stop: threading.Event) -> RunReport:
        producer = Producer(
            self.bootstrap,
            transactional_id=self.group_id,
            extra={
                **self.kafka,
                "compression.type": "zstd",
                "message.max.bytes": str(MAX_STATE_BYTES + 65536),
            },
        )
        saved = load_state(self.bootstrap, self.pipeline, kafka_config=self.kafka, missing_ok=False)
        incidents = Incidents(self.policy, saved.incidents)
        outbox = Outbox(
            [c.name for c in self.channels],
            saved.channels,
            routes={c.name: c.wants for c in self.channels},
        )
        for name, count in outbox.dropped.items():
            log.warning(
                "channel %s is no longer configured: %d pending notices dropped", name, count
            )
        owed = {name: len(entries) for name, entries in outbox.pending().items() if entries}
        if incidents.open or owed:
            log.info(
                "restored %d open incidents; pending: %s",
                len(incidents.open),
                ", ".join(f"{name} {count}" for name, count in owed.items()) or "none",
            )
        session = _Session(self, producer, incidents, outbox, once=once, stop=stop)
        return session.run()


class _Session:
    """State of one run of the notifier's loop (rebuilt from Kafka after a failure)."""

    def __init__(
        self,
        notifier: Notifier,
        producer: Producer,
        incidents: Incidents,
        outbox: Outbox,
        *,
        once: bool,
        stop: threading.Event,
    ) -> None:
        self.n, self.producer, self.incidents, self.outbox = notifier, producer, incidents, outbox
        self.once, self.stop = once, stop
        self.report = RunReport()
        self.persisted_version = outbox.version
        self.assigned: set[tuple[str, int]] = set()
        self.ended: set[tuple[str, int]] = set()
        self.workers_stop = threading.Event()
        self.started = time.monotonic()
        retry = notifier.retry
        self.workers = [
            _Deliverer(c, outbox, retry, self.workers_stop, notifier.clock, drain=once)
            for c in notifier.channels
        ]

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self.assigned = {(p.topic, p.partition) for p in partitions}
        self.ended = set()

    def _on_revoke(self, _consumer: Consumer, _partitions: list[TopicPartition]) -> None:
        self.assigned = set()

    def run(self) -> RunReport:
        n = self.n
        # Static membership: a restarted notifier takes its partitions back at once instead
        # of waiting for the killed one's session to time out; a second one fences the first.
        extra = {**n.kafka, "enable.partition.eof": "true", "group.instance.id": n.group_id}
        client = consumer(n.bootstrap, n.group_id, extra=extra)
        try:
            try:
                client.subscribe([n.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
            except KafkaException as exc:
                raise wrap_kafka_error(exc, f"subscribing to {n.topic}") from None
            if not self.once:
                for worker in self.workers:
                    worker.start()
            self._consume_loop(client)
            if self.once and not self.stop.is_set():
                self._drain(client)
            self._stop_workers()
            self._persist(client, {})
        finally:
            self._stop_workers()
            client.close()
        return self._finish()

    def _consume_loop(self, client: Consumer) -> None:
        n = self.n
        while not self.stop.is_set():
            for worker in self.workers:
                if worker.crashed is not None:
                    raise NotifyError(
                        f"the delivery thread of {worker.channel.name} died"
                        f" ({type(worker.crashed).__name__}: {redact(str(worker.crashed))}); a bug"
                    )
            now = n.clock()
            wake = self.incidents.next_due()
            timeout = n.poll_timeout if wake is None else min(n.poll_timeout, wake - now)
            messages = _consume(client, n.topic, 500, max(0.05, timeout))
            now = n.clock()
            offsets: dict[tuple[str, int], int] = {}
            for message in messages:
                where = (message.topic(), message.partition())
                if _eof(message):
                    self.ended.add(where)
                    continue
                self.ended.discard(where)
                offsets[where] = message.offset() + 1
                self.incidents.observe(self._event(message), now)
            caught_up = bool(self.assigned) and self.assigned <= self.ended
            # Events first, then timers: a backlog read after a restart keeps its incidents
            # open instead of resolving them and paging again.
            notices = self.incidents.due(now, flush=self.once and caught_up)
            self.outbox.add(notices)
            self.report.notifications += len(notices)
            for notice in notices:
                log.debug("notice %s (%s)", notice.id, notice.kind)
            if offsets or notices or self.outbox.version != self.persisted_version:
                self._persist(client, offsets)
            if self.once and caught_up:
                return
            if self.once and time.monotonic() - self.started > n.once_timeout:
                raise TransientBusError(
                    f"--once: did not reach the end of {n.topic} within {n.once_timeout:.0f}s"
                    f" (partitions assigned: {len(self.assigned)}); is another consumer of group"
                    f" {n.group_id} holding them?",
                    code="_TIMED_OUT",
                )

    def _event(self, message: Any) -> AlertEvent:
        try:
            event = decode(message.value())
        except MalformedAlertError as exc:
            self.report.malformed += 1
            where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
            log.warning("skipped %s: %s", where, exc)
            return error_alert(
                self.n.pipeline,
                stage="notify",
                error=f"skipped record {where}: {exc}",
                rule=MALFORMED_RULE,
            )
        self.report.events += 1
        return event

    def _drain(self, client: Consumer) -> None:
        """``--once``: deliver all that is queued, each channel in its thread; persist as we go."""
        for worker in self.workers:
            worker.start()
        while any(worker.is_alive() for worker in self.workers):
            if self.stop.wait(self.n.poll_timeout):
                self.workers_stop.set()
            if self.outbox.version != self.persisted_version:
                self._persist(client, {})

    def _stop_workers(self) -> None:
        self.workers_stop.set()
        with self.outbox.changed:
            self.outbox.changed.notify_all()
        for worker in self.workers:
            if worker.is_alive():
                worker.join(timeout=60)

    def _persist(self, client: Consumer, offsets: dict[tuple[str, int], int]) -> None:
        channels, generation, version = self.outbox.snapshot()
        state = NotifyState(
            saved_at=self.n.clock(), incidents=self.incidents.state(), channels=channels
        )
        with self.producer.transaction():
            self.producer.produce(self.n.state_topic, encode_state(state), key=STATE_KEY)
            if offsets:
                positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
                self.producer.send_offsets(client, positions)
        self.outbox.persisted(generation)
        self.persisted_version = version

    def _finish(self) -> RunReport:
        report = self.report
        for worker in self.workers:
            report.delivered[worker.channel.name] = worker.delivered
        for name, entries in self.outbox.pending().items():
            report.pending[name] = len(entries)
            errors = [entry.last_error for entry in entries if entry.last_error]
            if errors:
                report.errors[name] = errors[0]
        report.open_incidents = len(self.incidents.open)
        return report
