"""Output contracts: batch expectations and `relationships`, beyond the data cases
(tests/cases/contracts/check/expectation_*.yaml, relationships*.yaml)."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplump.contracts import (
    BatchFailure,
    BatchRejectedError,
    Contract,
    ContractError,
    ReferenceTableError,
)
from dataplump.errors import TerminalError

OUTPUT: dict[str, Any] = {
    "owner": "#analytics",
    "columns": {
        "order_id": {"type": "int64", "not_null": True},
        "customer_id": {"type": "int64"},
        "email": {"type": "string", "owner": "#crm"},
    },
    "rules": [
        {"unique": ["order_id"]},
        {"relationships": {"column": "customer_id", "to": "customers", "field": "id"}},
    ],
    "expectations": [
        "row_count_not_zero",
        {"null_share": {"column": "email", "max": 0.5}},
        {"name": "big_enough", "row_count_between": {"min": 3}, "on_fail": "warn"},
    ],
}
CUSTOMERS = pa.table({"id": pa.array([1, 2, 3], pa.int64())})


def _batch(order_ids: list[int | None], customers: list[int | None], emails: list[Any]) -> pa.Table:
    return pa.table(
        {
            "order_id": pa.array(order_ids, pa.int64()),
            "customer_id": pa.array(customers, pa.int64()),
            "email": pa.array(emails, pa.string()),
        }
    )


def test_a_passing_batch_has_no_failures() -> None:
    contract = Contract.from_config("orders_out", OUTPUT)
    batch = _batch([1, 2, 3], [1, None, 3], ["a", None, "c"])
    result = contract.check(batch, references={"customers": CUSTOMERS}, input_rows=10)
    assert result.valid.num_rows == 3
    assert result.batch_failures == ()
    assert result.batch_warnings == ()
    assert result.owners == ()


def test_reject_batch_and_warn_together() -> None:
    contract = Contract.from_config("orders_out", OUTPUT)
    batch = _batch([1, 1], [1, 9], [None, None])
    result = contract.check(batch, references={"customers": CUSTOMERS}, input_rows=2)
    assert result.batch_failures == (
        BatchFailure(
            expectation="null_share",
            column="email",
            observed=1.0,
            expected="<= 0.5",
            message="2 of 2 rows (100.00%) have a null `email`; expected a share of at most 0.5",
            owner="#crm",
        ),
    )
    assert [(w.expectation, w.observed, w.expected, w.owner) for w in result.batch_warnings] == [
        ("big_enough", 2, ">= 3", "#analytics")
    ]
    # Nothing is valid, every row is kept with the failure first, then its own reasons.
    assert result.valid.num_rows == 0
    assert result.valid_mask.to_pylist() == [False, False]
    assert result.invalid.to_pylist() == batch.to_pylist()
    assert [[r["rule"] for r in reasons] for _, reasons in result.rejections()] == [
        ["null_share", "unique"],
        ["null_share", "unique", "relationships"],
    ]
    assert result.counts_by_rule == {
        "null_share(email)": 2,
        "unique(order_id)": 2,
        "relationships(customer_id)": 1,
    }
    assert result.owners == ("#crm", "#analytics")


def test_warn_only_reports() -> None:
    contract = Contract.from_config(
        "t",
        {
            "columns": {"id": "int64"},
            "expectations": [{"null_share": {"column": "id", "max": 0}, "on_fail": "warn"}],
        },
    )
    batch = pa.table({"id": [1, None]})
    result = contract.check(batch)
    assert result.valid.num_rows == 2
    assert result.batch_failures == ()
    assert [w.observed for w in result.batch_warnings] == [0.5]
    assert result.violations == ()


def test_row_count_not_zero_without_input_rows_means_not_empty() -> None:
    contract = Contract.from_config(
        "t", {"columns": {"id": "int64"}, "expectations": ["row_count_not_zero"]}
    )
    empty = pa.table({"id": pa.array([], pa.int64())})
    (failure,) = contract.check(empty).batch_failures
    assert (failure.observed, failure.expected, failure.message) == (0, "> 0", "the batch is empty")
    assert contract.check(empty, input_rows=0).batch_failures == ()
    (failure,) = contract.check(empty, input_rows=7).batch_failures
    assert failure.message == "the batch is empty but its input had 7 rows"
    assert contract.check(pa.table({"id": [1]}), input_rows=7).batch_failures == ()


def test_null_share_of_an_empty_batch_passes_and_of_a_missing_column_is_one() -> None:
    contract = Contract.from_config(
        "t",
        {
            "on_missing_column": "pass",
            "columns": {"id": "int64", "email": "string"},
            "expectations": [{"null_share": {"column": "email", "max": 0.9}}],
        },
    )
    assert contract.check(pa.table({"id": pa.array([], pa.int64())})).batch_failures == ()
    (failure,) = contract.check(pa.table({"id": [1, 2]})).batch_failures
    assert failure.observed == 1.0


def test_schema_rejection_still_raises_before_expectations() -> None:
    contract = Contract.from_config(
        "t",
        {
            "on_unknown_column": "reject_batch",
            "columns": {"id": "int64"},
            "expectations": ["row_count_not_zero"],
        },
    )
    with pytest.raises(BatchRejectedError):
        contract.check(pa.table({"id": [1], "x": [1]}))


def test_reject_batch_keeps_schema_reasons_of_reject_row() -> None:
    contract = Contract.from_config(
        "t",
        {
            "on_unknown_column": "reject_row",
            "columns": {"id": "int64"},
            "expectations": [{"row_count_between": {"max": 1}}],
        },
    )
    result = contract.check(pa.table({"id": [1, 2], "x": [1, 2]}))
    assert [[r["rule"] for r in reasons] for _, reasons in result.rejections()] == [
        ["row_count_between", "unknown_column"],
        ["row_count_between", "unknown_column"],
    ]
    assert [i.kind for i in result.schema_issues] == ["unknown_column"]


# ---- relationships ------------------------------------------------------------------------


REL: dict[str, Any] = {
    "columns": {"id": "int64", "customer_id": "int32"},
    "rules": [
        {
            "name": "known_customer",
            "relationships": {"column": "customer_id", "to": "customers", "field": "id"},
        }
    ],
}


def test_reference_names() -> None:
    contract = Contract.from_config(
        "t",
        {
            "columns": {"a": "int64", "b": "string"},
            "rules": [
                {"relationships": {"column": "a", "to": "customers", "field": "id"}},
                {"name": "r2", "relationships": {"column": "b", "to": "countries", "field": "c"}},
                {"name": "r3", "relationships": {"column": "a", "to": "customers", "field": "x"}},
            ],
        },
    )
    assert contract.reference_names() == frozenset({"customers", "countries"})
    assert Contract.from_config("t", {"columns": {"a": "int64"}}).reference_names() == frozenset()


def test_missing_reference_is_a_clear_error() -> None:
    contract = Contract.from_config("orders_out", REL)
    batch = pa.table({"id": [1], "customer_id": pa.array([1], pa.int32())})
    for references in (None, {"countries": CUSTOMERS}):
        with pytest.raises(ReferenceTableError) as caught:
            contract.check(batch, references=references)
        assert isinstance(caught.value, TerminalError)
        assert not isinstance(caught.value, BatchRejectedError)  # not the batch's fault
        assert (caught.value.rule, caught.value.reference) == ("known_customer", "customers")
        message = str(caught.value)
        assert "rule `known_customer` of contract `orders_out`" in message
        assert "needs reference table `customers`" in message
    # Also on an empty batch: a caller's mistake does not hide behind no data.
    with pytest.raises(ReferenceTableError):
        contract.check(batch.slice(0, 0))


def test_reference_without_the_field_or_of_another_type() -> None:
    contract = Contract.from_config("orders_out", REL)
    batch = pa.table({"id": [1], "customer_id": pa.array([1], pa.int32())})
    with pytest.raises(ReferenceTableError, match=r"has no column `id` \(it has key\)"):
        contract.check(batch, references={"customers": pa.table({"key": [1]})})
    with pytest.raises(ReferenceTableError, match=r"cannot be compared with `customers.id`"):
        contract.check(batch, references={"customers": pa.table({"id": ["1"]})})


def test_the_reference_is_read_on_every_check() -> None:
    """The query is cached per batch schema; the reference's content is not."""
    contract = Contract.from_config("t", REL)
    batch = pa.table({"id": [1, 2], "customer_id": pa.array([5, 6], pa.int32())})
    first = contract.check(batch, references={"customers": pa.table({"id": [5]})})
    second = contract.check(batch, references={"customers": pa.table({"id": [6], "x": [0]})})
    assert first.invalid_rows.to_pylist() == [1]
    assert second.invalid_rows.to_pylist() == [0]


