"""A table's transform on Spark: its steps, run in order on one Spark DataFrame.

The counterpart of :class:`~dataplump.engine.transform.TableTransform`, with the same
results for the same rows (same output rows, row failures and ``filtered`` counts):

- The hidden int64 column ``__dp_row`` numbers the input rows 0..n-1 in the frame's
  partition order (the order ``collect``/``toArrow`` returns them): partition ``p``'s
  rows start after the rows of the partitions before it. Built-in steps keep it, ``SELECT
  *`` carries it through SQL, pandas sees it as the index and polars as a column. It
  stays in :attr:`SparkTransformResult.output` when the lineage survived
  (``has_lineage``).
- Built-in steps come from :mod:`dataplump.engine.spark.builtin`, imported when the
  first built-in step is bound; SQL steps from :mod:`~dataplump.engine.spark.sql`
  (translated, and refused if they cannot run on Spark, when the transform is built);
  pandas and polars steps from :mod:`~dataplump.engine.spark.python_steps`.

**Spark actions per batch: two.** (1) The input is persisted and its rows counted per
partition (for the row numbers; the numbered frame is a projection of that cache, not
cached again). (2) Every step's output is persisted (memory, spilling to disk) and one
job computes all counts at once: per SQL/pandas/polars step the input
rows whose ``__dp_row`` has no output row (a left anti join: a ``WHERE``, an inner join
without a match), per ``drop_null``/``dedupe`` its dropped rows, the output's rows and
the failed rows. That job also materializes the output and the row failures in the
cache; then the input and the intermediate step outputs are unpersisted, and the
output and the failures stay cached for the caller to write, until
:meth:`SparkTransformResult.unpersist`.

Errors: a step Spark refuses while building the plan (an unknown column in SQL, a
missing column for a built-in step) raises :class:`StepFailed` at once. An error while
the job runs (a cast in SQL with ANSI mode, a user function that raises on a
partition) is attributed to its step by counting the persisted step outputs one by one
(only on that path), then raises :class:`StepFailed` naming the step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import TYPE_CHECKING

from dataplump.engine.builtin import ROW, StepError
from dataplump.engine.errors import StepConfigError, StepFailed
from dataplump.engine.python_steps import UserFunction, load_step_function
from dataplump.engine.spark.python_steps import SparkPythonStep
from dataplump.engine.spark.sql import Translated, check_sql, run_sql
from dataplump.engine.spec import PandasStep, PolarsStep, SqlStep, Step

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from dataplump.config.models import PipelineConfig

log = logging.getLogger(__name__)

_COUNT = "__dp_n"
_LABEL = "__dp_label"
_OUTPUT = "\x00output"
_FAILED = "\x00failed"


@dataclass(frozen=True)
class SparkTransformResult:
    """What a table's steps made of one Spark DataFrame."""

    output: DataFrame
    """The transformed rows (persisted), with ``__dp_row`` when ``has_lineage``."""
    has_lineage: bool
    """``__dp_row`` survived every step (no ``GROUP BY``, no reset index)."""
    row_failures: DataFrame
    """One row per failed input row (persisted), columns of
    :data:`~dataplump.engine.transform.FAILURES_SCHEMA`; those rows are not in ``output``."""
    filtered: dict[str, int] = field(default_factory=dict)
    """Rows dropped on purpose, per step label (``5:drop_null``, ``2:sql``)."""
    num_output: int = 0
    """Rows in ``output``."""
    num_failed: int = 0
    """Rows in ``row_failures``."""

    def unpersist(self) -> None:
        """Release the cached output and failures (after they were written)."""
        self.output.unpersist()
        self.row_failures.unpersist()


@dataclass(frozen=True)
class _StepOut:
    frame: DataFrame
    failures: DataFrame | None = None
    dropped: DataFrame | None = None


@dataclass(frozen=True)
class _Bound:
    label: str
    step: Step
    run: Callable[[DataFrame], _StepOut]


