"""Watermarks survive JSON exactly: decimals, zones, bytes, big integers."""

from __future__ import annotations

import doctest
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from dataplump.sources import watermark
from dataplump.sources.watermark import Value, Watermark

VALUES: list[Value] = [
    0,
    -(2**63),
    2**64 - 1,
    10**40,
    Decimal("1234567890123.45"),
    Decimal("-0.10"),
    Decimal("1E+3"),
    "",
    'héllo "quoted" \n 🙂',
    b"\x00\xff",
    True,
    False,
    0.1,
    float("inf"),
    date(2024, 2, 29),
    time(23, 59, 59, 999999),
    datetime(2024, 5, 1, 12, 0, 0, 123456),
    datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_every_value_round_trips_with_its_type(value: Value) -> None:
    mark = Watermark(cursor=value, pk=(value, 1))
    back = Watermark.from_json(mark.to_json())
    assert back == mark
    assert type(back.cursor) is type(value)
    if isinstance(value, Decimal):
        assert str(back.cursor) == str(value)  # scale kept: 10.50 stays 10.50


def test_timestamps_with_zone_are_stored_in_utc() -> None:
    local = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    mark = Watermark(cursor=local, pk=(1,))
    assert mark.to_dict()["cursor"] == {
        "type": "timestamptz",
        "value": "2024-05-01T12:00:00+00:00",
    }
    assert Watermark.from_json(mark.to_json()).cursor == local


def test_values_are_strings_so_no_json_parser_rounds_them() -> None:
    data = json.loads(Watermark(cursor=Decimal("0.1"), pk=(2**70,)).to_json())
    assert data == {
        "cursor": {"type": "decimal", "value": "0.1"},
        "pk": [{"type": "int", "value": str(2**70)}],
    }


def test_full_mode_and_capped_watermarks() -> None:
    assert Watermark.from_json(Watermark(None, (1, "a")).to_json()) == Watermark(None, (1, "a"))
    capped = Watermark(datetime(2024, 1, 1, tzinfo=UTC), None)
    assert Watermark.from_json(capped.to_json()) == capped
    assert str(capped) == (
        "Watermark(cursor=datetime.datetime(2024, 1, 1, 0, 0, tzinfo=datetime.timezone.utc),"
        " pk=(all))"
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("not json", "a watermark is JSON"),
        ("[]", "exactly the keys"),
        ('{"cursor": null}', "exactly the keys"),
        ('{"cursor": null, "pk": null}', "needs a cursor, a primary key or both"),
        ('{"cursor": null, "pk": {"a": 1}}', "is a list or null"),
        ('{"cursor": {"type": "int", "value": 1}, "pk": null}', "expected a string value"),
        ('{"cursor": {"type": "uuid", "value": "x"}, "pk": null}', "unknown value type"),
        ('{"cursor": {"type": "int", "value": "1.5"}, "pk": null}', "bad int value"),
        ('{"cursor": {"type": "decimal", "value": "NaN"}, "pk": null}', "bad decimal"),
        ('{"cursor": {"type": "timestamptz", "value": "2024-01-01T00:00:00"}, "pk": null}',
         "expected a UTC offset"),
        ('{"cursor": {"type": "timestamp", "value": "2024-01-01T00:00:00Z"}, "pk": null}',
         "expected no UTC offset"),
        ('{"cursor": {"type": "bytes", "value": "!!"}, "pk": null}', "bad bytes value"),
        ('{"cursor": {"type": "bool", "value": "true"}, "pk": null}', "expected true or false"),
        ('{"cursor": {"type": "int"}, "pk": null}', "expected {'type'"),
    ],
)  # fmt: skip
def test_malformed_watermarks_name_the_problem(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace("{", r"\{")):
        Watermark.from_json(text)


def test_unsupported_value_type() -> None:
    with pytest.raises(TypeError, match="cannot hold list values"):
        Watermark(cursor=None, pk=([1],)).to_json()  # type: ignore[arg-type]


def test_module_examples() -> None:
    assert doctest.testmod(watermark, raise_on_error=True).attempted > 0
