"""A thin layer over confluent-kafka: safe client defaults, transactions, wrapped errors.

No ``confluent_kafka`` exception leaves this module: :func:`wrap_kafka_error`
turns each into a :class:`~dataplump.errors.TransientBusError` (librdkafka says
retriable) or a :class:`~dataplump.errors.TerminalBusError` (fatal, fenced,
unauthorised, bad config), keeping librdkafka's error name in ``.code``.

Defaults, chosen for "nothing lost, nothing doubled":

- producers are idempotent with ``acks=all``; a ``transactional_id`` makes them
  transactional (records become visible to ``read_committed`` consumers only
  when :meth:`Producer.commit` returns);
- consumers read committed records only, never auto-commit, and start at the
  earliest offset of a new group.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka import Producer as _Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from dataplump.errors import BusError, TerminalBusError, TransientBusError

Headers = list[tuple[str, str | bytes | None]]

MAX_POLL_RECORDS = 1_000_000
"""The most records one ``consume`` call returns (confluent-kafka refuses more)."""
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
"""librdkafka's default ``message.max.bytes``: the largest record a producer accepts."""
_RECORD_SLACK = 1024
"""Bytes kept free under ``message.max.bytes`` for what librdkafka adds to a record."""


def message_max_bytes(client: Mapping[str, Any]) -> int:
    """``message.max.bytes`` of a producer of settings ``client``."""
    try:
        return int(client.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
    except (TypeError, ValueError):
        return DEFAULT_MESSAGE_MAX_BYTES


def max_record_bytes(client: Mapping[str, Any]) -> int:
    """The largest key + value + headers a producer of settings ``client`` sends, with
    some slack: a larger record is refused by ``produce`` (MSG_SIZE_TOO_LARGE)."""
    return max(message_max_bytes(client) - _RECORD_SLACK, 1)


def record_bytes(
    key: bytes | None, value: bytes | None, headers: Iterable[tuple[str, str | bytes | None]] = ()
) -> int:
    """The size librdkafka checks against ``message.max.bytes``, give or take a few bytes."""
    size = len(key or b"") + len(value or b"")
    for name, data in headers:
        size += len(name) + len(data or b"") + 2
    return size


_librdkafka_log = logging.getLogger("dataplump.kafka")
# Without a configured handler, its lines are dropped, not printed by logging's last
# resort: every failure they describe also reaches the caller as a wrapped error.
_librdkafka_log.addHandler(logging.NullHandler())
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}

#: librdkafka says this much about its own errors; anything not retriable is terminal.
_ALWAYS_TRANSIENT = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._MSG_TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}


def wrap_kafka_error(error: KafkaError | KafkaException, action: str) -> BusError:
    """Turn a confluent-kafka error into a DataPlump bus error; ``action`` says what failed."""
    err = error.args[0] if isinstance(error, KafkaException) else error
    if not isinstance(err, KafkaError):  # KafkaException raised with a plain message
        return TerminalBusError(f"{action} failed: {err}")
    if err.code() in _FENCED:
        return TerminalBusError(
            f"{action} failed: this producer was fenced by a newer instance with the same"
            f" transactional id (another process of this stage took over); stopping"
            f" ({err.name()})",
            code=err.name(),
        )
    message = f"{action} failed: {err.str()} ({err.name()})"
    transient = not err.fatal() and (err.retriable() or err.code() in _ALWAYS_TRANSIENT)
    kind = TransientBusError if transient else TerminalBusError
    return kind(message, code=err.name())


