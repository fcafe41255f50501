"""Read what the extraction stage committed: whole topics, and the watermark topic as it grows.

Every reader here is ``read_committed``, as a downstream stage is. "The end" of a
partition is its real high watermark (asked with a ``read_uncommitted`` client), not
the last stable offset a ``read_committed`` consumer stops at: reading to the LSO
while a transaction is still open or its markers are not yet written would miss
committed records after it and make a test pass or fail by timing.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from dataplump.bus.frames import ARROW_FRAMING, HEADER_FRAMING, decode_frame
from dataplump.notify.events import AlertEvent, decode


def _consumer(bootstrap: str, isolation: str) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "isolation.level": isolation,
            "enable.auto.commit": "false",
            "auto.offset.reset": "earliest",
        }
    )


def high_watermarks(bootstrap: str, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Partition -> high watermark (the end of the log, open transactions included)."""
    client = _consumer(bootstrap, "read_uncommitted")
    try:
        metadata = client.list_topics(topic, timeout=timeout).topics[topic]
        if metadata.error is not None:
            raise AssertionError(f"topic {topic} cannot be read: {metadata.error}")
        return {
            p: client.get_watermark_offsets(TopicPartition(topic, p), timeout, cached=False)[1]
            for p in metadata.partitions
        }
    finally:
        client.close()


def read_committed(bootstrap: str, topic: str, *, timeout: float = 30.0) -> list[Message]:
    """Every committed record of ``topic``, read to the real end of each partition.

    Fails if a transaction stays open so long that the end cannot be reached.
    """
    ends = high_watermarks(bootstrap, topic)
    reader = _consumer(bootstrap, "read_committed")
    partitions = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends]
    reader.assign(partitions)
    got: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            for msg in reader.consume(1000, 0.2):
                err = msg.error()
                if err is None:
                    got.append(msg)
                elif err.code() != KafkaError._PARTITION_EOF:
                    raise AssertionError(f"reading {topic}: {err}")
            positions = reader.position([TopicPartition(topic, p) for p in ends])
            behind = {
                tp.partition: (tp.offset, ends[tp.partition])
                for tp in positions
                if ends[tp.partition] > 0 and tp.offset < ends[tp.partition]
            }
            if not behind:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: a transaction stayed open for {timeout:.0f}s;"
                    f" (position, end) by partition: {behind}"
                )
    finally:
        reader.close()


def key_of(message: Message, column: str = "id") -> Any:
    """One column of the record's JSON key."""
    key = message.key()
    assert key is not None, f"a record on {message.topic()} has no key"
    return json.loads(key)[column]


def value_of(message: Message) -> dict[str, Any]:
    """The record's JSON value."""
    value = message.value()
    assert value is not None, f"a record on {message.topic()} has no value"
    data: dict[str, Any] = json.loads(value)
    return data


def headers_of(message: Message) -> dict[str, bytes]:
    """The record's headers (each name once; the extraction stage never repeats one)."""
    raw = message.headers() or []
    pairs = list(raw.items()) if isinstance(raw, dict) else list(raw)
    names = [name for name, _ in pairs]
    assert len(names) == len(set(names)), f"repeated headers: {names}"
    return {
        name: value.encode() if isinstance(value, str) else (value or b"") for name, value in pairs
    }


def duplicates(counts: Counter[Any], limit: int = 10) -> list[tuple[Any, int]]:
    """Keys seen more than once, with how often (at most ``limit`` of them)."""
    return sorted((k, n) for k, n in counts.items() if n > 1)[:limit]


def invalid_records_alerts(bootstrap: str, pipeline: str) -> list[AlertEvent]:
    """The ``invalid_records`` events on ``<pipeline>.alerts``."""
    events = [decode(m.value()) for m in read_committed(bootstrap, f"{pipeline}.alerts")]
    return [e for e in events if e.kind == "invalid_records"]


@dataclass
class StateWatcher:
    """Follows the committed records of ``<pipeline>.<table>.extract-state`` as they appear.

    Each committed batch of a table adds one record keyed by the table, so the count
    of records seen is the count of committed transactions.
    """

    bootstrap: str
    topic: str
    seen: Counter[str] = field(default_factory=Counter)
    last: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._reader = _consumer(self.bootstrap, "read_committed")
        self._reader.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])

    def poll(self, wait: float = 0.0) -> int:
        """Take in the records committed since the last call; return how many."""
        new = 0
        for msg in self._reader.consume(1000, wait):
            if msg.error() is not None:
                continue
            key = (msg.key() or b"").decode()
            value = msg.value()
            self.seen[key] += 1
            if value is not None:
                self.last[key] = json.loads(value)
            new += 1
        return new

    def complete(self, table: str) -> bool:
        """The last committed state of ``table`` marks a finished snapshot."""
        return bool(self.last.get(table, {}).get("complete"))

    def close(self) -> None:
        self._reader.close()


def ids(messages: Iterable[Message]) -> Counter[int]:
    """How often each ``id`` appears in ``messages``: the key of a record of one row, the
    ``id`` column of every row of a frame (``kafka.topic.framing: arrow``)."""
    found: Counter[int] = Counter()
    for message in messages:
        if message.key() is None and headers_of(message).get(HEADER_FRAMING) == ARROW_FRAMING:
            found.update(decode_frame(message.value()).column("id").to_pylist())
        else:
            found[int(key_of(message))] += 1
    return found
