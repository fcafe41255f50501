"""The Spark check gives exactly the DuckDB check's results.

Every case runs :meth:`Contract.check` (DuckDB) and :func:`check_frame` (Spark) on the
same rows (the Arrow table as Spark holds it) and compares: the valid rows, each rejected
row's reasons (content and order), the failed expectations, the counts per rule, the
errors raised. The cases are the data-driven ones of ``tests/cases/contracts/check`` and
the nasty ones below. Behaviour Spark cannot reproduce (see the module docstring of
:mod:`dataplump.contracts.spark_check`) is tested as documented, at the end.
"""

from __future__ import annotations

import random
import struct
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from dataplump.contracts import RULES, BatchRejectedError, CheckResult, Contract, ContractError
from dataplump.contracts.errors import ReferenceTableError
from dataplump.contracts.spark_check import (
    REASONS,
    SparkCheckResult,
    _spark_arrow,
    check_frame,
    ensure_translates,
    quote,
    spark_expression,
    spark_problems,
    spark_regex,
)
from dataplump.contracts.spec import EXPECTATION_KINDS, ROW, TABLE_RULE_KINDS
from dataplump.engine.builtin import ROW as ENGINE_ROW
from tests.unit.contracts.helpers import CASES, batch, load_yaml, reference_tables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

NOW = datetime(2026, 1, 15, 12, 0, 0, 123456, tzinfo=UTC)
CHECK = sorted((CASES / "check").glob("*.yaml"))


# Arrow types Spark cannot take in, as the nearest type it can (Spark has no unsigned
# integers; a view type as its plain type).
_SPARK_READY = {
    pa.uint8(): pa.int16(),
    pa.uint16(): pa.int32(),
    pa.uint32(): pa.int64(),
    pa.uint64(): pa.decimal128(20, 0),
    pa.string_view(): pa.string(),
    pa.binary_view(): pa.binary(),
    pa.date64(): pa.date32(),
}


def _frame(spark: SparkSession, table: pa.Table) -> tuple[DataFrame, pa.Table, list[int]]:
    """The table as a Spark frame carrying ``__dp_row`` (not positions: 1000 + 7 i, in
    the middle of the columns), the same rows as Spark holds them (for DuckDB), and the
    row ids by position."""
    ids = [1000 + 7 * i for i in range(table.num_rows)]
    at = table.num_columns // 2
    table = pa.Table.from_arrays(
        [column.cast(_SPARK_READY.get(column.type, column.type)) for column in table.columns],
        names=table.column_names,
    )
    with_row = table.add_column(at, ROW, pa.array(ids, pa.int64()))
    frame = spark.createDataFrame(with_row)
    held = frame.toArrow()
    schema = pa.schema(
        [pa.field(f.name, _spark_arrow(f.dataType)) for f in frame.schema.fields],
    )
    held = pa.Table.from_arrays(
        [held.column(i).cast(schema.field(i).type) for i in range(held.num_columns)],
        schema=schema,
    ).remove_column(at)
    return frame, held, ids


