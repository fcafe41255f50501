"""Contracts beyond the data cases: versioning, owners, types, the registry, the config,
results' shape, runtime failures, threads, and the docstring examples."""

from __future__ import annotations

import doctest
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import dataplump.contracts
from dataplump.config import load_config
from dataplump.contracts import (
    RULES,
    BatchRejectedError,
    ColumnSpec,
    Contract,
    ContractError,
    LogicalType,
    parse_type,
)
from dataplump.contracts import check as check_module
from dataplump.contracts import rules as rules_module
from dataplump.contracts import spec as spec_module
from dataplump.contracts import types as types_module
from dataplump.errors import ConfigError, TerminalError
from tests.unit.contracts.helpers import ROOT

ORDERS: dict[str, Any] = {
    "version": "1.2.0",
    "owner": "#orders",
    "columns": {
        "id": {"type": "int64", "not_null": True, "unique": True},
        "amount": {"type": "decimal(12,2)", "min": 0},
    },
}


# ---- versioning ---------------------------------------------------------------------------


def test_content_hash_is_stable_and_ignores_how_it_is_written() -> None:
    long_form = {
        "version": "1.2.0",
        "owner": "#orders",
        "on_unknown_column": "pass",
        "columns": {
            "id": {"type": "INT64", "not_null": {"value": True}, "unique": True, "min": None},
            "amount": {"type": "decimal( 12 , 2 )", "min": {"value": 0}, "not_in_future": False},
        },
    }
    a = Contract.from_config("orders", ORDERS)
    b = Contract.from_config("orders", long_form)
    assert a.content_hash == b.content_hash
    assert len(a.content_hash) == 12
    assert int(a.content_hash, 16) >= 0
    assert a.version_label == f"1.2.0+{a.content_hash}"


@pytest.mark.parametrize(
    "change",
    [
        {"version": "1.2.1"},
        {"owner": "#finance"},
        {"on_type_drift": "pass"},
        {"columns": {**ORDERS["columns"], "amount": {"type": "decimal(12,2)", "min": 1}}},
    ],
)
def test_content_hash_changes_with_meaning(change: dict[str, object]) -> None:
    base = Contract.from_config("orders", ORDERS)
    changed = Contract.from_config("orders", {**ORDERS, **change})
    assert changed.content_hash != base.content_hash


def test_every_result_carries_the_version() -> None:
    contract = Contract.from_config("orders", ORDERS)
    result = contract.check(pa.table({"id": [1, 1], "amount": pa.array([1, 2], pa.int32())}))
    assert (result.contract_version, result.contract_hash) == ("1.2.0", contract.content_hash)
    assert result.table == "orders"
    unversioned = Contract.from_config("orders", {"columns": {"id": "int64"}})
    assert unversioned.version is None
    assert unversioned.version_label.startswith("unversioned+")


def test_integer_version_becomes_text() -> None:
    assert Contract.from_config("t", {"version": 3, "columns": {}}).version == "3"


# ---- owners -------------------------------------------------------------------------------


def test_owner_of_prefers_rule_then_column_then_contract() -> None:
    contract = Contract.from_config(
        "orders",
        {
            "owner": "#data",
            "columns": {
                "a": {"type": "int64", "owner": "ann", "min": {"value": 0, "owner": "bob"}},
                "b": {"type": "int64", "not_null": True},
            },
            "rules": [{"name": "r", "expression_is_true": "a < b", "owner": "carl"}],
        },
    )
    assert contract.owner_of("min", "a") == "bob"
    assert contract.owner_of("type", "a") == "ann"
    assert contract.owner_of("not_null", "b") == "#data"
    assert contract.owner_of("r", None) == "carl"
    assert contract.owner_of("unknown_column", "zz") == "#data"
    result = contract.check(pa.table({"a": [-1], "b": [None], "c": [1]}))
    assert result.owners == ("bob", "#data")


