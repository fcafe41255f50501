"""Every built-in step on rows it accepts and rows it fails or drops."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from dataplump.engine import FAILURES_SCHEMA, StepFailed
from tests.unit.engine.helpers import apply


def test_trim_normalizes_collapses_and_strips() -> None:
    batch = pa.table({"name": ["  a \u00a0 b\t\nc  ", "Cafe\u0301", None], "n": [1, 2, 3]})
    result = apply(batch, {"trim": "name"})
    assert result.output["name"].to_pylist() == ["a b c", "Caf\u00e9", None]
    assert result.output.schema == batch.schema
    assert result.num_failed == 0


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("lowercase", ["straße", "éa", None]),
        ("uppercase", ["STRAẞE", "ÉA", None]),  # simple case mapping: one char for one
        ("titlecase", ["Straße", "Éa", None]),
    ],
)
def test_case_steps(kind: str, expected: list[str | None]) -> None:
    result = apply(pa.table({"s": ["StraßE", "éA", None]}), {kind: ["s"]})
    assert result.output["s"].to_pylist() == expected


def test_text_step_on_a_number_column_fails_the_batch() -> None:
    with pytest.raises(StepFailed) as caught:
        apply(pa.table({"qty": [1]}), {"trim": ["qty"]})
    assert str(caught.value) == (
        "table `orders`, step 1 (trim): `trim` works on text, but column `qty` is int64;"
        " cast it first or remove it from the step"
    )
    assert caught.value.step == "1:trim"
    assert caught.value.kind == "trim"


def test_unknown_column_names_the_closest() -> None:
    with pytest.raises(
        StepFailed,
        match=r"step 2 \(lowercase\): no column `staus` in the batch;"
        r" did you mean `status`\? \(columns: id, status\)",
    ):
        apply(pa.table({"id": [1], "status": ["a"]}), {"trim": "status"}, {"lowercase": "staus"})


def test_parse_dates_fails_impossible_and_unmatched_values() -> None:
    batch = pa.table({"on": ["01/02/2020", "31/02/2020", None, "2020-01-01"], "id": [1, 2, 3, 4]})
    result = apply(batch, {"parse_dates": {"on": "%d/%m/%Y"}})
    assert result.output["on"].type == pa.date32()
    assert result.output["on"].to_pylist() == [date(2020, 2, 1), None]
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [0, 2]
    failures = result.row_failures.to_pylist()
    assert [f["input_row"] for f in failures] == [1, 3]
    assert failures[0] == {
        "input_row": 1,
        "step": "1:parse_dates",
        "column": "on",
        "value": "31/02/2020",
        "message": "does not match the date format '%d/%m/%Y'",
    }


def test_parse_dates_target_follows_the_format() -> None:
    batch = pa.table(
        {"t": ["2020-01-02 03:04:05"], "z": ["2020-01-02 03:04:05+0200"], "d": [date(2020, 1, 1)]}
    )
    result = apply(
        batch,
        {"parse_dates": {"t": "%Y-%m-%d %H:%M:%S", "z": "%Y-%m-%d %H:%M:%S%z", "d": "%Y"}},
    )
    assert result.output.schema.field("t").type == pa.timestamp("us")
    assert result.output.schema.field("z").type == pa.timestamp("us", tz="UTC")
    assert result.output["z"][0].as_py() == datetime(2020, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert result.output["d"].to_pylist() == [date(2020, 1, 1)]  # already a date: kept


def test_cast_exact_values_and_failures() -> None:
    batch = pa.table(
        {
            "amount": ["1.5", "1.005", "abc", None, "12"],
            "qty": ["1", "2", "3", "4", "1.5"],
        }
    )
    result = apply(batch, {"cast": {"amount": "decimal(10,2)", "qty": "int32"}})
    assert result.output.schema.field("amount").type == pa.decimal128(10, 2)
    assert result.output.schema.field("qty").type == pa.int32()
    assert result.output["amount"].to_pylist() == [Decimal("1.50"), None]
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [0, 3]
    failures = result.row_failures.to_pylist()
    assert [(f["input_row"], f["column"], f["value"]) for f in failures] == [
        (1, "amount", "1.005"),  # would round: not exact
        (2, "amount", "abc"),
        (4, "qty", "1.5"),
    ]
    assert failures[0]["message"] == "cannot be cast to decimal(10,2)"
    assert failures[0]["step"] == "1:cast"


def test_cast_one_failure_per_row_first_column_wins() -> None:
    result = apply(pa.table({"a": ["x"], "b": ["y"]}), {"cast": {"a": "int64", "b": "int64"}})
    assert result.row_failures.to_pylist() == [
        {
            "input_row": 0,
            "step": "1:cast",
            "column": "a",
            "value": "x",
            "message": "cannot be cast to int64",
        }
    ]


def test_cast_fast_path_and_timestamps() -> None:
    batch = pa.table({"n": pa.array([1, 2], pa.int64()), "t": ["2020-01-01 10:00:00", "bad"]})
    result = apply(batch, {"cast": {"n": "int8", "t": "timestamptz"}})
    assert result.output.schema.field("n").type == pa.int8()
    assert result.output.schema.field("t").type == pa.timestamp("us", tz="UTC")
    assert result.output["t"].to_pylist() == [datetime(2020, 1, 1, 10, tzinfo=UTC)]
    assert result.row_failures["value"].to_pylist() == ["bad"]


def test_cast_overflow_fails_the_row() -> None:
    result = apply(pa.table({"n": pa.array([1, 300], pa.int64())}), {"cast": {"n": "int8"}})
    assert result.output["n"].to_pylist() == [1]
    assert result.row_failures["value"].to_pylist() == ["300"]


def test_failure_values_are_cut() -> None:
    result = apply(pa.table({"n": ["x" * 500]}), {"cast": {"n": "int64"}})
    value = result.row_failures["value"][0].as_py()
    assert len(value) == 200
    assert value.endswith("...")


def test_fill_null() -> None:
    batch = pa.table({"status": ["a", None], "qty": pa.array([None, 2], pa.int32())})
    result = apply(batch, {"fill_null": {"status": "unknown", "qty": 0}})
    assert result.output.to_pylist() == [{"status": "a", "qty": 0}, {"status": "unknown", "qty": 2}]
    assert result.output.schema == batch.schema


def test_fill_null_value_that_does_not_fit() -> None:
    with pytest.raises(StepFailed, match="fill_null value 'many' does not fit column `qty`"):
        apply(pa.table({"qty": pa.array([None], pa.int32())}), {"fill_null": {"qty": "many"}})


def test_drop_null_counts_filtered_rows() -> None:
    batch = pa.table({"id": [1, None, 3, 4], "c": ["a", "b", None, "d"]})
    result = apply(batch, {"drop_null": ["id", "c"]})
    assert result.output["id"].to_pylist() == [1, 4]
    assert result.filtered == {"1:drop_null": 2}
    assert result.num_failed == 0
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [0, 3]


def test_dedupe_keeps_newest_per_primary_key() -> None:
    batch = pa.table({"id": [1, 2, 1, 1, 2, 3], "u": [5, None, 9, 7, 1, None], "v": list("abcdef")})
    result = apply(batch, {"dedupe": {"newest_by": "u"}})
    assert result.output["v"].to_pylist() == ["c", "e", "f"]  # input order kept
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [2, 4, 5]
    assert result.filtered == {"1:dedupe": 3}


def test_dedupe_without_newest_keeps_the_last_row_of_a_key() -> None:
    batch = pa.table({"a": [1, 1, 2], "b": ["x", "x", "y"], "v": [1, 2, 3]})
    result = apply(batch, {"dedupe": {"key": ["a", "b"]}})
    assert result.output["v"].to_pylist() == [2, 3]


def test_rename_and_drop() -> None:
    batch = pa.table({"cust": [1], "note": ["x"], "id": [7]})
    result = apply(batch, {"rename": {"cust": "customer_id"}}, {"drop": "note"})
    assert result.output.column_names == ["customer_id", "id"]
    with pytest.raises(StepFailed, match="cannot rename to `id`: the batch already has"):
        apply(batch, {"rename": {"cust": "id"}})
    with pytest.raises(StepFailed, match="no column `nope`"):
        apply(batch, {"drop": ["nope"]})


def test_failures_of_several_steps_and_an_empty_batch() -> None:
    batch = pa.table({"a": ["1", "x", "3"], "d": ["2020", "2021", "no"]})
    result = apply(batch, {"cast": {"a": "int64"}}, {"parse_dates": {"d": "%Y"}})
    assert result.row_failures.schema == FAILURES_SCHEMA
    assert result.row_failures.select(["input_row", "step"]).to_pylist() == [
        {"input_row": 1, "step": "1:cast"},
        {"input_row": 2, "step": "2:parse_dates"},
    ]
    empty = apply(batch.slice(0, 0), {"cast": {"a": "int64"}}, {"parse_dates": {"d": "%Y"}})
    assert empty.output.num_rows == 0
    assert empty.row_failures.schema == FAILURES_SCHEMA


def test_input_with_a_lineage_column_of_its_own_is_renumbered() -> None:
    result = apply(pa.table({"__dp_row": [9, 9], "a": [1, 2]}), {"drop_null": "a"})
    assert result.output.column_names == ["a"]
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [0, 1]
