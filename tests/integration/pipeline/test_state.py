"""Watermarks in a compacted topic: only committed values count, the last one wins."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from dataplump.bus.kafka import Producer
from dataplump.pipeline.state import ensure_state_topics, read_state, read_states, write_state

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_last_committed_value_per_key_wins(kafka_bootstrap: str) -> None:
    topic = f"test.state.{uuid.uuid4().hex[:8]}"
    ensure_state_topics(kafka_bootstrap, [topic])
    assert read_state(kafka_bootstrap, topic) == {}

    producer = Producer(kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")
    with producer.transaction():
        write_state(producer, topic, "orders", {"cursor": "2024-01-01T00:00:00+00:00", "pk": [1]})
        write_state(producer, topic, "customers", {"pk": [10]})
    with producer.transaction():
        write_state(producer, topic, "orders", {"cursor": "2024-01-02T00:00:00+00:00", "pk": [7]})
    producer.begin()
    write_state(producer, topic, "orders", {"cursor": "2099-01-01T00:00:00+00:00", "pk": [0]})
    producer.flush()
    producer.abort()

    assert read_state(kafka_bootstrap, topic) == {
        "orders": {"cursor": "2024-01-02T00:00:00+00:00", "pk": [7]},
        "customers": {"pk": [10]},
    }


def test_a_value_committed_behind_an_open_transaction_is_waited_for(kafka_bootstrap: str) -> None:
    """An open transaction holds the last stable offset back; a value another writer
    committed after it must still be read, once that transaction ends."""
    topic = f"test.state.{uuid.uuid4().hex[:8]}"
    ensure_state_topics(kafka_bootstrap, [topic])
    stuck = Producer(kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")
    stuck.begin()
    write_state(stuck, topic, "refunds", {"pk": [99]})
    stuck.flush()
    writer = Producer(kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")
    with writer.transaction():
        write_state(writer, topic, "orders", {"pk": [7]})

    ending = threading.Timer(2.0, stuck.abort)
    ending.start()
    started = time.monotonic()
    try:
        state = read_state(kafka_bootstrap, topic)
    finally:
        ending.join()
    assert state == {"orders": {"pk": [7]}}
    assert time.monotonic() - started >= 1.5


def test_several_topics_are_read_at_once_each_to_its_end(kafka_bootstrap: str) -> None:
    """`read_states` (the ledger's read): one consumer, every topic to its own end, an
    empty topic and a topic of only aborted records included."""
    names = [f"test.state.{uuid.uuid4().hex[:8]}" for _ in range(4)]
    full, other, empty, aborted = names
    ensure_state_topics(kafka_bootstrap, names)
    producer = Producer(kafka_bootstrap, transactional_id=f"tx-{uuid.uuid4().hex}")
    with producer.transaction():
        for i in range(500):
            write_state(producer, full, f"k{i % 50}", {"n": i})
        write_state(producer, other, "orders", {"pk": [3]})
    producer.begin()
    write_state(producer, aborted, "orders", {"pk": [0]})
    producer.flush()
    producer.abort()

    started = time.monotonic()
    states = read_states(kafka_bootstrap, names)
    assert time.monotonic() - started < 5
    assert states[full] == {f"k{k}": {"n": 450 + k} for k in range(50)}
    assert states[other] == {"orders": {"pk": [3]}}
    assert states[empty] == {}
    assert states[aborted] == {}
