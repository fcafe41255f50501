"""confluent-kafka errors become DataPlump bus errors, transient or terminal by type."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from dataplump.bus.kafka import wrap_kafka_error
from dataplump.errors import TerminalBusError, TerminalError, TransientBusError, TransientError


@pytest.mark.parametrize(
    "code",
    [KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError.NOT_LEADER_FOR_PARTITION],
)
def test_retriable_errors_are_transient(code: int) -> None:
    wrapped = wrap_kafka_error(KafkaException(KafkaError(code)), "producing to shop.orders.active")
    assert isinstance(wrapped, TransientBusError)
    assert isinstance(wrapped, TransientError)
    assert str(wrapped).startswith("producing to shop.orders.active failed: ")
    assert wrapped.code == KafkaError(code).name()


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError._INVALID_ARG,
        KafkaError.PRODUCER_FENCED,
    ],
)
def test_other_errors_are_terminal(code: int) -> None:
    wrapped = wrap_kafka_error(KafkaError(code), "committing a transaction")
    assert isinstance(wrapped, TerminalBusError)
    assert isinstance(wrapped, TerminalError)
    assert KafkaError(code).name() in str(wrapped)


def test_fatal_error_is_terminal_even_if_retriable() -> None:
    err = KafkaError(KafkaError._TRANSPORT, "gone", fatal=True, retriable=True)
    assert isinstance(wrap_kafka_error(err, "x"), TerminalBusError)


def test_plain_kafka_exception_message_is_kept() -> None:
    wrapped = wrap_kafka_error(KafkaException("broker said no"), "creating topic t")
    assert isinstance(wrapped, TerminalBusError)
    assert str(wrapped) == "creating topic t failed: broker said no"
