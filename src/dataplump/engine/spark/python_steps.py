"""The ``pandas`` and ``polars`` steps on Spark: the user function once per partition.

Both kinds run through ``DataFrame.mapInArrow``: a partition's Arrow record batches are
joined into one table and handed to the Arrow engine's own
:func:`~dataplump.engine.python_steps.run_pandas` / ``run_polars``. So the function
sees exactly what the DuckDB engine gives it: pandas columns with ``pandas.ArrowDtype``
(decimals and timestamps exact) and the lineage ``__dp_row`` as the index; polars with
``__dp_row`` as a column. (``mapInPandas`` would convert with Spark's own rules instead:
decimals as ``Decimal`` objects, timestamps as ``datetime64[ns]``, a plain index.)

**A partition is not the batch.** The function is called once per non-empty partition
of the Spark DataFrame, with that partition's rows only. Row-wise work (derive a
column, filter rows) gives the same result as on the whole batch; a function that
aggregates, ranks, dedupes or compares rows with each other sees only its partition's
rows and gives a different, partition-dependent result. Do such work in a ``sql`` step
(Spark shuffles for it), or ``repartition(1)`` the batch before the step.

**The output schema** must be known before Spark runs a partition. It is derived by
calling the function on an empty table of the input schema; if that raises or gives a
column without a type (all-null: ``object`` in pandas), on a sample of up to
:data:`SAMPLE_ROWS` rows of the batch (one small Spark job). The schema is kept per
input schema, so later batches of the same schema cost nothing. Each partition's result
is cast to it; a partition whose result has other columns fails the batch.

A function from a ``file.py:name`` is shipped to the workers by value (cloudpickle), so
the file need not exist on a cluster's workers; a ``package.module:name`` is imported
there, so the package must be installed on them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pyarrow as pa

from dataplump.engine.builtin import ROW, StepError
from dataplump.engine.python_steps import UserFunction, run_pandas, run_polars

if TYPE_CHECKING:
    from pyspark.sql import DataFrame
    from pyspark.sql.types import StructType

SAMPLE_ROWS = 100
"""Rows of the batch the output schema is derived from when an empty table will not do."""

Runner = Callable[[UserFunction, pa.Table], pa.Table]


class SparkPythonStep:
    """One ``pandas`` or ``polars`` step, ready to run on Spark DataFrames."""

    def __init__(self, kind: str, function: UserFunction) -> None:
        if kind not in ("pandas", "polars"):
            raise ValueError(f"not a python step: {kind}")
        self.kind = kind
        self.function = function
        self._schemas: dict[str, tuple[StructType, pa.Schema]] = {}
        module = sys.modules.get(getattr(function, "__module__", "") or "")
        if module is not None and module.__name__.startswith("dataplump_steps_"):
            from pyspark import cloudpickle  # a file module: ship its code by value

            cloudpickle.register_pickle_by_value(module)  # type: ignore[no-untyped-call]

    def run(self, frame: DataFrame) -> DataFrame:
        """The step on ``frame`` (lazy); :class:`StepError` when the output schema cannot
        be derived (the function raised on the sample too, or returned no DataFrame)."""
        spark_schema, arrow_schema = self.output_schema(frame)
        kind, function = self.kind, self.function

        def per_partition(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            table = pa.Table.from_batches(list(batches))
            if table.num_rows == 0:
                return
            out = _call(kind, function, table)
            yield from _conform(out, arrow_schema).to_batches()

        return frame.mapInArrow(per_partition, spark_schema)

    def output_schema(self, frame: DataFrame) -> tuple[StructType, pa.Schema]:
        """The function's output schema for ``frame``'s schema (see the module docstring)."""
        from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

        key = frame.schema.json()
        if key in self._schemas:
            return self._schemas[key]
        empty = to_arrow_schema(frame.schema, timezone="UTC").empty_table()
        try:
            schema: pa.Schema | None = _typed(_call(self.kind, self.function, empty).schema)
        except StepError:
            schema = None
        if schema is None:
            sample = frame.limit(SAMPLE_ROWS).toArrow()
            schema = _call(self.kind, self.function, sample).schema
            if _typed(schema) is None:
                untyped = [f.name for f in schema if pa.types.is_null(f.type)]
                raise StepError(
                    f"cannot tell the type of column(s) {', '.join(untyped)} of its result:"
                    f" they are null in the first {SAMPLE_ROWS} rows; give them a type"
                    " (e.g. `.astype('string[pyarrow]')`)"
                )
        try:
            spark_schema = from_arrow_schema(schema)
        except TypeError as exc:
            raise StepError(f"returned a column type Spark has no type for: {exc}") from None
        arrow = to_arrow_schema(spark_schema, timezone="UTC")
        self._schemas[key] = (spark_schema, arrow)
        return spark_schema, arrow


def _call(kind: str, function: UserFunction, table: pa.Table) -> pa.Table:
    runner: Runner = run_pandas if kind == "pandas" else run_polars
    out = runner(function, table)
    if ROW in out.column_names and out.schema.field(ROW).type != pa.int64():
        out = out.drop_columns([ROW])
    return out


def _typed(schema: pa.Schema) -> pa.Schema | None:
    """``schema``, or None when a column has no type (all-null ``object``/``null``)."""
    return None if any(pa.types.is_null(f.type) for f in schema) else schema


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.column_names != schema.names:
        raise StepError(
            f"returned columns {table.column_names} in one partition, but"
            f" {schema.names} for the schema sample: return the same columns every time"
        )
    try:
        return table.cast(schema)
    except (pa.ArrowException, ValueError) as exc:
        raise StepError(
            f"returned a column whose type differs from the schema sample's: {exc}"
        ) from None