def test_relationships_with_string_keys_and_views() -> None:
    contract = Contract.from_config(
        "t",
        {
            "columns": {"code": "string"},
            "rules": [{"relationships": {"column": "code", "to": "c", "field": "code"}}],
        },
    )
    batch = pa.table({"code": pa.array(["FR", "XX", None], pa.string_view())})
    reference = pa.table({"code": pa.array(["FR", "DE"], pa.large_string())})
    result = contract.check(batch, references={"c": reference})
    assert list(result.rejections()) == [
        (
            1,
            [
                {
                    "rule": "relationships",
                    "column": "code",
                    "value": "XX",
                    "message": "is not in reference table c.code",
                }
            ],
        )
    ]


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=40),
    keys=st.lists(st.one_of(st.none(), st.integers(-5, 5)), max_size=20),
)
def test_relationships_agrees_with_a_set_lookup(
    values: list[int | None], keys: list[int | None]
) -> None:
    contract = Contract.from_config("t", REL)
    batch = pa.table(
        {
            "id": pa.array(range(len(values)), pa.int64()),
            "customer_id": pa.array(values, pa.int32()),
        }
    )
    result = contract.check(
        batch, references={"customers": pa.table({"id": pa.array(keys, pa.int64())})}
    )
    known = set(keys) - {None}
    assert result.invalid_rows.to_pylist() == [
        i for i, v in enumerate(values) if v is not None and v not in known
    ]