# ---- types --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "actual", "drift"),
    [
        ("integer", pa.int32(), False),
        ("int64", pa.uint32(), False),
        ("int64", pa.uint64(), True),
        ("int32", pa.int64(), True),
        ("int16", pa.uint8(), False),
        ("decimal(15,2)", pa.decimal128(15, 2), False),
        ("decimal(15,2)", pa.decimal128(10, 2), False),
        ("decimal(15,2)", pa.decimal128(15, 3), True),
        ("decimal(15,2)", pa.decimal128(16, 2), True),
        ("decimal(12,2)", pa.int32(), False),
        ("decimal(12,2)", pa.int64(), True),
        ("decimal(12,2)", pa.float64(), True),
        ("double", pa.float32(), False),
        ("double", pa.int32(), False),
        ("double", pa.int64(), True),
        ("float", pa.float64(), True),
        ("string", pa.large_string(), False),
        ("string", pa.dictionary(pa.int8(), pa.string()), False),
        ("string", pa.int64(), True),
        ("timestamp", pa.timestamp("ns"), False),
        ("timestamp", pa.timestamp("us", tz="UTC"), True),
        ("timestamptz", pa.timestamp("ms", tz="America/New_York"), False),
        ("timestamptz", pa.timestamp("us"), True),
        ("timestamptz", pa.string(), True),
        ("date", pa.date64(), False),
        ("date", pa.timestamp("us"), True),
        ("boolean", pa.bool_(), False),
        ("boolean", pa.int8(), True),
        ("json", pa.string(), False),
        ("json", pa.struct([("a", pa.int64())]), False),
        ("json", pa.int64(), True),
        ("bytes", pa.binary(8), False),
        ("bytes", pa.string(), True),
        ("int64", pa.null(), False),
    ],
)
def test_type_drift(declared: str, actual: pa.DataType, drift: bool) -> None:
    assert parse_type(declared).accepts(actual) is not drift


