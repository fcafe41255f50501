"""SQL, pandas and polars steps on Spark give what the DuckDB engine gives for the same
rows: output rows (JSON bytes by lineage), row failures and filtered counts."""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pytest

from dataplump.engine import ROW, StepConfigError, StepFailed, parse_steps
from dataplump.engine.spark.transform import SparkTableTransform
from tests.unit.engine.spark.parity import assert_same, run_both

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

N = 60
ORDERS = pa.table(
    {
        "id": pa.array(range(1, N + 1), pa.int64()),
        "customer_id": pa.array([i % 7 if i % 11 else None for i in range(N)], pa.int64()),
        "status": pa.array([["paid", "new", None, "shipped"][i % 4] for i in range(N)]),
        "amount": pa.array([Decimal(i * 37 % 1000) / 10 for i in range(N)], pa.decimal128(10, 2)),
        "ts": pa.array(
            [datetime(2024, 1, 30, 22, tzinfo=UTC) + timedelta(hours=7 * i) for i in range(N)],
            pa.timestamp("us", tz="UTC"),
        ),
        "day": pa.array([date(2023, 12, 25) + timedelta(days=3 * i) for i in range(N)]),
    }
)
CUSTOMERS = pa.table(
    {
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "name": ["Ada", "Bob", "Cy", "Di", None],
        "credit": pa.array([Decimal("1.50"), None, Decimal("3.25"), Decimal(0), Decimal(9)]),
    }
)
CODE = """
import pandas as pd
import polars as pl

def bucket(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["amount"] > 20].assign(big=df["amount"] > 50, tag="t")
    return out.sort_values("id", ascending=False)

def reset(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index(drop=True)[["id", "status"]]

def boom(df: pd.DataFrame) -> pd.DataFrame:
    if len(df):
        raise KeyError("missing_column")
    return df

def flag(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("status").is_not_null()).with_columns(
        tag=pl.col("status").str.to_uppercase(), half=pl.col("amount") / 2
    )
"""


@pytest.fixture
def code(tmp_path: Path) -> Path:
    (tmp_path / "steps.py").write_text(textwrap.dedent(CODE))
    return tmp_path


def test_sql_enrichment_joins_a_reference(spark: SparkSession) -> None:
    query = (
        "SELECT o.*, c.name, c.credit, o.amount * 2 AS doubled FROM batch o"
        " LEFT JOIN customers c ON c.id = o.customer_id"
    )
    expected, actual = run_both(spark, ORDERS, [{"sql": query}], {"customers": CUSTOMERS})
    assert actual.has_lineage
    assert actual.filtered == {}
    assert_same(expected, actual)


def test_sql_where_and_inner_join_count_filtered_rows(spark: SparkSession) -> None:
    steps = [
        {"sql": "SELECT * FROM batch WHERE status IS NOT NULL AND amount > 10"},
        {"sql": "SELECT orders.*, c.name FROM orders JOIN customers c ON c.id = customer_id"},
    ]
    expected, actual = run_both(spark, ORDERS, steps, {"customers": CUSTOMERS})
    assert set(expected.filtered) == {"1:sql", "2:sql"}
    assert_same(expected, actual)


def test_case_coalesce_and_date_functions(spark: SparkSession) -> None:
    query = """
        SELECT *,
          CASE WHEN amount >= 50 THEN 'big' WHEN amount >= 10 THEN 'mid' ELSE 'small' END AS size,
          COALESCE(status, 'unknown') AS state,
          COALESCE(customer_id, -1) AS customer,
          date_trunc('month', day) AS month,
          CAST(ts AS DATE) AS ts_day,
          extract(year FROM ts) AS ts_year,
          strftime(ts, '%Y-%m-%d %H:%M') AS ts_text,
          date_diff('day', day, DATE '2024-03-01') AS days_to_march,
          day + INTERVAL 1 MONTH AS next_month,
          upper(substr(status, 1, 2)) || '-' || CAST(id AS VARCHAR) AS code,
          round(amount / 3, 2) AS third
        FROM batch
    """
    expected, actual = run_both(spark, ORDERS, [{"sql": query}])
    assert_same(expected, actual)


def test_group_by_loses_the_lineage(spark: SparkSession) -> None:
    query = "SELECT status, count(*) AS n, sum(amount) AS total FROM batch GROUP BY status"
    expected, actual = run_both(spark, ORDERS, [{"sql": query}, {"sql": "SELECT * FROM batch"}])
    assert not actual.has_lineage
    assert expected.source_rows is None
    assert_same(expected, actual)


def test_pandas_step_row_wise(spark: SparkSession, code: Path) -> None:
    steps = [{"pandas": "steps.py:bucket"}, {"sql": "SELECT * FROM batch WHERE id > 5"}]
    expected, actual = run_both(spark, ORDERS, steps, base=code)
    assert actual.output.rdd.getNumPartitions() >= 2  # the function ran per partition
    assert expected.filtered["1:pandas"] > 0
    assert_same(expected, actual)