def _same(
    spark: SparkSession,
    contract: Contract,
    table: pa.Table,
    *,
    references: dict[str, pa.Table] | None = None,
    input_rows: int | None = None,
    now: datetime = NOW,
) -> SparkCheckResult | None:
    """Check with both; assert identical outcomes. Returns Spark's result (None if both
    rejected the batch)."""
    frame, held, ids = _frame(spark, table)
    spark_refs = {name: spark.createDataFrame(t) for name, t in (references or {}).items()}
    duck: CheckResult | Exception
    try:
        duck = contract.check(held, now=now, references=references, input_rows=input_rows)
    except (BatchRejectedError, ReferenceTableError) as exc:
        duck = exc
    if isinstance(duck, Exception):
        with pytest.raises(type(duck)) as caught:
            check_frame(contract, frame, references=spark_refs, input_rows=input_rows, now=now)
        assert str(caught.value) == str(duck)
        assert getattr(caught.value, "reasons", None) == getattr(duck, "reasons", None)
        return None
    got = check_frame(contract, frame, references=spark_refs, input_rows=input_rows, now=now)
    assert got.valid.columns == frame.columns
    assert got.rejected.columns == [*frame.columns, REASONS]
    valid = sorted(r[0] for r in got.valid.select(quote(ROW)).collect())
    assert valid == [ids[i] for i, ok in enumerate(duck.valid_mask.to_pylist()) if ok]
    rejected = got.rejected.select(quote(ROW), REASONS).toArrow().to_pylist()
    expected = {ids[i]: reasons for i, reasons in duck.rejections()}
    got_reasons = {r[ROW]: r[REASONS] for r in rejected}
    differ = [
        (row, got_reasons.get(row), expected.get(row))
        for row in sorted(set(got_reasons) | set(expected))
        if got_reasons.get(row) != expected.get(row)
    ]
    assert not differ, "row, Spark's reasons, DuckDB's:\n" + "\n".join(map(str, differ[:4]))
    assert len(rejected) == len(expected)
    assert got.batch_failures == duck.batch_failures
    assert got.batch_warnings == duck.batch_warnings
    assert got.schema_issues == duck.schema_issues
    if got.num_rows is not None:  # counted (there are rules or expectations)
        assert got.num_rows == duck.num_rows
        assert got.violations == duck.violations
    # The rows themselves ride through untouched.
    if duck.num_rows:
        whole = got.valid.unionByName(got.rejected.drop(REASONS)).toArrow()
        assert sorted(whole.column(ROW).to_pylist()) == ids
    return got


def test_row_is_the_engines() -> None:
    assert ROW == ENGINE_ROW == "__dp_row"


# ---- the data-driven cases ----------------------------------------------------------------


@pytest.mark.parametrize("path", CHECK, ids=lambda p: p.stem)
def test_case(spark: SparkSession, path: Path) -> None:
    case: dict[str, Any] = load_yaml(path)
    contract = Contract.from_config(path.stem, case["contract"])
    now = datetime.fromisoformat(case["now"]) if "now" in case else NOW
    _same(
        spark,
        contract,
        batch(case, contract),
        references=reference_tables(case) or None,
        input_rows=case.get("input_rows"),
        now=now,
    )


# ---- nasty values -------------------------------------------------------------------------

NASTY_DOUBLES = [
    None,
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    0.0,
    0.1,
    1e20,
    1e21,
    1e16,
    1e15,
    1e-5,
    1e-4,
    5e-324,
    1e23,
    -1.6130484589462314e17,
    123456789.123,
    2.0**-44,
    1.7976931348623157e308,
]


def _contract(config: dict[str, Any], table: str = "nasty") -> Contract:
    return Contract.from_config(table, config)


def test_numbers(spark: SparkSession) -> None:
    contract = _contract(
        {
            "columns": {
                "id": {"type": "int64", "not_null": True, "unique": True, "min": 1},
                "amount": {"type": "decimal(12,2)", "min": "0.005", "max": "99999999.99"},
                "score": {"type": "double", "min": -1e300, "max": 1e20},
                "ratio": {"type": "float", "min": 0.1, "accepted_values": [0.1, 0.5, 1]},
                "small": {"type": "int8", "max": 100, "accepted_values": [1, 2, 100]},
                "big": {"type": "decimal(38,0)", "max": "99999999999999999999999999999999999"},
                "huge": {"type": "int64", "max": "9223372036854775806", "min": "-2.5"},
            },
            "rules": [{"expression_is_true": "amount >= 0 OR score IS NULL", "column": "score"}],
        }
    )
    n = len(NASTY_DOUBLES)
    ids = [1, 2, 2, 0, None, *range(3, n - 2)]
    amounts = [
        Decimal("0.00"),
        Decimal("0.01"),
        Decimal("-0.01"),
        Decimal("99999999.99"),
        None,
        Decimal("-9999999999.99"),
    ]
    ratios = [0.1, 0.09, float("nan"), 3.4e38, 1e-5, None, 0.5, 1.0, 16777216.0, 0.3]
    table = pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "amount": pa.array([amounts[i % len(amounts)] for i in range(n)], pa.decimal128(12, 2)),
            "score": pa.array(NASTY_DOUBLES, pa.float64()),
            "ratio": pa.array([ratios[i % len(ratios)] for i in range(n)], pa.float32()),
            "small": pa.array(
                [(i * 37) % 256 - 128 if i % 5 else None for i in range(n)], pa.int8()
            ),
            "big": pa.array(
                [Decimal(10**37) if i % 3 == 0 else Decimal(-(10**37)) + i for i in range(n)],
                pa.decimal128(38, 0),
            ),
            "huge": pa.array([2**63 - 1 if i % 2 else -(2**63) for i in range(n)], pa.int64()),
        }
    )
    _same(spark, contract, table)


