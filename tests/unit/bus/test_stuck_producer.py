"""A transactional call that never returns gives its producer up, in one clear error.

librdkafka can wait for good in ``send_offsets_to_transaction`` after a broker restart
(librdkafka #5456, #5511): the stage must end with a line saying so, not hang.
"""

from __future__ import annotations

import threading
import time

import pytest

from dataplump.bus import kafka
from dataplump.bus.kafka import Producer, StuckProducerError
from dataplump.errors import TransientError


def test_a_call_past_its_deadline_marks_the_producer_stuck(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(kafka, "STUCK_GRACE", 0.1)
    producer = Producer("127.0.0.1:1")  # never connects: nothing here needs a broker
    never = threading.Event()

    def hangs() -> None:
        never.wait(30)

    started = time.monotonic()
    with pytest.raises(StuckProducerError, match="did not answer within 0s") as caught:
        producer._bounded("adding offsets to the transaction", 0.1, hangs)
    assert time.monotonic() - started < 5
    assert isinstance(caught.value, TransientError)  # a new process of the stage fixes it
    assert producer.stuck is not None
    with pytest.raises(StuckProducerError):  # every later call fails at once
        producer.begin()
    with pytest.raises(StuckProducerError):
        producer._bounded("committing a transaction", 10, lambda: None)
    never.set()


def test_a_call_in_time_returns_and_raises_as_it_would() -> None:
    producer = Producer("127.0.0.1:1")
    producer._bounded("a call", 1, lambda: None)

    def fails() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        producer._bounded("a call", 1, fails)
    assert producer.stuck is None
