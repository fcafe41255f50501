"""Properties of the record encoding and of contract checks over arbitrary records.

What the stages rely on, checked with Hypothesis on generated rows and bytes:

- rows survive ``encode_rows`` then ``decode_rows`` unchanged (NUL characters, astral
  and bidi text, NaN and infinities, 64-bit integers, decimals at their scale);
- ``decode_rows`` of any list of byte strings either raises :class:`RecordDecodeError`
  or returns exactly one row per value, each the row that value decodes to alone: a bad
  or odd value (a line break, an empty one) never shifts rows onto other records, and
  the transform stage's record-by-record fallback agrees with its batch decode;
- a null or missing non-nullable column (the primary key) is refused by name;
- a contract check splits any batch into valid and invalid rows without losing or
  doubling one, and agrees with a plain-Python reading of ``not_null``, ``min``,
  ``max`` (a NaN meets no bound) and ``accepted_values``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dataplump.bus.records import RecordDecodeError, decode_rows, encode_rows
from dataplump.contracts import Contract

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        ("qty", pa.int64()),
        ("price", pa.float64()),
        ("amount", pa.decimal128(10, 2)),
        ("name", pa.string()),
        ("ok", pa.bool_()),
    ]
)

TEXT = st.text(st.characters(codec="utf-8"), max_size=20)  # NUL, astral, bidi; no surrogates
ROW = st.fixed_dictionaries(
    {
        "id": st.integers(-(2**63), 2**63 - 1),
        "qty": st.none() | st.integers(-(2**63), 2**63 - 1),
        "price": st.none() | st.floats(allow_nan=True, allow_infinity=True),
        "amount": st.none()
        | st.decimals(min_value=-(10**8) + 1, max_value=10**8 - 1, places=2, allow_nan=False),
        "name": st.none() | TEXT,
        "ok": st.none() | st.booleans(),
    }
)
FAST = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def _rows_equal(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> bool:
    return len(left) == len(right) and all(
        a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
        for a, b in zip(left, right, strict=True)
    )


@FAST
@given(st.lists(ROW, max_size=12))
def test_rows_survive_the_wire(rows: list[dict[str, Any]]) -> None:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    back = decode_rows(encode_rows(table), SCHEMA)
    assert back.schema == SCHEMA
    assert _rows_equal(back.to_pylist(), table.to_pylist())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def values(draw: st.DrawFn) -> bytes:
    """One record value: a good row, a row with a field broken, any JSON, or any bytes."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return encode_rows(pa.Table.from_pylist([draw(ROW)], schema=SCHEMA))[0]
    if kind == 1:  # a good row with one field replaced by any JSON value, or removed
        row = orjson.loads(encode_rows(pa.Table.from_pylist([draw(ROW)], schema=SCHEMA))[0])
        column = draw(st.sampled_from(SCHEMA.names))
        if draw(st.booleans()):
            del row[column]
        else:
            row[column] = draw(JSON)
        return json.dumps(row).encode()  # integers past 64 bits too
    if kind == 2:
        return json.dumps(draw(JSON)).encode()
    if kind == 3:  # a line break or nothing: each must stay one record
        good = encode_rows(pa.Table.from_pylist([draw(ROW)], schema=SCHEMA))[0]
        return draw(st.sampled_from([b"", b"\n", good + b"\n" + good, b" " + good]))
    return draw(st.binary(max_size=30))


@FAST
@given(st.lists(values(), min_size=1, max_size=8))
def test_decoding_refuses_by_name_or_keeps_one_row_per_value(batch: list[bytes]) -> None:
    try:
        table = decode_rows(batch, SCHEMA)
    except RecordDecodeError as exc:
        refusal = str(exc)
        # The fallback finds at least one value that does not decode alone.
        alone = []
        for value in batch:
            try:
                decode_rows([value], SCHEMA)
                alone.append(True)
            except RecordDecodeError:
                alone.append(False)
        assert not all(alone), "the batch failed, yet every value decodes alone"
        assert refusal.startswith("record values do not match the schema: ")
        return
    assert table.num_rows == len(batch)
    for i, value in enumerate(batch):
        assert _rows_equal(table.slice(i, 1).to_pylist(), decode_rows([value], SCHEMA).to_pylist())
    assert table.column("id").null_count == 0


@pytest.mark.parametrize(
    "value",
    [b'{"id": null}', b"{}", b'{"qty": 3, "name": "no id"}'],
    ids=["null", "empty", "no-id"],
)
def test_a_missing_or_null_required_column_is_refused_by_name(value: bytes) -> None:
    with pytest.raises(RecordDecodeError, match="column 'id' is null or missing"):
        decode_rows([value], SCHEMA)


CONTRACT = Contract.from_config(
    "t",
    {
        "columns": {
            "id": {"type": "int64", "not_null": True},
            "qty": {"type": "int64", "min": 0, "max": 100},
            "name": {"type": "string", "accepted_values": ["a", "b", "\x00"]},
            "price": {"type": "double", "min": 0, "max": 10},
        }
    },
)
CHECKED = pa.schema(
    [("id", pa.int64()), ("qty", pa.int64()), ("name", pa.string()), ("price", pa.float64())]
)
CHECKED_ROW = st.fixed_dictionaries(
    {
        "id": st.none() | st.integers(-(2**63), 2**63 - 1),
        "qty": st.none() | st.integers(-(2**63), 2**63 - 1),
        "name": st.none() | st.sampled_from(["a", "b", "\x00", "A", "a ", ""]) | TEXT,
        "price": st.none() | st.floats(allow_nan=True, allow_infinity=True),
    }
)


def _broken(row: dict[str, Any]) -> set[tuple[str, str]]:
    """The rules a row breaks, read plainly (a null passes every rule but not_null)."""
    broken = set()
    if row["id"] is None:
        broken.add(("not_null", "id"))
    if row["qty"] is not None and row["qty"] < 0:
        broken.add(("min", "qty"))
    if row["qty"] is not None and row["qty"] > 100:
        broken.add(("max", "qty"))
    if row["name"] is not None and row["name"] not in ("a", "b", "\x00"):
        broken.add(("accepted_values", "name"))
    price = row["price"]
    if price is not None and (math.isnan(price) or price < 0):  # NaN meets no bound
        broken.add(("min", "price"))
    if price is not None and (math.isnan(price) or price > 10):
        broken.add(("max", "price"))
    return broken


@FAST
@given(st.lists(CHECKED_ROW, max_size=30))
def test_a_check_splits_any_batch_and_names_every_broken_rule(rows: list[dict[str, Any]]) -> None:
    batch = pa.Table.from_pylist(rows, schema=CHECKED)
    result = CONTRACT.check(batch)
    invalid = result.invalid_rows.to_pylist()
    mask = result.valid_mask.to_pylist()
    assert result.valid.num_rows + result.invalid.num_rows == len(rows)
    assert invalid == sorted(set(invalid))
    assert [i for i, ok in enumerate(mask) if not ok] == invalid
    reasons = dict(zip(invalid, result.reasons.to_pylist(), strict=True))
    for i, row in enumerate(rows):
        got = {(r["rule"], r["column"]) for r in reasons.get(i, [])}
        assert got == _broken(row), (row, reasons.get(i))
        assert all(r["message"] for r in reasons.get(i, []))