def test_float_text_is_duckdbs(spark: SparkSession) -> None:
    """Every double and float shown as a value is written as DuckDB writes it."""
    rng = random.Random(7)
    doubles = [v for v in NASTY_DOUBLES if v is not None]
    doubles += [
        struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(600)
    ]
    doubles += [round(rng.uniform(-1e6, 1e6), rng.randint(0, 8)) for _ in range(300)]
    doubles += [rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30) for _ in range(300)]
    contract = _contract(
        {
            "columns": {
                "d": {"type": "double", "not_null": True},
                "f": {"type": "float", "not_null": True},
            },
            "rules": [
                {"expression_is_true": "false", "column": "d"},
                {"name": "f", "expression_is_true": "false", "column": "f"},
            ],
        }
    )
    table = pa.table(
        {
            "d": pa.array(doubles, pa.float64()),
            "f": pa.array(doubles, pa.float64()).cast(pa.float32(), safe=False),
        }
    )
    _same(spark, contract, table)


def test_strings(spark: SparkSession) -> None:
    long = "é" * 150 + "👍" * 100 + "x"
    contract = _contract(
        {
            "columns": {
                "name": {
                    "type": "string",
                    "not_null": True,
                    "unique": True,
                    "pattern": "^[A-Z][a-z]+$",
                    "min_length": 2,
                    "max_length": 5,
                },
                "code": {"type": "string", "pattern": r"\bfoo\b"},
                "space": {"type": "string", "pattern": r"^a\sb$"},
                "alpha": {"type": "string", "pattern": "^[[:alpha:]]+[^[:digit:]]?$"},
                "status": {"type": "text", "accepted_values": ["new", "paid", "it's", ""]},
                "note": {
                    "type": "string",
                    "max_length": {"value": 10, "message": "too long: keep it short"},
                },
            },
            "rules": [
                {
                    "name": "dotall",
                    "expression_is_true": "regexp_matches(note, '^x.y$') OR note IS NULL"
                    " OR length(note) > 10",
                    "column": "note",
                },
                {
                    "name": "ci",
                    "expression_is_true": "regexp_matches(status, 'PAID|new|^$', 'i')"
                    " OR status = 'it''s' OR status IS NULL",
                    "column": "status",
                },
            ],
        }
    )
    rows = [
        ("Abc", "foo", "a b", "abc", "new", "x\ny"),
        ("Abc\n", "éfoo", "a\x0bb", "ab1", "paid", "x\ry"),
        ("Éa", "a_foo", "a\tb", "ab:", "PAID", "x\u2028y"),
        ("héllo👍", "foo-bar", "a\nb", "[]", "lost", long),
        ("", None, None, None, "it's", "x" * 250),
        (None, "FOO", "ab", "a\u00e9", "", "xyz"),
        ("Abc", "foo\n", "a  b", "a!", None, "x\\y"),
        ("Ab'c,", "foo", "a b", "ABC", "new", None),
    ]
    table = pa.table(
        {
            name: pa.array([r[k] for r in rows], pa.string())
            for k, name in enumerate(["name", "code", "space", "alpha", "status", "note"])
        }
    )
    _same(spark, contract, table)


