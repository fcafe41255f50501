"""Rows survive the trip through JSON records: every type, nulls, and the odd values."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import pyarrow as pa
import pytest

from dataplump.bus.records import (
    RecordDecodeError,
    decode_rows,
    encode_keys,
    encode_rows,
    header_columns,
)

UTC = dt.UTC


def sample() -> pa.Table:
    return pa.table(
        {
            "id": pa.array([1, 2, 9_223_372_036_854_775_807], pa.int64()),
            "small": pa.array([1, None, -3], pa.int16()),
            "amount": pa.array(
                [Decimal("12.30"), Decimal("-0.01"), Decimal("9999999999999.99")],
                pa.decimal128(15, 2),
            ),
            "ratio": pa.array([0.1, None, 1e300], pa.float64()),
            "flag": pa.array([True, False, None]),
            "name": pa.array(['quote " and \\ and\nnewline', "é ✓ 😀", None]),
            "payload": pa.array([b"\x00\xff", None, b""], pa.binary()),
            "day": pa.array([dt.date(2024, 2, 29), None, dt.date(1, 1, 1)], pa.date32()),
            "at": pa.array(
                [dt.time(10, 1, 2, 5), None, dt.time(23, 59, 59, 999999)], pa.time64("us")
            ),
            "created": pa.array(
                [dt.datetime(2024, 1, 1, 10, 0, 0, 123456), None, dt.datetime(1970, 1, 1)],
                pa.timestamp("us"),
            ),
            "updated": pa.array(
                [
                    dt.datetime(2024, 1, 1, 10, 0, 0, 1, tzinfo=UTC),
                    None,
                    dt.datetime(2038, 1, 19, tzinfo=UTC),
                ],
                pa.timestamp("us", tz="UTC"),
            ),
            "doc": pa.array(['{"a": [1, 2]}', None, "null"]),
        }
    )


def test_round_trip_keeps_types_and_values() -> None:
    table = sample()
    assert decode_rows(encode_rows(table), table.schema).equals(table)


def test_values_are_json_objects_with_lossless_decimals_and_iso_times() -> None:
    first = json.loads(encode_rows(sample())[0])
    assert first["amount"] == "12.30"
    assert first["id"] == 1
    assert first["payload"] == "AP8="
    assert first["created"] == "2024-01-01T10:00:00.123456"
    assert first["updated"] == "2024-01-01T10:00:00.000001+00:00"
    assert first["day"] == "2024-02-29"
    assert json.loads(encode_rows(sample())[2])["id"] == 9_223_372_036_854_775_807


def test_non_finite_floats_survive() -> None:
    table = pa.table({"x": pa.array([math.nan, math.inf, -math.inf, 0.5, None])})
    back = decode_rows(encode_rows(table), table.schema).column("x").to_pylist()
    assert math.isnan(back[0])
    assert back[1:] == [math.inf, -math.inf, 0.5, None]


def test_keys_are_json_objects_of_the_primary_key() -> None:
    table = pa.table({"order": [7, 7], "line": [1, 2], "sku": ["a", "b"]})
    assert encode_keys(table, ["order", "line"]) == [
        b'{"order":7,"line":1}',
        b'{"order":7,"line":2}',
    ]
    assert encode_keys(table.slice(0, 0), ["order"]) == []


def test_record_batches_and_empty_input() -> None:
    batch = sample().to_batches()[0]
    assert len(encode_rows(batch)) == 3
    assert decode_rows([], batch.schema).num_rows == 0


@pytest.mark.parametrize("value", [b"not json", b'{"id": "abc"}', b'{"id": 1.5e999999}'])
def test_undecodable_values_raise_a_terminal_error(value: bytes) -> None:
    with pytest.raises(RecordDecodeError, match="do not match the schema"):
        decode_rows([value], pa.schema([("id", pa.int64())]))


def test_header_columns_pick_each_name_per_record() -> None:
    same = [
        [("dp.run", b"r1"), ("dp.pk", b'{"id":1}')],
        [("dp.run", b"r1"), ("dp.pk", b'{"id":2}')],
    ]
    picked = header_columns(same, ["dp.pk", "dp.run", "dp.source"])
    assert picked["dp.pk"].to_pylist() == [b'{"id":1}', b'{"id":2}']
    assert picked["dp.run"].to_pylist() == [b"r1", b"r1"]
    assert picked["dp.source"].to_pylist() == [None, None]


def test_header_columns_of_mixed_layouts_missing_and_repeated_headers() -> None:
    headers = [
        [("a", b"1"), ("b", b"2")],
        None,  # a record without headers
        [("b", b"3"), ("a", None), ("b", b"4")],  # null value; `b` twice: the last wins
        [("a", b"5")],
    ]
    picked = header_columns(headers, ["a", "b"])
    assert picked["a"].to_pylist() == [b"1", None, None, b"5"]
    assert picked["b"].to_pylist() == [b"2", None, b"4", None]
    assert header_columns([], ["a"])["a"].to_pylist() == []
