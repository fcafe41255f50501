"""A table's transform: its steps, run in order on one Arrow batch.

    >>> import pyarrow as pa
    >>> from dataplump.engine.spec import parse_steps
    >>> steps, _ = parse_steps([{"trim": ["name"]}, {"cast": {"qty": "int32"}}], None)
    >>> transform = TableTransform("orders", steps)
    >>> result = transform.apply(pa.table({"name": [" a  b ", "c"], "qty": ["1", "x"]}))
    >>> result.output.to_pylist(), result.source_rows.to_pylist()
    ([{'name': 'a b', 'qty': 1}], [0])
    >>> result.row_failures.to_pylist()[0]["message"]
    'cannot be cast to int32'

Before the first step a hidden int64 column ``__dp_row`` numbers the input rows; every
built-in step keeps it, ``SELECT *`` carries it through SQL, pandas sees it as the index
and polars as a column. After the last step it becomes ``TransformResult.source_rows``
and leaves the output.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataplump.engine.builtin import ROW, RowFailures, StepError, StepOutput, run_builtin
from dataplump.engine.errors import StepConfigError, StepFailed
from dataplump.engine.python_steps import (
    UserFunction,
    load_step_function,
    run_pandas,
    run_polars,
)
from dataplump.engine.spec import PandasStep, PolarsStep, SqlStep, Step
from dataplump.engine.sql import SqlRunner

if TYPE_CHECKING:
    from dataplump.config.models import PipelineConfig
    from dataplump.engine.references import ReferenceTables

FAILURES_SCHEMA = pa.schema(
    [
        pa.field("input_row", pa.int64()),
        pa.field("step", pa.string(), nullable=False),
        pa.field("column", pa.string()),
        pa.field("value", pa.string()),
        pa.field("message", pa.string(), nullable=False),
    ]
)
"""``TransformResult.row_failures``: the failed row's index in the input batch (null if a
step before lost the lineage), the step (``3:cast``), the column and value (text, cut at
200 characters; null for a null value) and what is wrong."""


@dataclass(frozen=True)
class TransformResult:
    """What a table's steps made of one batch."""

    output: pa.Table
    """The transformed rows, without the hidden lineage column."""
    source_rows: pa.Array | None
    """int64, per output row the index of the input row it came from; None when a step
    lost the lineage (a SQL ``GROUP BY``, a pandas function that reset the index)."""
    row_failures: pa.Table
    """One row per failed input row (schema :data:`FAILURES_SCHEMA`); those rows are not
    in ``output``."""
    filtered: dict[str, int] = field(default_factory=dict)
    """Rows dropped on purpose, per step label (``5:drop_null``, ``6:dedupe``)."""

    @property
    def num_failed(self) -> int:
        """Input rows that failed a step."""
        return int(self.row_failures.num_rows)


Runner = Callable[[pa.Table], StepOutput]


@dataclass(frozen=True)
class _Bound:
    label: str
    step: Step
    run: Runner


