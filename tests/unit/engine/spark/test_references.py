"""File references (CSV, Parquet, Delta) read by Spark join like the DuckDB engine's;
small ones are broadcast, refresh re-reads them, errors name the reference."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataplump.config import PipelineConfig
from dataplump.engine import ReferenceLoadError, ReferenceTables, TableTransform
from dataplump.engine.spark.references import SparkReferences
from dataplump.engine.spark.transform import SparkTableTransform
from tests.unit.engine.spark.parity import assert_same

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

BATCH = pa.table({"id": [1, 2, 3, 4], "customer_id": [10, 20, 30, None]})
CUSTOMERS = pa.table(
    {
        "id": pa.array([10, 20], pa.int64()),
        "name": ["Ada", "Bob"],
        "credit": pa.array([Decimal("1.50"), None], pa.decimal128(8, 2)),
        "since": pa.array([date(2020, 1, 2), None]),
    }
)
JOIN = "SELECT o.*, c.name, c.since FROM batch o LEFT JOIN customers c ON c.id = o.customer_id"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def config(base: Path, reference: dict[str, Any]) -> PipelineConfig:
    data = {
        "pipeline": {"name": "shop"},
        "source": {"url": f"sqlite:///{base / 'source.db'}"},
        "tables": {"orders": {"primary_key": "id"}},
        "transform": {"references": {"customers": reference}, "steps": {"orders": [{"sql": JOIN}]}},
    }
    return PipelineConfig.model_validate(data, context={"base_dir": base})


def write(kind: str, base: Path, table: pa.Table) -> dict[str, Any]:
    if kind == "csv":
        (base / "c.csv").write_text(
            "id,name,since\n"
            + "".join(f"{r['id']},{r['name']},{r['since'] or ''}\n" for r in table.to_pylist())
        )
        return {"csv": "c.csv"}
    if kind == "parquet":
        pq.write_table(table, base / "c.parquet")
        return {"parquet": "c.parquet"}
    from deltalake import write_deltalake

    write_deltalake(str(base / "c_delta"), table, mode="overwrite")
    return {"delta": "c_delta"}


@pytest.mark.parametrize("kind", ["csv", "parquet", "delta"])
def test_file_references_join_like_duckdb(spark: SparkSession, tmp_path: Path, kind: str) -> None:
    cfg = config(tmp_path, write(kind, tmp_path, CUSTOMERS))
    duck = TableTransform.from_config(cfg, "orders", ReferenceTables(cfg))
    expected = duck.apply(BATCH)
    duck.close()
    references = SparkReferences(spark, cfg)
    actual = SparkTableTransform.from_config(spark, cfg, "orders", references).apply(
        spark.createDataFrame(BATCH)
    )
    assert "BroadcastHashJoin" in actual.output._jdf.queryExecution().executedPlan().toString()
    assert_same(expected, actual)
    references.unpersist()


def test_refresh_rereads_and_a_failed_read_keeps_the_copy(
    spark: SparkSession, tmp_path: Path
) -> None:
    clock = Clock()
    cfg = config(tmp_path, {**write("parquet", tmp_path, CUSTOMERS), "refresh_seconds": 60})
    references = SparkReferences(spark, cfg, clock=clock, broadcast_rows=1)
    assert references["customers"].count() == 2
    assert references.rows("customers") == 2
    pq.write_table(CUSTOMERS.slice(0, 1), tmp_path / "c.parquet")
    clock.now += 59
    assert references["customers"].count() == 2  # not due: the cached copy
    clock.now += 1
    assert references["customers"].count() == 1
    (tmp_path / "c.parquet").unlink()
    clock.now += 60
    assert references["customers"].count() == 1  # the read failed: the old copy serves
    references.unpersist()
    with pytest.raises(ReferenceLoadError, match=r"^reference `customers`: .*c\.parquet"):
        references["customers"]