def client_config(bootstrap: str, extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Base librdkafka settings every DataPlump client shares (``extra`` wins).

    librdkafka's own log lines go to the ``dataplump.kafka`` logger, not to stderr, and
    only its errors: its warnings are retries it recovers from by itself.
    """
    base = {"bootstrap.servers": bootstrap, "logger": _librdkafka_log, "log_level": 3}
    return {**base, **(extra or {})}


_REFUSED = frozenset(
    {KafkaError._AUTHENTICATION, KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED}
)


class _ClientErrors:
    """What librdkafka reports about a client's connections (its ``error_cb``).

    A refused login or TLS handshake is only reported there: requests just wait out
    their timeout. Watching it lets a caller stop at once with the real reason.
    """

    def __init__(self) -> None:
        self.last: KafkaError | None = None
        self.refused: KafkaError | None = None
        self.down_since: float | None = None
        """Since when every broker refuses or drops connections (None: not known to)."""

    def __call__(self, err: KafkaError) -> None:
        if err.code() != KafkaError._ALL_BROKERS_DOWN or self.last is None:
            self.last = err  # keep the cause ("Connection refused") over the summary
        if err.code() in _REFUSED:
            self.refused = err
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self.down_since = self.down_since or time.monotonic()

    def down_for(self) -> float:
        return 0.0 if self.down_since is None else time.monotonic() - self.down_since


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    down_timeout: float = 10.0,
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    Returns once every topic (created here or by someone else at the same time) shows in
    the cluster's metadata with its partitions: a consumer that subscribes
    to a topic the broker does not list yet ignores it until its next metadata refresh
    (librdkafka's ``topic.metadata.refresh.interval.ms``, 5 minutes), which on a fresh
    broker left ``run``'s loader reading nothing but the alerts for minutes.

    A refused login or TLS handshake is a :class:`TerminalBusError` as soon as
    librdkafka reports it; every broker refusing connections for ``down_timeout``
    seconds, or no answer within ``timeout``, is a :class:`TransientBusError`.
    """
    wanted = [
        NewTopic(name, partitions, replication_factor, config=dict(config or {})) for name in names
    ]
    if not wanted:
        return []
    errors = _ClientErrors()
    conf = client_config(bootstrap, extra)
    conf["error_cb"] = errors
    try:
        admin = AdminClient(conf)
    except KafkaException as exc:  # e.g. an unknown property in `kafka.extra`
        raise wrap_kafka_error(exc, "starting the Kafka admin client") from None
    deadline = time.monotonic() + timeout
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout).items():
        while not future.done():
            admin.poll(0.1)  # serves error_cb
            if errors.refused is not None:
                err = errors.refused
                raise TerminalBusError(
                    f"Kafka at {bootstrap} refused the connection: {err.str()} ({err.name()}); "
                    "check kafka.security_protocol and the SASL/TLS settings",
                    code=err.name(),
                )
            down = errors.down_for() > down_timeout
            if down or time.monotonic() > deadline:
                last = f" (last error: {errors.last.str()})" if errors.last is not None else ""
                waited = down_timeout if down else timeout
                raise TransientBusError(
                    f"Kafka at {bootstrap} did not answer within {waited:.0f}s while creating "
                    f"topic {name}{last}: is it running and reachable (kafka.bootstrap_servers, "
                    "security settings)? `dataplump kafka status -c FILE` checks it",
                    code="_TIMED_OUT",
                )
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise wrap_kafka_error(exc, f"creating topic {name}") from None
    _await_metadata(admin, [t.topic for t in wanted], deadline, bootstrap)
    return created


def _await_metadata(admin: AdminClient, names: list[str], deadline: float, bootstrap: str) -> None:
    """Wait until the metadata lists every topic of ``names`` with its partitions (a leader
    down on an existing topic is not waited for: that is the consumer's to ride out)."""
    waiting = list(names)
    while True:
        try:
            metadata = admin.list_topics(timeout=max(1.0, deadline - time.monotonic()))
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "reading the metadata of new topics") from None
        waiting = [
            name
            for name in waiting
            if (info := metadata.topics.get(name)) is None
            or info.error is not None
            or not info.partitions
        ]
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TransientBusError(
                f"Kafka at {bootstrap} created topic {waiting[0]} but does not list it yet",
                code="_TIMED_OUT",
            )
        time.sleep(0.1)


STUCK_GRACE = 10.0
"""Seconds past its own timeout a transactional call may take before its producer is
given up as stuck (:meth:`Producer._bounded`)."""


class StuckProducerError(TransientBusError):
    """A transactional call never returned: the producer is unusable, start over with a
    new one (a new process of the stage). Retrying with the same producer cannot help."""


