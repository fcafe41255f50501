"""10,000 records through the real broker: idempotent and transactional producers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Message

from dataplump.bus.kafka import Producer, consume_batch, consumer

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

N = 10_000


def read_all(
    bootstrap: str, topic: str, expected: int, *, committed_only: bool = True
) -> list[Message]:
    """Everything in ``topic``: reads until ``expected`` records came, then 3 s more for extras."""
    extra = {} if committed_only else {"isolation.level": "read_uncommitted"}
    reader: Consumer = consumer(bootstrap, f"g-{uuid.uuid4().hex}", extra=extra)
    reader.subscribe([topic])
    got: list[Message] = []
    deadline = time.monotonic() + 60
    while len(got) < expected and time.monotonic() < deadline:
        got += consume_batch(reader, 1000, 1.0)
    for _ in range(3):
        got += consume_batch(reader, 1000, 1.0)
    reader.close()
    return got


def key_of(message: Message) -> int:
    key = message.key()
    assert key is not None
    return int(key)


def test_idempotent_producer_round_trip(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=3)
    producer = Producer(kafka_bootstrap)
    for i in range(N):
        producer.produce(
            topic,
            f'{{"id": {i}}}'.encode(),
            key=str(i).encode(),
            headers=[("dp.pk", str(i).encode())],
        )
    producer.flush()

    got = read_all(kafka_bootstrap, topic, N)
    keys = [key_of(m) for m in got]
    assert sorted(keys) == list(range(N))  # every record exactly once
    assert all(m.value() == f'{{"id": {key_of(m)}}}'.encode() for m in got)
    assert all(m.headers() == [("dp.pk", m.key())] for m in got)
    for partition in {m.partition() for m in got}:  # per-partition order is production order
        in_partition = [key_of(m) for m in got if m.partition() == partition]
        assert in_partition == sorted(in_partition)


def test_read_committed_sees_committed_never_aborted(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(partitions=2)
    producer = Producer(kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")
    batch = 1_000
    committed = aborted = 0
    for start in range(0, N + N // 2, batch // 2):
        keep = (start // (batch // 2)) % 3 != 2  # every third half-batch is aborted
        producer.begin()
        for i in range(start, start + batch // 2):
            producer.produce(topic, b"committed" if keep else b"aborted", key=str(i).encode())
        if keep:
            producer.commit()
            committed += batch // 2
        else:
            producer.flush()  # the aborted records really reach the log first
            producer.abort()
            aborted += batch // 2
    assert committed >= N
    assert aborted > 0

    seen = read_all(kafka_bootstrap, topic, committed)
    assert len(seen) == committed
    assert {m.value() for m in seen} == {b"committed"}
    assert len({m.key() for m in seen}) == committed

    # The aborted records were written: a read_uncommitted consumer sees them.
    everything = read_all(kafka_bootstrap, topic, committed + aborted, committed_only=False)
    assert sum(m.value() == b"aborted" for m in everything) == aborted


def test_transaction_context_aborts_on_error(
    kafka_bootstrap: str, new_topic: Callable[..., str]
) -> None:
    topic = new_topic()
    producer = Producer(kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")

    def failing_step() -> None:
        with producer.transaction():
            producer.produce(topic, b"lost on purpose")
            producer.flush()
            raise RuntimeError("step failed")

    with pytest.raises(RuntimeError, match="step failed"):
        failing_step()
    with producer.transaction():
        producer.produce(topic, b"kept")
    assert [m.value() for m in read_all(kafka_bootstrap, topic, 1)] == [b"kept"]
