"""The SQL step: DuckDB over the batch, lineage through `*`, joins with references."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from dataplump.engine import ReferenceTables, StepFailed, TableTransform, parse_steps
from tests.unit.engine.helpers import apply, pipeline

BATCH = pa.table(
    {
        "id": [1, 2, 3],
        "customer_id": [10, 20, 99],
        "amount": pa.array([Decimal("1.50"), Decimal("2.25"), None], pa.decimal128(10, 2)),
    }
)


def test_select_star_keeps_lineage_and_exact_types() -> None:
    result = apply(
        BATCH, {"sql": "SELECT *, amount * 2 AS doubled FROM batch WHERE id <> 2 ORDER BY id DESC"}
    )
    assert result.output.column_names == ["id", "customer_id", "amount", "doubled"]
    assert result.output.schema.field("amount").type == pa.decimal128(10, 2)
    assert result.output["doubled"].to_pylist() == [None, Decimal("3.00")]
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [2, 0]


def test_table_name_is_an_alias_of_batch() -> None:
    result = apply(BATCH, {"sql": "SELECT o.* FROM orders o WHERE o.id = 3"})
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [2]


def test_group_by_loses_lineage() -> None:
    result = apply(BATCH, {"sql": "SELECT count(*) AS n FROM batch"}, {"cast": {"n": "int32"}})
    assert result.source_rows is None
    assert result.output.to_pylist() == [{"n": 3}]


def test_failures_after_lineage_loss_have_no_input_row() -> None:
    result = apply(BATCH, {"sql": "SELECT 'x' AS n FROM batch"}, {"cast": {"n": "int32"}})
    assert result.row_failures["input_row"].to_pylist() == [None, None, None]


def test_unknown_column_fails_the_batch_with_duckdbs_line() -> None:
    with pytest.raises(StepFailed) as caught:
        apply(BATCH, {"drop_null": "id"}, {"sql": "SELECT cust FROM batch"})
    assert str(caught.value).startswith("table `orders`, step 2 (sql): Binder Error:")
    assert "cust" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_sql_cannot_read_files() -> None:
    with pytest.raises(StepFailed, match="step 1 \\(sql\\)"):
        apply(BATCH, {"sql": "SELECT * FROM read_csv('/etc/passwd')"})


def test_join_with_a_reference_table(tmp_path: Path) -> None:
    pacsv.write_csv(
        pa.table({"customer_id": [10, 20], "country": ["FR", "DE"]}), tmp_path / "customers.csv"
    )
    config = pipeline(
        tmp_path,
        [
            {
                "sql": "SELECT o.*, c.country FROM batch o"
                " LEFT JOIN customers c USING (customer_id) ORDER BY o.id"
            }
        ],
        references={"customers": {"csv": "customers.csv"}},
    )
    transform = TableTransform.from_config(config, "orders")
    result = transform.apply(BATCH)
    assert result.output["country"].to_pylist() == ["FR", "DE", None]
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [0, 1, 2]
    assert isinstance(transform.references, ReferenceTables)
    assert transform.describe() == [
        "1. sql SELECT o.*, c.country FROM batch o LEFT JOIN customers c USING (customer_id) ..."
    ]


def test_rows_a_sql_filter_drops_are_counted_per_step() -> None:
    steps, problems = parse_steps(
        [{"sql": "SELECT * FROM batch WHERE amount > 10"}, {"trim": ["status"]}], None
    )
    assert problems == []
    result = TableTransform("orders", steps).apply(
        pa.table({"id": [1, 2, 3, 4], "amount": [5, 20, 30, 1], "status": ["a", "b", "c", "d"]})
    )
    assert result.filtered == {"1:sql": 2}
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [1, 2]
