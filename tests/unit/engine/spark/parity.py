"""Run the same steps on the same Arrow rows with DuckDB and with Spark; compare."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from dataplump.bus.records import encode_rows
from dataplump.engine import ROW, TableTransform, TransformResult, parse_steps
from dataplump.engine.spark.transform import SparkTableTransform, SparkTransformResult

if TYPE_CHECKING:
    from pathlib import Path

    from pyspark.sql import SparkSession


class ArrowReferences:
    """The two members of ``ReferenceTables`` the DuckDB SQL step uses, over Arrow tables."""

    def __init__(self, tables: Mapping[str, pa.Table]) -> None:
        self.tables = dict(tables)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.tables)

    def register(self, con: duckdb.DuckDBPyConnection) -> None:
        for name, table in self.tables.items():
            con.register(name, table)


def run_both(
    spark: SparkSession,
    batch: pa.Table,
    steps: list[dict[str, Any]],
    references: Mapping[str, pa.Table] | None = None,
    base: Path | None = None,
) -> tuple[TransformResult, SparkTransformResult]:
    parsed, problems = parse_steps(steps, base)
    assert not problems, problems
    refs = dict(references or {})
    duck = TableTransform(
        "orders",
        parsed,
        primary_key=("id",),
        references=ArrowReferences(refs) if refs else None,  # type: ignore[arg-type]
    )
    try:
        expected = duck.apply(batch)
    finally:
        duck.close()
    on_spark = SparkTableTransform(
        spark,
        "orders",
        parsed,
        primary_key=("id",),
        references={name: spark.createDataFrame(t) for name, t in refs.items()},
    )
    return expected, on_spark.apply(spark.createDataFrame(batch))


def rows(table: pa.Table) -> list[tuple[int | None, bytes]]:
    """Each row's lineage and JSON bytes (lineage last), sorted."""
    lineage = table[ROW].to_pylist() if ROW in table.column_names else [None] * table.num_rows
    return sorted(zip(lineage, encode_rows(table), strict=True), key=lambda r: (r[0] or 0, r[1]))


def duck_rows(result: TransformResult) -> list[tuple[int | None, bytes]]:
    table = result.output
    if result.source_rows is not None:
        table = table.append_column(ROW, result.source_rows)
    return rows(table)


def spark_rows(result: SparkTransformResult) -> list[tuple[int | None, bytes]]:
    table = result.output.toArrow()
    if ROW in table.column_names:
        table = table.select([*(c for c in table.column_names if c != ROW), ROW])
    return rows(table)


def failures(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda r: (r["input_row"] or -1, r["step"]))


def assert_same(expected: TransformResult, actual: SparkTransformResult) -> None:
    try:
        assert spark_rows(actual) == duck_rows(expected)
        assert actual.has_lineage == (expected.source_rows is not None)
        assert failures(actual.row_failures.toArrow()) == failures(expected.row_failures)
        assert actual.filtered == expected.filtered
        assert actual.num_output == expected.output.num_rows
        assert actual.num_failed == expected.num_failed
    finally:
        actual.unpersist()