class TableTransform:
    """The steps of one table, ready to apply to batches (one batch at a time per
    instance; use one instance per thread to transform in parallel)."""

    def __init__(
        self,
        table: str,
        steps: Sequence[Step],
        *,
        primary_key: Sequence[str] = (),
        references: ReferenceTables | None = None,
        functions: dict[int, UserFunction] | None = None,
    ) -> None:
        """Bind ``steps``; ``functions`` maps step positions (from 0) to already imported
        user functions, the rest are imported here (:class:`StepConfigError` if one
        cannot be)."""
        self.table = table
        self.steps = tuple(steps)
        self.primary_key = tuple(primary_key)
        self.references = references
        self._sql = SqlRunner(table, references)
        self._lock = threading.Lock()
        functions = dict(functions or {})
        for i, step in enumerate(self.steps):
            if isinstance(step, PandasStep | PolarsStep) and i not in functions:
                functions[i] = load_step_function(table, i + 1, step)
        self._bound = [
            _Bound(f"{i + 1}:{step.kind}", step, self._runner(step, functions.get(i)))
            for i, step in enumerate(self.steps)
        ]

    @classmethod
    def from_config(
        cls, config: PipelineConfig, table: str, references: ReferenceTables | None = None
    ) -> TableTransform:
        """The transform of ``table`` as ``config`` declares it (no steps: rows pass as they
        are). ``references`` is shared between tables; made from ``config`` when None
        and the config declares any. Raises :class:`StepConfigError` for an unknown table
        or a user function that cannot be imported."""
        if table not in config.tables:
            close = get_close_matches(table, config.tables, n=1)
            hint = f"did you mean `{close[0]}`? " if close else ""
            raise StepConfigError(
                f"no table `{table}` in the config; {hint}(tables: {', '.join(config.tables)})"
            )
        if references is None and config.transform.references:
            from dataplump.engine.references import ReferenceTables

            references = ReferenceTables(config)
        return cls(
            table,
            config.transform.steps_for(table),
            primary_key=config.tables[table].primary_key,
            references=references,
        )

    @property
    def reference_names(self) -> frozenset[str]:
        """The reference tables its SQL steps read (all of them when a query's tables
        cannot be listed); rows failing after such a join may pass with a newer copy."""
        if self.references is None:
            return frozenset()
        declared = {name.lower(): name for name in self.references.names}
        found: set[str] = set()
        for step in self.steps:
            if isinstance(step, SqlStep):
                try:
                    tables = duckdb.get_table_names(step.query, qualified=False)
                except duckdb.Error:
                    return frozenset(declared.values())
                found |= {declared[t.lower()] for t in tables if t.lower() in declared}
        return frozenset(found)

    def describe(self) -> list[str]:
        """One line per step: ``1. trim customer, status``."""
        return [f"{i}. {b.step.describe()}" for i, b in enumerate(self._bound, 1)]

    def apply(self, batch: pa.Table | pa.RecordBatch) -> TransformResult:
        """Run every step on ``batch``.

        Rows that fail a step leave the output and are listed in ``row_failures``; a
        step that fails for the whole batch raises :class:`StepFailed` (terminal) or
        :class:`~dataplump.engine.errors.TransientStepError` (retry later).
        """
        table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if ROW in table.column_names:
            table = table.drop_columns([ROW])
        table = table.append_column(ROW, pa.array(np.arange(table.num_rows), pa.int64()))
        failures: list[pa.Table] = []
        filtered: dict[str, int] = {}
        with self._lock:
            for bound in self._bound:
                table, failed, dropped = self._run(bound, table)
                if failed is not None:
                    failures.append(failed)
                if dropped is not None:
                    filtered[bound.label] = dropped
        source_rows = None
        if ROW in table.column_names:
            source_rows = table[ROW].combine_chunks()
            table = table.drop_columns([ROW])
        row_failures = pa.concat_tables(failures) if failures else FAILURES_SCHEMA.empty_table()
        return TransformResult(table, source_rows, row_failures, filtered)

    def close(self) -> None:
        """Release the DuckDB connection of the SQL steps."""
        self._sql.close()

    # ---- internals ----------------------------------------------------------------

    def _run(self, bound: _Bound, table: pa.Table) -> tuple[pa.Table, pa.Table | None, int | None]:
        try:
            out = bound.run(table)
        except StepError as exc:
            raise StepFailed(
                self.table, bound.label, bound.step.kind, exc.message, exc.traceback_summary
            ) from None
        except pa.ArrowException as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise StepFailed(
                self.table, bound.label, bound.step.kind, f"{type(exc).__name__}: {message}"
            ) from None
        result = out.table
        if ROW in result.column_names and not pa.types.is_integer(result.schema.field(ROW).type):
            result = result.drop_columns([ROW])  # a user column that happens to be named so
        dropped = out.dropped
        if dropped is None and ROW in table.column_names and ROW in result.column_names:
            # SQL and user functions report nothing: the input rows with no output row
            # were filtered (a WHERE, an inner join without a match)
            kept = pc.is_in(table[ROW], value_set=result[ROW].combine_chunks())
            dropped = (table.num_rows - (pc.sum(kept).as_py() or 0)) or None
        failed = None
        if out.failures is not None:
            failed = _failure_rows(bound.label, table, out.failures)
            result = result.filter(pc.invert(out.failures.mask))
        return result, failed, dropped

    def _runner(self, step: Step, function: UserFunction | None) -> Runner:
        if isinstance(step, SqlStep):
            return lambda table: StepOutput(self._sql.run(step, table))
        if isinstance(step, PandasStep):
            assert function is not None
            return lambda table: StepOutput(run_pandas(function, table))
        if isinstance(step, PolarsStep):
            assert function is not None
            return lambda table: StepOutput(run_polars(function, table))
        key = self.primary_key
        return lambda table: run_builtin(step, table, key)


def _failure_rows(label: str, table: pa.Table, failures: RowFailures) -> pa.Table:
    mask = failures.mask
    if ROW in table.column_names:
        rows = table[ROW].filter(mask).combine_chunks()
    else:
        rows = pa.nulls(pc.sum(mask).as_py() or 0, pa.int64())
    count = len(rows)
    return pa.Table.from_arrays(
        [
            rows,
            pa.repeat(pa.scalar(label), count),
            failures.column.filter(mask),
            failures.value.filter(mask),
            failures.message.filter(mask),
        ],
        schema=FAILURES_SCHEMA,
    )
