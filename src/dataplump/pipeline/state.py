"""Durable stage state in a compacted Kafka topic, written inside the stage's transactions.

The extraction watermark of a table is a record keyed by the table name in
``<pipeline>.<table>.extract-state``. Because it is produced in the same Kafka transaction
as the rows it covers, a read_committed reader sees either both or neither: after
a crash, the stage resumes from a watermark that matches exactly the rows that
reached Kafka (the way Kafka Connect's KIP-618 keeps source offsets).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from dataplump.bus.kafka import (
    Producer,
    consumer,
    create_topics,
    log_bounds,
    wrap_kafka_error,
)
from dataplump.errors import TransientBusError

STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


def ensure_state_topics(
    bootstrap: str,
    names: Iterable[str],
    *,
    replication_factor: int = 1,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Create the compacted state topics (one partition: all keys in order) if missing."""
    create_topics(
        bootstrap,
        names,
        partitions=1,
        replication_factor=replication_factor,
        config=STATE_TOPIC_CONFIG,
        extra=extra,
    )


def read_state(
    bootstrap: str,
    topic: str,
    *,
    timeout: float = 90.0,
    extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The last committed value of every key in ``topic`` (see :func:`read_states`)."""
    return read_states(bootstrap, [topic], timeout=timeout, extra=extra)[topic]


def read_states(
    bootstrap: str,
    topics: Iterable[str],
    *,
    timeout: float = 90.0,
    extra: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per topic, the last committed value of every key (read to its end, read_committed).

    One consumer reads every topic at once. A read_committed consumer stops at the last
    stable offset, which a transaction still open holds back; records committed after
    it are only seen once that transaction ends. So the read of a topic goes on until it
    passes the log end as it was when the read began (the high watermark, read
    uncommitted); the broker aborts an abandoned transaction after its
    ``transaction.timeout.ms`` (60 s for DataPlump's producers), which bounds the wait.
    """
    names = list(dict.fromkeys(topics))
    states: dict[str, dict[str, Any]] = {topic: {} for topic in names}
    if not names:
        return states
    bounds = log_bounds(bootstrap, names, extra=extra)
    partitions = {topic: TopicPartition(topic, 0, OFFSET_BEGINNING) for topic in names}
    pending = {t for t in names if bounds[(t, 0)][1] > bounds[(t, 0)][0]}
    if not pending:
        return states
    reader = consumer(
        bootstrap,
        f"dataplump-state-reader-{uuid.uuid4().hex}",
        # an empty fetch (the end of a topic) answers at once, not after 500 ms
        extra={**(extra or {}), "enable.partition.eof": "true", "fetch.wait.max.ms": "10"},
    )
    try:
        reader.assign([partitions[t] for t in pending])
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TransientBusError(
                    f"reading {', '.join(sorted(pending))} to the end took over {timeout:.0f}s"
                    " (a transaction left open by another writer?)"
                )
            try:  # poll returns at the first record or event; consume would wait it out
                msg = reader.poll(0.5)
            except KafkaException as exc:
                raise wrap_kafka_error(exc, f"reading {', '.join(sorted(pending))}") from None
            if msg is None:
                continue
            topic = str(msg.topic())
            err = msg.error()
            if err is not None and err.code() == KafkaError._PARTITION_EOF:
                start, end = bounds[(topic, 0)]
                # The position is negative until a record is read.
                if max(_position(reader, partitions[topic]), start) >= end:
                    pending.discard(topic)
                continue
            if err is not None:
                raise wrap_kafka_error(err, f"reading {topic}")
            key = (msg.key() or b"").decode()
            value = msg.value()
            if value is None:
                states[topic].pop(key, None)
            else:
                states[topic][key] = orjson.loads(value)
        return states
    finally:
        reader.close()


def _position(reader: Consumer, partition: TopicPartition) -> int:
    try:
        return int(reader.position([partition])[0].offset)
    except KafkaException as exc:
        raise wrap_kafka_error(exc, f"reading the position in {partition.topic}") from None


def write_state(producer: Producer, topic: str, key: str, value: dict[str, Any]) -> None:
    """Queue the state record in the producer's open transaction."""
    producer.produce(topic, orjson.dumps(value), key=key.encode())