@pytest.mark.parametrize(
    ("word", "arrow", "duckdb"),
    [
        ("integer", pa.int64(), "BIGINT"),
        ("int8", pa.int8(), "TINYINT"),
        ("decimal(38,10)", pa.decimal128(38, 10), "DECIMAL(38,10)"),
        ("float", pa.float32(), "FLOAT"),
        ("double", pa.float64(), "DOUBLE"),
        ("text", pa.string(), "VARCHAR"),
        ("boolean", pa.bool_(), "BOOLEAN"),
        ("date", pa.date32(), "DATE"),
        ("timestamp", pa.timestamp("us"), "TIMESTAMP"),
        ("timestamptz", pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ"),
        ("json", pa.string(), "JSON"),
        ("bytes", pa.binary(), "BLOB"),
    ],
)
def test_type_mapping(word: str, arrow: pa.DataType, duckdb: str) -> None:
    declared = parse_type(word)
    assert isinstance(declared, LogicalType)
    assert (declared.arrow(), declared.duckdb) == (arrow, duckdb)
    assert declared.accepts(declared.arrow())


@pytest.mark.parametrize(
    ("word", "fragment"),
    [
        ("bigint", "did you mean `int64`?"),
        ("varchar", "did you mean `string`?"),
        ("decimal(40,2)", "1 <= p <= 38"),
        ("decimal(5,6)", "0 <= s <= p"),
        ("numeric", "did you mean `decimal(p,s)`?"),
        ("decimal(12", "is cut at its comma"),
        ("timestamp_tz", "did you mean `timestamptz`?"),
    ],
)
def test_bad_type_words(word: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=r"type|decimal") as caught:
        parse_type(word)
    assert fragment in str(caught.value)


def test_arrow_schema() -> None:
    schema = Contract.from_config("orders", ORDERS).arrow_schema()
    assert schema == pa.schema(
        [pa.field("id", pa.int64(), nullable=False), pa.field("amount", pa.decimal128(12, 2))]
    )


# ---- the registry -------------------------------------------------------------------------


def test_column_fields_follow_the_registry() -> None:
    fields = [name for name in ColumnSpec.model_fields if name not in spec_module.COLUMN_KEYS]
    assert fields == [rule.name for rule in RULES]
    for rule in RULES:
        assert "Example:" in (rule.__doc__ or ""), rule.name
        assert ColumnSpec.model_fields[rule.name].annotation is not None


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_docstring_example_loads(rule: type[rules_module.ColumnRule]) -> None:
    """Each rule's ``Example: ``col: {...}``` is a column that loads."""
    doc = rule.__doc__ or ""
    example = doc.split("Example:", 1)[1].split("``")[1]
    from ruamel.yaml import YAML

    column = YAML(typ="safe").load(example)
    columns = dict(column)
    for other in ("ordered_at", "amount"):  # columns the examples refer to
        columns.setdefault(other, {"type": "date" if other == "ordered_at" else "int64"})
    contract = Contract.from_config("t", {"columns": columns})
    assert any(r.name == rule.name for s in contract.columns.values() for r in s.rules)


# ---- results ------------------------------------------------------------------------------


def test_decimals_come_back_exact() -> None:
    contract = Contract.from_config(
        "t", {"columns": {"x": {"type": "decimal(38,18)", "max": "0.300000000000000000"}}}
    )
    values = [Decimal("0.1") + Decimal("0.2"), Decimal("0.300000000000000001"), None]
    result = contract.check(pa.table({"x": pa.array(values, pa.decimal128(38, 18))}))
    assert result.valid.column("x").to_pylist() == [Decimal("0.300000000000000000"), None]
    assert result.invalid.column("x").to_pylist() == [Decimal("0.300000000000000001")]
    assert result.reasons.to_pylist()[0][0]["value"] == "0.300000000000000001"


def test_record_batch_and_chunked_input() -> None:
    contract = Contract.from_config("orders", ORDERS)
    batch = pa.record_batch({"id": [1, 2, 2], "amount": pa.array([1, -1, 3], pa.int32())})
    result = contract.check(batch)
    assert result.invalid_rows.to_pylist() == [1, 2]
    chunked = pa.Table.from_batches([batch.slice(0, 1), batch.slice(1)])
    assert contract.check(chunked).invalid_rows.to_pylist() == [1, 2]


def test_counts_and_rejections() -> None:
    contract = Contract.from_config("orders", ORDERS)
    result = contract.check(
        pa.table({"id": [1, None, 3, 3], "amount": pa.array([-1, -2, 0, 0], pa.int32())})
    )
    assert [(v.rule, v.column, v.rows, v.owner) for v in result.violations] == [
        ("not_null", "id", 1, "#orders"),
        ("unique", "id", 2, "#orders"),
        ("min", "amount", 2, "#orders"),
    ]
    assert (result.num_rows, result.num_invalid) == (4, 4)
    assert [row for row, _ in result.rejections()] == [0, 1, 2, 3]


def test_naive_now_means_utc() -> None:
    contract = Contract.from_config(
        "t", {"columns": {"at": {"type": "timestamptz", "not_in_future": True}}}
    )
    table = pa.table({"at": pa.array([datetime(2025, 1, 1, 0, 30, tzinfo=UTC)])})
    assert contract.check(table, now=datetime(2025, 1, 1, 1, 0)).num_invalid == 0
    assert contract.check(table, now=datetime(2025, 1, 1, 0, 0)).num_invalid == 1
    assert contract.check(table, now=datetime(2025, 1, 1)).checked_at.tzinfo is UTC


def test_a_rule_failing_at_run_time_rejects_the_batch() -> None:
    contract = Contract.from_config(
        "orders",
        {
            "version": "7",
            "columns": {
                "code": {"type": "string", "expression_is_true": "CAST(code AS INTEGER) > 0"}
            },
        },
    )
    assert contract.check(pa.table({"code": ["12"]})).num_invalid == 0
    with pytest.raises(BatchRejectedError) as caught:
        contract.check(pa.table({"code": ["12", "abc"]}))
    error = caught.value
    assert isinstance(error, TerminalError)
    assert "a rule could not run on the batch: Conversion Error" in str(error)
    assert error.reasons[0]["rule"] == "check_failed"
    assert (error.table, error.contract_version) == ("orders", "7")


def test_duplicate_batch_columns_reject_the_batch() -> None:
    contract = Contract.from_config("orders", ORDERS)
    table = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["id", "id"])
    with pytest.raises(BatchRejectedError, match="two columns called `id`"):
        contract.check(table)


