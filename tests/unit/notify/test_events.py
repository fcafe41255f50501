"""Alert events: the wire format, its round trip, and the builders stages call."""

from __future__ import annotations

import doctest
import json
from datetime import timedelta

import pytest

from dataplump.errors import TerminalError
from dataplump.notify import events, incidents
from dataplump.notify.errors import MalformedAlertError
from dataplump.notify.events import (
    AlertEvent,
    alert_topic,
    decode,
    encode,
    error_alert,
    incident_key_bytes,
    records_alert,
    redact,
)
from tests.unit.notify.helpers import T0, crash, invalid


def test_round_trip_keeps_every_field() -> None:
    event = invalid(42, {"not_null(customer_id)": 40, "min(amount)": 2}, keys=(17, 23, 99))
    value = encode(event)
    assert decode(value) == event
    data = json.loads(value)
    assert data == {
        "v": 1,
        "pipeline": "shop",
        "table": "orders",
        "stage": "extract",
        "kind": "invalid_records",
        "rule": None,
        "fingerprint": event.fingerprint,
        "count": 42,
        "counts_by_rule": {"not_null(customer_id)": 40, "min(amount)": 2},
        "sample_keys": ["17", "23", "99"],
        "contract_version": "3",
        "owner": None,
        "owners": [],
        "first_seen": "2026-03-02T10:02:00Z",
        "last_seen": "2026-03-02T10:02:00Z",
        "run_id": "run-7",
        "kept_in": "shop.orders.dlq",
        "message": None,
    }


def test_topic_and_key() -> None:
    assert alert_topic("shop") == "shop.alerts"
    event = invalid()
    assert event.key == ("shop", "orders", "extract", "invalid_records", None, event.fingerprint)
    assert incident_key_bytes(event.key) == incident_key_bytes(invalid(5, keys=(1, 2)).key)


def test_sample_keys_are_at_most_five_strings() -> None:
    event = invalid(keys=(1, b"two", ("tenant", 3), 4, 5, 6, 7))
    assert event.sample_keys == ("1", "two", "tenant,3", "4", "5")
    decoded = decode(json.dumps({**json.loads(encode(event)), "sample_keys": list("abcdefg")}))
    assert decoded.sample_keys == ("a", "b", "c", "d", "e")


def test_every_batch_of_a_table_is_one_incident_whatever_the_rules() -> None:
    first = invalid(2, {"not_null(customer_id)": 2})
    other_rules = invalid(9, {"min(amount)": 9}, keys=(5,), version="4", at=300)
    assert first.key == other_rules.key
    assert invalid(table="customers").key != first.key
    assert invalid(stage="transform").key != first.key


def test_error_alert_redacts_secrets_and_ignores_numbers_in_its_fingerprint() -> None:
    event = error_alert(
        "shop",
        stage="extract",
        error=RuntimeError("cannot connect to postgresql://shop:hunter2@db:5432/shop, password=x1"),
    )
    assert event.message is not None
    assert "hunter2" not in event.message
    assert "x1" not in event.message
    assert "postgresql://shop:***@db:5432/shop" in event.message
    assert event.kind == "stage_error"
    assert event.count == 1
    assert crash("timeout after 30s on row 17").key == crash("timeout after 31s on row 99").key
    assert crash("timeout after 30s").key != crash("disk full").key


def test_redact() -> None:
    assert redact("https://u:p@h/x?token=abc&x=1") == "https://u:***@h/x?token=***&x=1"
    assert redact("nothing secret here") == "nothing secret here"


def test_long_text_is_cut() -> None:
    event = error_alert("shop", stage="load", error="x" * 5000, kind="source_warning")
    assert event.message is not None
    assert len(event.message) == events.MAX_TEXT
    assert event.message.endswith("…")


def test_unknown_fields_are_ignored_for_newer_producers() -> None:
    data = {**json.loads(encode(invalid())), "severity": "high"}
    assert decode(json.dumps(data).encode()) == invalid()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "the record has no value"),
        (b"garbage", "not an alert event: value: Invalid JSON"),
        (b"{}", "not an alert event: pipeline: Field required (and"),
        (
            json.dumps({**json.loads(encode(invalid())), "kind": "oops"}).encode(),
            "not an alert event: kind: Input should be 'invalid_records'",
        ),
        (
            json.dumps({**json.loads(encode(invalid())), "count": -1}).encode(),
            "not an alert event: count: Input should be greater than or equal to 0",
        ),
        (
            json.dumps({**json.loads(encode(invalid())), "v": 2}).encode(),
            "alert event schema v2 is newer than this DataPlump reads (v1); upgrade dataplump",
        ),
    ],
)
def test_malformed_values_raise_a_terminal_error(value: bytes | None, message: str) -> None:
    with pytest.raises(MalformedAlertError) as caught:
        decode(value)
    assert isinstance(caught.value, TerminalError)
    assert message in str(caught.value)


def test_last_seen_before_first_seen_is_refused() -> None:
    with pytest.raises(ValueError, match="last_seen is before first_seen"):
        records_alert(
            "shop",
            "orders",
            stage="extract",
            count=1,
            counts_by_rule={},
            first_seen=T0,
            last_seen=T0 - timedelta(seconds=1),
        )


def test_event_is_frozen() -> None:
    event = invalid()
    with pytest.raises(ValueError, match="frozen"):
        event.count = 3  # type: ignore[misc]
    assert isinstance(event, AlertEvent)


@pytest.mark.parametrize("module", [events, incidents])
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)  # type: ignore[arg-type]
    assert result.failed == 0
    assert result.attempted > 0