def test_pandas_step_that_resets_the_index_loses_the_lineage(
    spark: SparkSession, code: Path
) -> None:
    expected, actual = run_both(spark, ORDERS, [{"pandas": "steps.py:reset"}], base=code)
    assert not actual.has_lineage
    assert_same(expected, actual)


def test_polars_step(spark: SparkSession, code: Path) -> None:
    expected, actual = run_both(spark, ORDERS, [{"polars": "steps.py:flag"}], base=code)
    assert expected.filtered == {"1:polars": N // 4}
    assert_same(expected, actual)


def test_a_user_function_that_raises_fails_its_step(spark: SparkSession, code: Path) -> None:
    steps, _ = parse_steps([{"sql": "SELECT * FROM batch"}, {"pandas": "steps.py:boom"}], code)
    transform = SparkTableTransform(spark, "orders", steps)
    with pytest.raises(StepFailed, match=r"step 2 \(pandas\): raised KeyError: 'missing_column'"):
        transform.apply(spark.createDataFrame(ORDERS))


def test_sql_errors_fail_the_batch_naming_the_step(spark: SparkSession) -> None:
    frame = spark.createDataFrame(ORDERS)
    steps, _ = parse_steps(
        [{"sql": "SELECT * FROM batch"}, {"sql": "SELECT *, nope + 1 AS x FROM batch"}], None
    )
    with pytest.raises(StepFailed, match=r"table `orders`, step 2 \(sql\): .*nope"):
        SparkTableTransform(spark, "orders", steps).apply(frame)
    steps, _ = parse_steps([{"sql": "SELECT *, CAST(status AS INTEGER) AS n FROM batch"}], None)
    with pytest.raises(StepFailed, match=r"step 1 \(sql\): .*CAST_INVALID_INPUT"):
        SparkTableTransform(spark, "orders", steps).apply(frame)
    assert not [t for t in spark.catalog.listTables() if t.name.startswith("__dp_")]


@pytest.mark.parametrize(
    ("query", "construct"),
    [
        ("SELECT * FROM batch QUALIFY row_number() OVER (ORDER BY id) = 1", "QUALIFY"),
        ("SELECT * FROM batch b ASOF JOIN customers c ON b.id >= c.id", "ASOF JOIN"),
        ("SELECT COLUMNS('a.*') FROM batch", "COLUMNS"),
        ("SELECT * FROM batch b POSITIONAL JOIN customers c", "POSITIONAL JOIN"),
        ("SELECT * FROM batch USING SAMPLE 10 ROWS (reservoir, 3)", "cannot run on Spark"),
    ],
)
def test_sql_that_does_not_translate_is_refused_before_data_flows(
    spark: SparkSession, query: str, construct: str
) -> None:
    steps, problems = parse_steps(
        [{"sql": "SELECT * FROM batch"}, {"sql": "SELECT * FROM batch"}, {"sql": query}], None
    )
    assert not problems
    with pytest.raises(StepConfigError) as info:
        SparkTableTransform(spark, "orders", steps, references={"customers": spark.range(1)})
    assert str(info.value).startswith("table `orders`, step 3 (sql): ")
    assert construct in str(info.value)
    assert "cannot run on Spark" in str(info.value)


def test_rows_are_numbered_in_partition_order(spark: SparkSession) -> None:
    frame = spark.createDataFrame(ORDERS).repartition(3, "status")
    order = [r["id"] for r in frame.collect()]
    steps, _ = parse_steps([{"sql": "SELECT * FROM batch"}], None)
    result = SparkTableTransform(spark, "orders", steps).apply(frame)
    got = {r["id"]: r[ROW] for r in result.output.collect()}
    assert [got[i] for i in order] == list(range(N))
    result.unpersist()


def test_built_in_steps_with_sql(spark: SparkSession) -> None:
    """Runs once `dataplump.engine.spark.builtin` (another branch) is merged."""
    pytest.importorskip("dataplump.engine.spark.builtin")
    batch = pa.table(
        {
            "id": [1, 2, 2, 3, 4, 5, 6],
            "status": [" Paid ", "new", "new", None, " x ", "shipped", "NEW"],
            "qty": ["1", "2", "2", "x", "4", None, "7"],
        }
    )
    steps: list[dict[str, Any]] = [
        {"trim": ["status"]},
        {"lowercase": "status"},
        {"cast": {"qty": "int32"}},  # a failed row is not a filtered one
        {"drop_null": ["status"]},
        {"dedupe": {"key": ["id"]}},
        {"sql": "SELECT * FROM batch WHERE qty IS NULL OR qty < 7"},
    ]
    expected, actual = run_both(spark, batch, steps)
    assert expected.filtered == {"4:drop_null": 0, "5:dedupe": 1, "6:sql": 1}
    assert expected.num_failed == 1
    assert_same(expected, actual)