def test_the_query_is_built_once_per_schema() -> None:
    contract = Contract.from_config("orders", ORDERS)
    table = pa.table({"id": [1], "amount": pa.array([1], pa.int32())})
    contract.check(table)
    contract.check(table.slice(0, 0))
    assert len(contract._plans) == 1
    contract.check(table.cast(pa.schema([("id", pa.int32()), ("amount", pa.int64())])))
    assert len(contract._plans) == 2


def test_threads_check_at_once() -> None:
    contract = Contract.from_config("orders", ORDERS)
    amounts = pa.array([1] * 10_001, pa.int32())
    table = pa.table({"id": [*range(10_000), 0], "amount": amounts})
    found: list[list[int]] = []

    def work() -> None:
        for _ in range(5):
            found.append(contract.check(table).invalid_rows.to_pylist())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [[0, 10_000]] * 20


def test_sql_cannot_read_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    expression = "a IN (SELECT a FROM 'FILE')".replace("FILE", str(secret))
    with pytest.raises(ContractError, match="does not run"):
        Contract.from_config(
            "t", {"columns": {"a": {"type": "int64", "expression_is_true": expression}}}
        )


# ---- the config ---------------------------------------------------------------------------


def test_load_config_loads_the_contracts(tmp_path: Path) -> None:
    (tmp_path / "orders.yaml").write_text(
        "version: '2'\ncolumns:\n  id: {type: int64, not_null: true}\n"
    )
    pipeline = tmp_path / "dataplump.yaml"
    pipeline.write_text(
        "pipeline: {name: shop}\n"
        'source: {url: "sqlite:///demo.db"}\n'
        "tables:\n"
        "  orders: {primary_key: id, contract: orders.yaml}\n"
        "  customers:\n"
        "    primary_key: id\n"
        "    contract:\n"
        "      columns: {id: {type: int64, unique: true}}\n"
        "  events: {primary_key: id}\n"
    )
    config = load_config(pipeline, env={})
    orders = config.contract("orders")
    assert orders is not None
    assert (orders.table, orders.version, orders.source) == (
        "orders",
        "2",
        tmp_path / "orders.yaml",
    )
    customers = config.contract("customers")
    assert customers is not None
    assert customers.source is None
    assert customers.columns["id"].unique is not None
    assert config.contract("events") is None
    assert config.tables["orders"].contract == tmp_path / "orders.yaml"  # kept as written
    with pytest.raises(ConfigError, match="did you mean `orders`"):
        config.contract("order")


def test_the_config_examples_load() -> None:
    config = load_config(ROOT / "tests" / "cases" / "config" / "good" / "full.yaml", env={})
    orders = config.contract("orders")
    assert orders is not None
    assert orders.columns["id"].not_null is not None


# ---- docstring examples -------------------------------------------------------------------


@pytest.mark.parametrize(
    "module",
    [dataplump.contracts, spec_module, check_module, rules_module, types_module],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.failed == 0


def test_view_and_extension_types() -> None:
    """string_view / binary_view columns (which pyarrow cannot filter directly) and the
    arrow.json extension type come back in the batch's own schema."""
    contract = Contract.from_config(
        "t",
        {
            "columns": {
                "j": {"type": "json", "not_null": True},
                "s": {"type": "string", "max_length": 1},
                "b": {"type": "bytes", "max_length": 1},
            }
        },
    )
    table = pa.table(
        {
            "j": pa.array(['{"a": 1}', None, "[]"]).cast(pa.json_()),
            "s": pa.array(["ab", "c", "d"]).cast(pa.string_view()),
            "b": pa.array([b"a", b"b", b"cc"]).cast(pa.binary_view()),
        }
    )
    result = contract.check(table)
    assert result.schema_issues == ()
    assert result.invalid_rows.to_pylist() == [0, 1, 2]
    assert (result.valid.schema, result.invalid.schema) == (table.schema, table.schema)
    assert result.invalid.column("s").to_pylist() == ["ab", "c", "d"]