def test_temporal(spark: SparkSession) -> None:
    contract = _contract(
        {
            "columns": {
                "d": {
                    "type": "date",
                    "min": "2000-01-01",
                    "max": "2030-12-31",
                    "not_in_future": True,
                    "accepted_values": ["2020-02-29", "2026-01-15", "2027-01-01", "0044-03-15"],
                },
                "ts": {"type": "timestamp", "min": "2020-01-01T00:00:00", "not_in_future": True},
                "tz": {
                    "type": "timestamptz",
                    "min": "2020-01-01T00:00:00+02:00",
                    "not_in_future": True,
                    "unique": True,
                },
            },
            "rules": [
                {"name": "order", "expression_is_true": "tz >= ts", "column": "tz"},
                {
                    "name": "year",
                    "expression_is_true": "strftime(d, '%Y') <> '2027'",
                    "column": "d",
                },
            ],
        }
    )
    paris = pa.timestamp("us", tz="Europe/Paris")
    micro = timedelta(microseconds=1)
    table = pa.table(
        {
            "d": pa.array(
                [
                    date(2020, 2, 29),
                    date(1999, 12, 31),
                    date(2026, 1, 15),
                    date(2026, 1, 16),
                    date(44, 3, 15),
                    None,
                    date(9999, 12, 31),
                    date(2027, 1, 1),
                ],
                pa.date32(),
            ),
            "ts": pa.array(
                [
                    datetime(2020, 1, 1),
                    datetime(2019, 12, 31, 23, 59, 59, 999999),
                    datetime(2026, 1, 15, 12, 0, 0, 123456),
                    datetime(2026, 1, 15, 12, 0, 0, 123457),
                    datetime(2024, 6, 1, 10, 0, 0, 100000),
                    None,
                    datetime(1, 1, 1),
                    datetime(2024, 6, 1, 10),
                ],
                pa.timestamp("us"),
            ),
            "tz": pa.array(
                [
                    datetime(2020, 1, 1, tzinfo=UTC) - timedelta(hours=2),
                    datetime(2020, 1, 1, tzinfo=UTC) - timedelta(hours=2) - micro,
                    NOW,
                    NOW + micro,
                    datetime(2024, 6, 1, 8, tzinfo=UTC),
                    datetime(2024, 6, 1, 8, tzinfo=UTC),
                    None,
                    datetime(2024, 6, 1, 10, 0, 0, 120000, tzinfo=UTC),
                ],
                paris,
            ),
        }
    )
    _same(spark, contract, table)


def test_booleans_bytes_json(spark: SparkSession) -> None:
    contract = _contract(
        {
            "columns": {
                "flag": {"type": "boolean", "not_null": True, "accepted_values": [True]},
                "blob": {"type": "bytes", "min_length": 2, "max_length": 4, "unique": True},
                "doc": {"type": "json", "not_null": True},
            },
            "rules": [{"unique": ["flag", "blob"], "name": "pair"}],
        }
    )
    table = pa.table(
        {
            "flag": pa.array([True, False, None, True, True, False], pa.bool_()),
            "blob": pa.array(
                [b"\x00", b"ab\\'\"", "é".encode(), bytes(range(250, 256)), b"", b"\x00"],
                pa.binary(),
            ),
            "doc": pa.array(['{"a": [1, 2]}', "not json", None, "[]", '"x"', "{"], pa.string()),
        }
    )
    _same(spark, contract, table)


