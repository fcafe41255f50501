"""Durable stage state in a compacted Kafka topic, written inside the stage's transactions.

The extraction watermark of a table is a record keyed by the table name in
``<pipeline>.extract.state``. Because it is produced in the same Kafka transaction
as the rows it covers, a read_committed reader sees either both or neither: after
a crash, the stage resumes from a watermark that matches exactly the rows that
reached Kafka (the way Kafka Connect's KIP-618 keeps source offsets).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from dataplump.bus.kafka import Producer, consumer, create_topics, wrap_kafka_error
from dataplump.errors import TransientBusError

STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


def ensure_state_topic(
    bootstrap: str,
    topic: str,
    *,
    replication_factor: int = 1,
    extra: Mapping[str, str] | None = None,
) -> None:
    """Create the compacted state topic (one partition: all keys in order) if missing."""
    create_topics(
        bootstrap,
        [topic],
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
    """The last committed value of every key in ``topic`` (read to its end, read_committed).

    The end is the partition-EOF event, which a read_committed consumer reaches at the
    last stable offset. An open transaction of another writer holds that offset back
    and could hide records committed after it, so the read goes on until it reaches the
    end of the log; the broker aborts an abandoned transaction after its
    ``transaction.timeout.ms`` (60 s for DataPlump's producers), which bounds the wait.
    """
    reader = consumer(
        bootstrap,
        f"dataplump-state-reader-{uuid.uuid4().hex}",
        extra={**(extra or {}), "enable.partition.eof": "true"},
    )
    state: dict[str, Any] = {}
    try:
        reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + timeout
        while True:
            if time.monotonic() > deadline:
                raise TransientBusError(f"reading {topic} to its end took over {timeout:.0f}s")
            try:  # poll returns at the first record or event; consume would wait it out
                msg = reader.poll(0.5)
            except KafkaException as exc:
                raise wrap_kafka_error(exc, f"reading {topic}") from None
            if msg is not None:
                err = msg.error()
                if err is not None and err.code() == KafkaError._PARTITION_EOF:
                    if _at_log_end(reader, topic):
                        return state
                    continue
                if err is not None:
                    raise wrap_kafka_error(err, f"reading {topic}")
                key = (msg.key() or b"").decode()
                value = msg.value()
                if value is None:
                    state.pop(key, None)
                else:
                    state[key] = orjson.loads(value)
    finally:
        reader.close()


def _at_log_end(reader: Consumer, topic: str) -> bool:
    """True when nothing (not even an open transaction) lies past the consumer's position."""
    partition = TopicPartition(topic, 0)
    try:
        start, end = reader.get_watermark_offsets(partition, timeout=10, cached=False)
        position = reader.position([partition])[0].offset
    except KafkaException as exc:
        raise wrap_kafka_error(exc, f"reading the end of {topic}") from None
    return bool(max(position, start) >= end)  # position is negative until a record is read


def write_state(producer: Producer, topic: str, key: str, value: dict[str, Any]) -> None:
    """Queue the state record in the producer's open transaction."""
    producer.produce(topic, orjson.dumps(value), key=key.encode())