class Producer:
    """An idempotent (optionally transactional) producer that reports every failed delivery.

    ``produce`` only queues; :meth:`flush` (or :meth:`commit` for a transactional
    producer) waits and raises the first delivery error, so a caller never
    believes a record was written when it was not.
    """

    def __init__(
        self,
        bootstrap: str,
        *,
        transactional_id: str | None = None,
        extra: Mapping[str, str] | None = None,
        init_timeout: float = 60.0,
    ) -> None:
        conf = client_config(bootstrap, extra)
        # Delivery reports only for failures: a Python callback per record costs more
        # than producing it, and a success needs no action.
        conf.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "delivery.report.only.error": True,
            }
        )
        if transactional_id:
            conf["transactional.id"] = transactional_id
        self.transactional = transactional_id is not None
        self._errors: list[KafkaError] = []
        self.stuck: str | None = None
        """Why this producer can no longer be used (a transactional call that never
        returned, see :meth:`_bounded`); None while it works."""
        try:
            self._producer = _Producer(conf)
            if self.transactional:
                self._producer.init_transactions(init_timeout)
        except KafkaException as exc:
            raise wrap_kafka_error(exc, f"starting producer for {bootstrap}") from None

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._errors.append(err)

    def produce(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        """Queue one record; waits for room when librdkafka's queue is full."""
        kwargs: dict[str, Any] = {"key": key, "headers": headers, "on_delivery": self._on_delivery}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self._producer.produce(topic, value, **kwargs)
                return
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as exc:
                raise wrap_kafka_error(exc, f"producing to {topic}") from None

    def produce_many(
        self, topic: str, records: Iterable[tuple[bytes | None, bytes | None, Headers | None]]
    ) -> int:
        """Queue ``(key, value, headers)`` records in one tight loop; return how many.

        The hot path of every stage: the same as :meth:`produce` per record without its
        per-call overhead (librdkafka takes one record per call, so this is the floor).
        """
        produce, poll, report = self._producer.produce, self._producer.poll, self._on_delivery
        count = 0
        try:
            for key, value, headers in records:
                while True:
                    try:
                        produce(topic, value, key, headers=headers, on_delivery=report)
                        break
                    except BufferError:
                        poll(0.05)
                count += 1
        except KafkaException as exc:
            raise wrap_kafka_error(exc, f"producing to {topic}") from None
        return count

    def partition_count(self, topic: str, timeout: float = 30.0) -> int:
        """How many partitions ``topic`` has (it must exist)."""
        try:
            meta = self._producer.list_topics(topic, timeout=timeout).topics[topic]
            if meta.error is not None:
                raise KafkaException(meta.error)
        except KafkaException as exc:
            raise wrap_kafka_error(exc, f"reading the partitions of {topic}") from None
        return len(meta.partitions)

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until every queued record is acknowledged; raise the first failure."""
        remaining = self._producer.flush(timeout)
        self._raise_delivery_errors()
        if remaining:
            raise TransientBusError(
                f"{remaining} records not acknowledged by Kafka within {timeout:.0f}s",
                code="_TIMED_OUT",
            )

    def _raise_delivery_errors(self) -> None:
        if self._errors:
            first, count = self._errors[0], len(self._errors)
            self._errors.clear()
            raise wrap_kafka_error(first, f"delivering {count} record(s)")

    # -- transactions ------------------------------------------------------------
    def _bounded(self, action: str, timeout: float, call: Callable[[], None]) -> None:
        """Run a blocking transactional call of librdkafka with a hard deadline.

        librdkafka enforces a transactional API's timeout only from its own request
        timers: after a broker restart, ``send_offsets_to_transaction`` waits for good,
        whatever its timeout, once the cached group coordinator was decommissioned
        (librdkafka #5456, #5511; seen here with 2.16 on every broker restart: the
        transform and notify stages hung without a word). Past ``timeout`` +
        :data:`STUCK_GRACE` the call is left behind in its thread, this producer is marked
        :attr:`stuck` (every later call fails at once) and a :class:`StuckProducerError`
        tells the stage to start over with a new producer, which fences this one: its open
        transaction is aborted by the broker.
        """
        if self.stuck is not None:
            raise StuckProducerError(self.stuck, code="_STUCK")
        outcome: list[BaseException | None] = []

        def target() -> None:
            try:
                call()
                outcome.append(None)
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)

        worker = threading.Thread(target=target, name=f"kafka-{action}", daemon=True)
        worker.start()
        worker.join(timeout + STUCK_GRACE)
        if not outcome:
            self.stuck = (
                f"{action}: Kafka did not answer within {timeout + STUCK_GRACE:.0f}s and the"
                " client is stuck on a lost request; the stage starts over from its last"
                " commit with a new producer"
            )
            raise StuckProducerError(self.stuck, code="_STUCK")
        if (error := outcome[0]) is not None:
            raise error

    def begin(self) -> None:
        if self.stuck is not None:
            raise StuckProducerError(self.stuck, code="_STUCK")
        try:
            self._producer.begin_transaction()
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "beginning a transaction") from None

    def send_offsets(
        self, consumer: Consumer, offsets: list[TopicPartition], timeout: float = 30.0
    ) -> None:
        """Add a consumer's next offsets to the open transaction (consume-transform-produce).

        Bounded by ``timeout`` (librdkafka's default waits forever, see :meth:`_bounded`):
        a timeout is a :class:`TransientBusError`, the caller aborts and redoes the batch.
        """
        metadata = consumer.consumer_group_metadata()
        try:
            self._bounded(
                "adding offsets to the transaction",
                timeout,
                lambda: self._producer.send_offsets_to_transaction(offsets, metadata, timeout),
            )
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "adding offsets to the transaction") from None

    def commit(self, timeout: float = 60.0, *, retry_for: float = 120.0) -> None:
        """Commit the open transaction.

        A retriable failure (a timeout) is retried, not aborted: the outcome of the
        first attempt is unknown and aborting could drop a committed batch. An
        abortable error raises :class:`TransientBusError` after aborting, so the
        caller rewinds and redoes the batch; a fatal one raises ``TerminalBusError``.
        """
        deadline = time.monotonic() + retry_for
        while True:
            try:
                self._bounded(
                    "committing a transaction",
                    timeout,
                    lambda: self._producer.commit_transaction(timeout),
                )
                self._errors.clear()
                return
            except KafkaException as exc:
                err: KafkaError = exc.args[0]
                if err.retriable() and time.monotonic() < deadline:
                    time.sleep(0.5)
                    continue
                if err.txn_requires_abort():
                    self.abort()
                    raise TransientBusError(
                        f"transaction aborted: {err.str()} ({err.name()}); redo the batch",
                        code=err.name(),
                    ) from None
                raise wrap_kafka_error(exc, "committing a transaction") from None

    def abort(self, timeout: float = 60.0) -> None:
        try:
            self._bounded(
                "aborting a transaction", timeout, lambda: self._producer.abort_transaction(timeout)
            )
            self._errors.clear()
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "aborting a transaction") from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """``with producer.transaction(): ...`` commits on success, aborts on any exception."""
        self.begin()
        try:
            yield
        except BaseException:
            self.abort()
            raise
        self.commit()


METADATA_REFRESH_MS = 5000
"""How often a consumer refreshes its topics' metadata (librdkafka's default: 5 minutes)."""


def consumer(
    bootstrap: str,
    group_id: str,
    *,
    extra: Mapping[str, str] | None = None,
) -> Consumer:
    """A consumer that sees committed records only and commits offsets only when told.

    Its metadata is refreshed every :data:`METADATA_REFRESH_MS`: a topic created a moment
    before the subscription may be missing from the answering broker's metadata (its
    creation spreads to the brokers after the controller acknowledged it), and with
    librdkafka's default of 5 minutes the group would sit on it that long, consuming
    nothing (a fresh pipeline's loader was seen to load nothing for minutes on a cluster).
    ``extra`` librdkafka settings win over these defaults.
    """
    defaults = {
        "isolation.level": "read_committed",
        "enable.auto.commit": "false",
        "enable.auto.offset.store": "false",
        "auto.offset.reset": "earliest",
        "topic.metadata.refresh.interval.ms": str(METADATA_REFRESH_MS),
    }
    conf = client_config(bootstrap, {**defaults, **(extra or {})})
    conf["group.id"] = group_id
    try:
        return Consumer(conf)
    except KafkaException as exc:
        raise wrap_kafka_error(exc, f"starting consumer group {group_id}") from None


def consume_batch(client: Consumer, max_records: int, timeout: float) -> list[Message]:
    """Up to ``max_records`` records within ``timeout`` seconds; raises on a consumer error."""
    try:
        messages = client.consume(max_records, timeout)
    except KafkaException as exc:
        raise wrap_kafka_error(exc, "consuming") from None
    for msg in messages:
        err = msg.error()
        if err is None or err.code() == KafkaError._PARTITION_EOF:
            continue
        if err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            # a topic created a moment ago (by this stage, or the one before) that the
            # consumer's metadata does not show yet: it will at the next metadata refresh
            # (METADATA_REFRESH_MS), keep polling
            _librdkafka_log.debug(
                "%s: %s; waiting for the topic's metadata", msg.topic(), err.str()
            )
            continue
        raise wrap_kafka_error(err, f"consuming {msg.topic()}")
    return [m for m in messages if m.error() is None]


def log_bounds(
    bootstrap: str,
    topics: Iterable[str],
    *,
    extra: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> dict[tuple[str, int], tuple[int, int]]:
    """Per partition of ``topics``, its first offset and its end, open transactions included.

    A read_uncommitted client asks: a read_committed one would answer with the last
    stable offset, which an open transaction holds back, instead of the end.
    """
    probe = consumer(
        bootstrap,
        f"dataplump-probe-{uuid.uuid4().hex}",
        extra={**(extra or {}), "isolation.level": "read_uncommitted"},
    )
    bounds: dict[tuple[str, int], tuple[int, int]] = {}
    # A topic created a moment ago may not be in every broker's metadata yet.
    settling = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait_fixed(0.2),
        retry=retry_if_exception(_not_settled),
        reraise=True,
    )
    names = list(topics)
    try:
        for topic in names:
            for attempt in settling:
                with attempt:
                    meta = probe.list_topics(topic, timeout=timeout).topics[topic]
                    if meta.error is not None:
                        raise KafkaException(meta.error)
                    for partition in sorted(meta.partitions):
                        low, high = probe.get_watermark_offsets(
                            TopicPartition(topic, partition), timeout=timeout, cached=False
                        )
                        bounds[(topic, partition)] = (int(low), int(high))
    except KafkaException as exc:
        raise wrap_kafka_error(exc, "reading the ends of " + ", ".join(names)) from None
    finally:
        probe.close()
    return bounds


def _not_settled(exc: BaseException) -> bool:
    """A metadata error that goes away once a new topic has spread to every broker."""
    if not isinstance(exc, KafkaException) or not isinstance(exc.args[0], KafkaError):
        return False
    code = exc.args[0].code()
    return code in (
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError._UNKNOWN_PARTITION,
    )


def existing_topics(
    bootstrap: str, *, extra: Mapping[str, str] | None = None, timeout: float = 10.0
) -> set[str]:
    """Names of the topics the cluster has now."""
    probe = consumer(bootstrap, f"dataplump-probe-{uuid.uuid4().hex}", extra=extra)
    try:
        return set(probe.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise wrap_kafka_error(exc, "listing the topics") from None
    finally:
        probe.close()


def group_offsets(
    bootstrap: str,
    group_id: str,
    partitions: Iterable[tuple[str, int]],
    *,
    extra: Mapping[str, str] | None = None,
    timeout: float = 10.0,
) -> dict[tuple[str, int], int]:
    """The offsets group ``group_id`` committed on ``partitions`` (absent: never committed)."""
    wanted = [TopicPartition(topic, p) for topic, p in partitions]
    if not wanted:
        return {}
    probe = consumer(bootstrap, group_id, extra=extra)
    try:
        committed = probe.committed(wanted, timeout=timeout)
    except KafkaException as exc:
        raise wrap_kafka_error(exc, f"reading the offsets of group {group_id}") from None
    finally:
        probe.close()
    return {(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0}


def count_records(
    bootstrap: str,
    ranges: Mapping[tuple[str, int], tuple[int, int]],
    *,
    classify: Callable[[Message], str] = lambda _message: "",
    weigh: Callable[[Message], int] = lambda _message: 1,
    extra: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Counter[str]:
    """Committed records in each ``(start, end)`` offset range, by ``classify(record)``,
    each counting as ``weigh(record)`` (the rows of a frame, say).

    Offsets are not a count: commit and abort markers and aborted records take offsets
    too, so the records are read (read_committed) to count them exactly. Records of a
    transaction still open are not counted (a partition is done at its last stable offset).
    """
    todo = {key: span for key, span in ranges.items() if span[0] < span[1]}
    counts: Counter[str] = Counter()
    if not todo:
        return counts
    reader = consumer(
        bootstrap,
        f"dataplump-counter-{uuid.uuid4().hex}",
        extra={**(extra or {}), "enable.partition.eof": "true"},
    )
    try:
        reader.assign([TopicPartition(t, p, start) for (t, p), (start, _) in todo.items()])
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TransientBusError(f"counting records took over {timeout:.0f}s")
            for message in reader.consume(10_000, 0.5):
                key = (str(message.topic()), int(message.partition() or 0))
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    todo.pop(key, None)  # the last stable offset: nothing more committed
                elif error is not None:
                    raise wrap_kafka_error(error, f"counting records of {key[0]}")
                elif key in todo and int(message.offset() or 0) < todo[key][1]:
                    counts[classify(message)] += weigh(message)
            positions = reader.position([TopicPartition(t, p) for t, p in todo])
            for tp in positions:
                if tp.offset >= todo[(tp.topic, tp.partition)][1]:
                    del todo[(tp.topic, tp.partition)]
    except KafkaException as exc:
        raise wrap_kafka_error(exc, "counting records") from None
    finally:
        reader.close()
    return counts