class SparkTableTransform:
    """The steps of one table, ready to apply to Spark DataFrames (one batch at a time)."""

    def __init__(
        self,
        spark: SparkSession,
        table: str,
        steps: Sequence[Step],
        *,
        primary_key: Sequence[str] = (),
        references: Mapping[str, DataFrame] | None = None,
        functions: dict[int, UserFunction] | None = None,
    ) -> None:
        """Bind ``steps``: import user functions (``functions`` maps positions from 0 to
        ones already imported) and translate SQL steps; :class:`StepConfigError` when one
        cannot be imported or cannot run on Spark."""
        self.spark = spark
        self.table = table
        self.steps = tuple(steps)
        self.primary_key = tuple(primary_key)
        self.references: Mapping[str, DataFrame] = references if references is not None else {}
        functions = dict(functions or {})
        bound = []
        for i, step in enumerate(self.steps):
            label = f"{i + 1}:{step.kind}"
            if isinstance(step, SqlStep):
                translated = check_sql(table, i + 1, step, list(self.references), spark)
                bound.append(_Bound(label, step, self._sql_runner(step, translated)))
            elif isinstance(step, PandasStep | PolarsStep):
                if i not in functions:
                    functions[i] = load_step_function(table, i + 1, step)
                python = SparkPythonStep(step.kind, functions[i])
                bound.append(_Bound(label, step, self._python_runner(python)))
            else:
                bound.append(_Bound(label, step, self._builtin_runner(step)))
        self._bound = bound

    @classmethod
    def from_config(
        cls,
        spark: SparkSession,
        config: PipelineConfig,
        table: str,
        references: Mapping[str, DataFrame] | None = None,
    ) -> SparkTableTransform:
        """The transform of ``table`` as ``config`` declares it; ``references`` is shared
        between tables, made from ``config`` (:class:`SparkReferences`) when None and the
        config declares any."""
        if table not in config.tables:
            close = get_close_matches(table, config.tables, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise StepConfigError(
                f"no table `{table}` in the config; {hint}(tables: {', '.join(config.tables)})"
            )
        if references is None and config.transform.references:
            from dataplump.engine.spark.references import SparkReferences

            references = SparkReferences(spark, config)
        return cls(
            spark,
            table,
            config.transform.steps_for(table),
            primary_key=config.tables[table].primary_key,
            references=references,
        )

    def describe(self) -> list[str]:
        """One line per step: ``1. trim customer, status``."""
        return [f"{i}. {b.step.describe()}" for i, b in enumerate(self._bound, 1)]

    def apply(self, frame: DataFrame) -> SparkTransformResult:
        """Run every step on ``frame`` (see the module docstring for the Spark jobs)."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        if ROW in frame.columns:
            frame = frame.drop(ROW)
        level = StorageLevel.MEMORY_AND_DISK
        source = frame.persist(level)
        persisted: list[DataFrame] = [source]
        try:
            # not persisted: a projection of the cached input, the same ids when recomputed
            current = _numbered(source)
            counts: list[DataFrame] = []
            failures: list[DataFrame] = []
            outputs: list[tuple[_Bound, DataFrame]] = []
            for bound in self._bound:
                out = self._run(bound, current)
                result = out.frame
                if ROW in result.columns and dict(result.dtypes)[ROW] not in ("bigint", "int"):
                    result = result.drop(ROW)  # a user column that happens to be named so
                result = result.persist(level)
                persisted.append(result)
                if out.dropped is not None:
                    counts.append(_count(out.dropped, bound.label))
                elif (
                    isinstance(bound.step, SqlStep | PandasStep | PolarsStep)
                    and ROW in current.columns
                    and ROW in result.columns
                ):
                    # built-in steps report what they drop; their failed rows are not
                    gone = current.join(result.select(ROW), ROW, "left_anti")
                    counts.append(_count(gone, bound.label, only_positive=True))
                if out.failures is not None:
                    failures.append(
                        out.failures.select(
                            F.col("input_row").cast("bigint").alias("input_row"),
                            F.lit(bound.label).alias("step"),
                            F.col("column").cast("string").alias("column"),
                            F.col("value").cast("string").alias("value"),
                            F.col("message").cast("string").alias("message"),
                        )
                    )
                outputs.append((bound, result))
                current = result
            failed = _union(failures) if failures else self._no_failures()
            failed = failed.persist(level)
            persisted.append(failed)
            counts += [_count(current, _OUTPUT), _count(failed, _FAILED)]
            try:
                rows = _union(counts).collect()
            except Exception as exc:  # any Spark error: find its step
                raise self._diagnose(outputs, exc) from None
        except BaseException:
            _release(reversed(persisted))
            raise
        # dependents first: unpersisting a frame re-plans the caches built on it that
        # are not fully loaded (the output and failures are, by the counting job)
        _release(df for df in reversed(persisted) if df is not current and df is not failed)
        found = {row[_LABEL]: int(row[_COUNT]) for row in rows}
        filtered = {
            b.label: found[b.label] for b, _ in outputs if b.label in found and found[b.label] >= 0
        }
        return SparkTransformResult(
            current,
            ROW in current.columns,
            failed,
            filtered,
            found[_OUTPUT],
            found[_FAILED],
        )

    # ---- internals ----------------------------------------------------------------

    def _run(self, bound: _Bound, frame: DataFrame) -> _StepOut:
        try:
            return bound.run(frame)
        except StepError as exc:
            raise StepFailed(
                self.table, bound.label, bound.step.kind, exc.message, exc.traceback_summary
            ) from None
        except Exception as exc:
            if not _is_spark_error(exc):
                raise
            raise StepFailed(self.table, bound.label, bound.step.kind, _message(exc)) from None

    def _diagnose(self, outputs: list[tuple[_Bound, DataFrame]], exc: Exception) -> Exception:
        """The step whose output cannot be computed, as :class:`StepFailed` (the step
        outputs are persisted: each count reuses the ones before)."""
        if not _is_spark_error(exc):
            return exc
        for bound, frame in outputs:
            try:
                frame.count()
            except Exception as inner:  # the step that fails
                if not _is_spark_error(inner):
                    return inner
                return StepFailed(self.table, bound.label, bound.step.kind, _message(inner))
        if not outputs:
            return exc
        last = outputs[-1][0]
        return StepFailed(self.table, last.label, last.step.kind, _message(exc))

    def _sql_runner(self, step: SqlStep, translated: Translated) -> Callable[[DataFrame], _StepOut]:
        def run(frame: DataFrame) -> _StepOut:
            out = run_sql(
                self.spark, translated, frame, self.references, query=step.query, table=self.table
            )
            return _StepOut(out)

        return run

    @staticmethod
    def _python_runner(python: SparkPythonStep) -> Callable[[DataFrame], _StepOut]:
        def run(frame: DataFrame) -> _StepOut:
            return _StepOut(python.run(frame))

        return run

    def _builtin_runner(self, step: Step) -> Callable[[DataFrame], _StepOut]:
        key = self.primary_key

        def run(frame: DataFrame) -> _StepOut:
            from dataplump.engine.spark.builtin import (  # type: ignore[import-untyped,import-not-found,unused-ignore]
                run_builtin,
            )

            out = run_builtin(step, frame, key)
            return _StepOut(out.frame, out.failures, out.dropped)

        return run

    def _no_failures(self) -> DataFrame:
        from pyspark.sql.types import LongType, StringType, StructField, StructType

        schema = StructType(
            [
                StructField("input_row", LongType()),
                StructField("step", StringType(), nullable=False),
                StructField("column", StringType()),
                StructField("value", StringType()),
                StructField("message", StringType(), nullable=False),
            ]
        )
        return self.spark.createDataFrame([], schema)


def _numbered(frame: DataFrame) -> DataFrame:
    """``frame`` with ``__dp_row`` 0..n-1 in partition order (one job counts the rows
    per partition; ``monotonically_increasing_id`` is the partition id times 2^33 plus
    the row's position in its partition)."""
    from pyspark.sql import functions as F

    part = F.spark_partition_id()
    sizes: dict[int, int] = dict(frame.groupBy(part.alias("p")).count().collect())
    offsets, total = [], 0
    for p in range(max(sizes, default=-1) + 1):  # later partitions are empty
        offsets.append(total)
        total += int(sizes.get(p, 0))
    start = F.array(*[F.lit(o).cast("bigint") for o in offsets or [0]])[part]
    position = F.monotonically_increasing_id() - part.cast("bigint") * F.lit(1 << 33)
    return frame.withColumn(ROW, (start + position).cast("bigint"))


def _count(frame: DataFrame, label: str, *, only_positive: bool = False) -> DataFrame:
    from pyspark.sql import functions as F

    n = F.count(F.lit(1))
    if only_positive:  # SQL and user functions: reported only when rows went missing
        n = F.when(n > 0, n).otherwise(F.lit(-1))
    return frame.agg(n.cast("bigint").alias(_COUNT)).select(F.lit(label).alias(_LABEL), _COUNT)


def _release(frames: Iterable[DataFrame]) -> None:
    for frame in frames:
        try:
            frame.unpersist()
        except Exception as exc:  # releasing must not hide the real error
            log.warning("could not unpersist a step's output: %s", _message(exc))


def _union(frames: Sequence[DataFrame]) -> DataFrame:
    result = frames[0]
    for other in frames[1:]:
        result = result.unionByName(other)
    return result


def _is_spark_error(exc: BaseException) -> bool:
    from py4j.protocol import Py4JJavaError  # type: ignore[import-untyped]
    from pyspark.errors import PySparkException

    return isinstance(exc, PySparkException | Py4JJavaError)


def _message(exc: BaseException) -> str:
    """One line: the user function's StepError message or Spark's first line."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if "StepError: " in line:
            return line.split("StepError: ", 1)[1]
    for line in lines:
        if line.startswith("[") or "Exception" in line or "Error" in line:
            return _short(line)
    return _short(lines[0]) if lines else type(exc).__name__


def _short(line: str, limit: int = 500) -> str:
    return line if len(line) <= limit else line[: limit - 3] + "..."