def test_table_rules_and_odd_names(spark: SparkSession) -> None:
    odd = ["order id", 'we"ird', "a.b", "back`tick", "Upper Case"]
    contract = _contract(
        {
            "owner": "#team",
            "columns": {
                "order id": {"type": "int64", "not_null": True, "owner": "#orders"},
                'we"ird': {"type": "string", "accepted_values": ["x", "y, z", "NULL", " s"]},
                "a.b": {"type": "double", "min": 0},
                "back`tick": {"type": "string"},
                "Upper Case": {"type": "int32", "expression_is_true": '"Upper Case" <> 13'},
            },
            "rules": [
                {"unique": ["order id", 'we"ird', "a.b"]},
                {
                    "name": "pair",
                    "unique": ['we"ird', "back`tick"],
                    "message": "{n} rows share {n}",
                },
                {"name": "one", "unique": ["back`tick"], "owner": "#one"},
                {"name": "shown", "unique": ["a.b", "order id"], "column": "a.b"},
                {
                    "name": "dotted",
                    "expression_is_true": '"a.b" < 100 AND "back`tick" <> \'bad\'',
                    "column": "back`tick",
                },
                {
                    "name": "lookup",
                    "relationships": {"column": "order id", "to": "orders", "field": "the id"},
                },
                {
                    "name": "text_lookup",
                    "relationships": {"column": "back`tick", "to": "names", "field": "n"},
                },
                {"name": "plain", "expression_is_true": '"order id" % 2 = 0 OR "a.b" IS NULL'},
            ],
        }
    )
    rows = [
        (1, "y, z", 1.5, "k", 13),
        (1, "y, z", 1.5, "k", 1),
        (2, "NULL", float("nan"), "bad", None),
        (2, "NULL", float("nan"), "it's", 2),
        (3, " s", -0.0, None, 3),
        (4, " s", 0.0, "k", 4),
        (None, "x", None, "x", 5),
        (None, "x", None, "zz", 6),
        (5, "q", 1e300, "", 7),
    ]
    table = pa.table(
        {
            name: pa.array([r[k] for r in rows], t)
            for k, (name, t) in enumerate(
                zip(
                    odd,
                    [pa.int64(), pa.string(), pa.float64(), pa.string(), pa.int32()],
                    strict=True,
                )
            )
        }
    )
    references = {
        "orders": pa.table({"the id": pa.array([1, 2, 2, None, 4], pa.int32())}),
        "names": pa.table({"n": pa.array(["k", "it's", None, "", "bad"], pa.string())}),
    }
    _same(spark, contract, table, references=references)


@pytest.mark.parametrize("on_fail", ["reject_batch", "warn"])
@pytest.mark.parametrize("rows", [0, 3, 6])
def test_expectations(spark: SparkSession, on_fail: str, rows: int) -> None:
    contract = _contract(
        {
            "owner": "#o",
            "on_missing_column": "pass",
            "columns": {
                "a": {"type": "int64", "min": 0, "owner": "#a"},
                "gone": "string",
            },
            "expectations": [
                {"row_count_not_zero": True, "on_fail": on_fail},
                {"row_count_between": {"min": 1, "max": 4}, "on_fail": on_fail},
                {"null_share": {"column": "a", "max": 0.3}, "on_fail": on_fail, "message": "few a"},
                {
                    "name": "gone_share",
                    "null_share": {"column": "gone", "max": 0.5},
                    "on_fail": "warn",
                },
            ],
        }
    )
    values = [1, None, -1, None, 5, 6][:rows]
    table = pa.table({"a": pa.array(values, pa.int64())})
    for input_rows in (None, 0, 7):
        _same(spark, contract, table, input_rows=input_rows)


@pytest.mark.parametrize("policy", ["pass", "reject_row", "reject_batch"])
def test_schema_policies(spark: SparkSession, policy: str) -> None:
    contract = _contract(
        {
            "on_unknown_column": policy,
            "on_missing_column": policy,
            "on_type_drift": policy,
            "columns": {
                "n": {"type": "int64", "not_null": True, "min": 0, "unique": True},
                "amount": {"type": "decimal(12,2)", "max": 100},
                "at": {"type": "timestamptz", "not_null": True},
                "gone": {"type": "string", "not_null": True},
                "flag": {"type": "boolean"},
                "nested": {"type": "int64"},
                "count": {"type": "int32", "max": 2, "unique": True},
                "size": {"type": "int16", "min": 1},
            },
            "rules": [{"expression_is_true": "n IS NULL OR n < 1000", "column": "n"}],
        }
    )
    table = pa.table(
        {
            "n": pa.array(["12", "x", "1.5", None, " 7 ", "-2.5", "1_000", "1e3"], pa.string()),
            "extra": pa.array(range(8), pa.int64()),
            "amount": pa.array([1.005, 2.5, None, 1e30, float("nan"), 100.0, 100.004, -1.0]),
            "count": pa.array([0.5, 2.5, -2.5, 1e30, float("nan"), None, 7.0, 1.49]),
            "size": pa.array(
                [Decimal(v) for v in ("0.5", "2.5", "-2.5", "99", "1.4", "1.6", "7", "-0.5")],
                pa.decimal128(5, 1),
            ),
            "at": pa.array(
                [
                    "2024-01-01T10:00:00Z",
                    "2024-01-01 10:00:00",
                    "nope",
                    None,
                    "2024-01-01T10:00:00+02:00",
                    "2024-13-01",
                    "",
                    "2024-01-01",
                ],
                pa.string(),
            ),
            "flag": pa.array([1, 0, None, 2, 1, 0, 1, 1], pa.int64()),
            "nested": pa.array([[1], None, [], [2, 3], None, [4], [5], [6]], pa.list_(pa.int64())),
        }
    )
    _same(spark, contract, table)