def test_relationships_on_a_large_batch() -> None:
    n = 200_000
    contract = Contract.from_config("t", REL)
    values = pa.array([i % 1000 for i in range(n)], pa.int32())
    batch = pa.table({"id": pa.array(range(n), pa.int64()), "customer_id": values})
    reference = pa.table({"id": pa.array(range(0, 1000, 2), pa.int64())})
    result = contract.check(batch, references={"customers": reference})
    assert result.num_invalid == n // 2
    assert result.invalid.column("customer_id")[0].as_py() == 1


# ---- loading ------------------------------------------------------------------------------


def test_unused_new_keys_leave_the_content_hash_as_before() -> None:
    """Contracts written before expectations and relationships keep their hash."""
    data = {"version": "1", "columns": {"id": "int64"}, "rules": [{"unique": ["id"]}]}
    contract = Contract.from_config("t", data)
    old = contract.model_dump(mode="json")
    del old["expectations"]
    del old["rules"][0]["relationships"]
    expected = hashlib.sha256(orjson.dumps(old, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    assert contract.content_hash == expected
    with_expectation = Contract.from_config("t", {**data, "expectations": ["row_count_not_zero"]})
    warned = Contract.from_config(
        "t", {**data, "expectations": [{"row_count_not_zero": True, "on_fail": "warn"}]}
    )
    assert len({contract.content_hash, with_expectation.content_hash, warned.content_hash}) == 3


def test_short_and_long_forms_mean_the_same() -> None:
    short = Contract.from_config(
        "t", {"columns": {"a": "int64"}, "expectations": ["row_count_not_zero"]}
    )
    long = Contract.from_config(
        "t",
        {
            "columns": {"a": "int64"},
            "expectations": [{"row_count_not_zero": True, "on_fail": "reject_batch"}],
        },
    )
    assert short.content_hash == long.content_hash


@pytest.mark.parametrize(
    ("expectations", "rules", "problem"),
    [
        (["null_share"], [], "expectations[0]: `null_share` needs its argument"),
        ([{"row_count_not_zero": False}], [], "`row_count_not_zero: false` checks nothing"),
        ([{"row_count_between": {}}], [], "`row_count_between` needs `min`, `max` or both"),
        ([{"null_share": {"column": "a", "max": "x"}}], [], "max: expected a number, got 'x'"),
        (
            [
                {"null_share": {"column": "a", "max": 0.1}},
                {"null_share": {"column": "a", "max": 1}},
            ],
            [],
            "expectations[1]: expectations 0 and 1 are both `null_share` of column `a`",
        ),
        ([{"row_count_not_zero": True, "on_fail": "warning"}], [], "did you mean `warn`?"),
        (
            [],
            [{"relationships": {"column": "a", "to": "t", "field": "id"}, "column": "b"}],
            "rules[0].column: table rule `relationships` shows `relationships.column` (a)",
        ),
        (
            [],
            [{"relationships": {"column": "a", "to": "", "field": "id"}}],
            "rules[0].relationships.to: must not be empty",
        ),
    ],
)
def test_load_problems(expectations: list[Any], rules: list[Any], problem: str) -> None:
    data = {"columns": {"a": "int64", "b": "string"}, "expectations": expectations, "rules": rules}
    with pytest.raises(ContractError) as caught:
        Contract.from_config("t", data)
    assert problem in str(caught.value)


def test_relationships_under_a_column_points_to_rules() -> None:
    with pytest.raises(ContractError) as caught:
        Contract.from_config("t", {"columns": {"a": {"type": "int64", "relationships": {}}}})
    assert "`relationships` is a table rule; write it under `rules:`" in str(caught.value)
