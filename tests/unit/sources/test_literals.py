"""MySQL literals are built from value types: digits, fixed formats or hex, nothing else."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest

from dataplump.sources import mysql
from dataplump.sources.mysql import literal
from dataplump.sources.watermark import Value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, "42"),
        (-(2**63), "-9223372036854775808"),
        (True, "1"),
        (Decimal("12.30"), "12.30"),
        (Decimal("1E+3"), "1000"),
        (0.1, "0.1"),
        ("abc", "_utf8mb4 X'616263'"),
        ("", "_utf8mb4 X''"),
        (b"\x00\xff", "X'00ff'"),
        (date(2024, 2, 29), "DATE'2024-02-29'"),
        (time(1, 2, 3, 4), "TIME'01:02:03.000004'"),
        (datetime(2024, 5, 1, 12, 0, 0, 5), "TIMESTAMP'2024-05-01 12:00:00.000005'"),
        (
            datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            "TIMESTAMP'2024-05-01 12:00:00.000000'",
        ),
    ],
)
def test_literals(value: Value, expected: str) -> None:
    assert literal(value) == expected


@pytest.mark.parametrize(
    "text",
    [
        "'; DROP TABLE orders; --",
        "\\' OR 1=1 -- ",
        "x' UNION SELECT password FROM mysql.user #",
        '\x00\n\r\x1a"`',
        "ünïcödé 🙂",
    ],
)
def test_strings_cannot_escape_their_literal(text: str) -> None:
    sql = literal(text)
    assert re.fullmatch(r"_utf8mb4 X'[0-9a-f]*'", sql)
    assert bytes.fromhex(sql[len("_utf8mb4 X'") : -1]).decode() == text


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), float("nan"), float("inf")])
def test_values_without_an_order_are_refused(value: Value) -> None:
    with pytest.raises(ValueError, match="cannot compare"):
        literal(value)


def test_module_examples() -> None:
    import doctest

    assert doctest.testmod(mysql, raise_on_error=True).attempted > 0
    assert literal(datetime(2024, 1, 1, tzinfo=UTC)) == "TIMESTAMP'2024-01-01 00:00:00.000000'"