def test_every_rule_kind_and_policy_is_covered() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    texts = source + "\n".join(case.read_text(encoding="utf-8") for case in CHECK)
    for rule in RULES:
        assert f'"{rule.name}"' in source, f"no nasty case uses rule `{rule.name}`"
    for kind in (*TABLE_RULE_KINDS, *EXPECTATION_KINDS):
        assert f'"{kind}"' in source, f"no nasty case uses `{kind}`"
    for key in ("on_unknown_column", "on_missing_column", "on_type_drift"):
        for policy in ("pass", "reject_row", "reject_batch"):
            assert f"{key}: {policy}" in texts or f'"{key}": policy' in source


def test_duplicate_columns_rejected_the_same(spark: SparkSession) -> None:
    contract = _contract({"columns": {"a": "int64"}})
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    frame = spark.createDataFrame(table.append_column(ROW, pa.array([0], pa.int64())))
    with pytest.raises(BatchRejectedError) as duck:
        contract.check(table)
    with pytest.raises(BatchRejectedError) as ours:
        check_frame(contract, frame)
    assert str(ours.value) == str(duck.value)
    assert ours.value.reasons == duck.value.reasons


def test_missing_reference_the_same(spark: SparkSession) -> None:
    contract = _contract(
        {
            "columns": {"a": "int64"},
            "rules": [{"relationships": {"column": "a", "to": "t", "field": "k"}}],
        }
    )
    table = pa.table({"a": pa.array([1], pa.int64())})
    _same(spark, contract, table, references={})
    _same(spark, contract, table, references={"t": pa.table({"x": [1]})})
    _same(spark, contract, table, references={"t": pa.table({"k": ["1"]})})


# ---- translation ---------------------------------------------------------------------------


def test_spark_regex() -> None:
    assert spark_regex("^a$") == r"(?d)^a\z"
    assert spark_regex("(?m)^a$") == "(?d)(?m)^a$"
    assert spark_regex(r"a\sb[\s]") == r"(?d)a[\t\n\f\r ]b[\t\n\f\r ]"
    assert spark_regex("[[:alpha:]][^[:digit:]][[:^space:]]") == (
        r"(?d)[\p{Alpha}][^\p{Digit}][\P{Space}]"
    )
    assert spark_regex("[]a[&&]") == r"(?d)[\]a\[\&\&]"
    assert spark_regex(r"(?P<x>a)\Q$[\E$") == r"(?d)(?<x>a)\Q$[\E\z"


def test_spark_expression() -> None:
    assert spark_expression("\"my col\" >= 0 AND s <> 'it''s'") == (
        "`my col` >= 0 AND s <> 'it\\'s'"
    )
    assert spark_expression("regexp_full_match(s, 'a|b')") == "s RLIKE '(?d)^(?:a|b)\\\\z'"
    with pytest.raises(ValueError, match="rule `r1`: SQL expression does not translate"):
        spark_expression("regexp_matches(s, 'a', 's')", rule="r1")
    with pytest.raises(ValueError, match="rule `expression_is_true`"):
        spark_expression("a >")


def test_ensure_translates(spark: SparkSession) -> None:
    good = _contract(
        {
            "columns": {"a b": {"type": "string", "expression_is_true": 'length("a b") > 1'}},
            "rules": [{"expression_is_true": "\"a b\" ~ '^x$'"}],
        }
    )
    ensure_translates(good, spark)
    bad = _contract(
        {
            "columns": {"s": {"type": "string", "pattern": "(?P<word_1>a)"}},
            "rules": [
                {"name": "jac", "expression_is_true": "jaccard(s, 'abc') > 0.5"},
                {"name": "opt", "expression_is_true": "regexp_matches(s, 'a', 's')"},
            ],
        }
    )
    problems = spark_problems(bad, spark)
    assert [p.path for p in problems] == [
        ("columns", "s", "pattern"),
        ("rules", 0, "expression_is_true"),
        ("rules", 1, "expression_is_true"),
    ]
    assert "rule `jac`: does not run on Spark" in problems[1].message
    assert "rule `opt`: SQL expression does not translate" in problems[2].message
    with pytest.raises(ContractError, match="contract of table `nasty`: rules\\[0\\]"):
        ensure_translates(bad, spark)


def test_frame_needs_row(spark: SparkSession) -> None:
    contract = _contract({"columns": {"a": "int64"}})
    with pytest.raises(ValueError, match="__dp_row"):
        check_frame(contract, spark.createDataFrame(pa.table({"a": [1]})))


# ---- documented differences ------------------------------------------------------------------


def test_failing_expression_rejects_the_batch_with_sparks_message(spark: SparkSession) -> None:
    contract = _contract(
        {"columns": {"s": {"type": "string", "expression_is_true": "CAST(s AS INTEGER) > 0"}}}
    )
    table = pa.table({"s": ["1", "x"]})
    frame, held, _ = _frame(spark, table)
    with pytest.raises(BatchRejectedError) as duck:
        contract.check(held)
    with pytest.raises(BatchRejectedError) as ours:
        check_frame(contract, frame)
    prefix = "a rule could not run on the batch: "
    assert str(duck.value).split(prefix)[0] == str(ours.value).split(prefix)[0]
    assert "CAST_INVALID_INPUT" in str(ours.value)
    assert [r["rule"] for r in ours.value.reasons] == ["check_failed"]


def test_division_by_zero_is_an_error_on_spark(spark: SparkSession) -> None:
    contract = _contract(
        {"columns": {"a": "int64", "b": "int64"}, "rules": [{"expression_is_true": "a / b > 1"}]}
    )
    table = pa.table({"a": pa.array([4, 1], pa.int64()), "b": pa.array([2, 0], pa.int64())})
    frame, held, _ = _frame(spark, table)
    assert contract.check(held).num_invalid == 0  # DuckDB: 1 / 0 is inf
    with pytest.raises(BatchRejectedError, match="DIVIDE_BY_ZERO"):
        check_frame(contract, frame)


def test_json_is_stricter_on_spark(spark: SparkSession) -> None:
    contract = _contract({"columns": {"doc": "json"}})
    table = pa.table({"doc": ["NaN", "[1,]", '{"a": 1, "a": 2}', "[1]"]})
    frame, held, ids = _frame(spark, table)
    assert contract.check(held).num_invalid == 0
    rejected = check_frame(contract, frame).rejected.select(quote(ROW)).collect()
    assert sorted(r[0] for r in rejected) == ids[:3]


def test_spark_types_decide_drift(spark: SparkSession) -> None:
    """Spark has no unsigned types: uint64 data is decimal(20,0) there."""
    contract = _contract({"on_type_drift": "reject_batch", "columns": {"a": "int64"}})
    table = pa.table({"a": pa.array([1], pa.uint64())})
    with pytest.raises(BatchRejectedError, match="column `a` is uint64"):
        contract.check(table)
    frame, _, _ = _frame(spark, table)
    with pytest.raises(BatchRejectedError, match=r"column `a` is decimal128\(20, 0\)"):
        check_frame(contract, frame)
