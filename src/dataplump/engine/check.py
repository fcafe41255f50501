"""Check a table's steps before any data flows: what ``dataplump config check`` can catch.

``load_config`` already refuses what a step's own text shows (unknown kinds, bad
arguments, type names, SQL that does not parse, a function file that is missing).
:func:`check_steps` goes further, with the code and data the steps need:

1. imports every pandas and polars function (a missing module or function);
2. runs the steps on an **empty** batch shaped like the table's contract (its declared
   columns and types), so a step naming an unknown column, SQL naming an unknown column
   or table, or a function returning something else than a DataFrame is reported with
   the step named. Reference tables are loaded for this (a reference that cannot be
   loaded is a problem too). A pandas/polars function that raises on the empty frame is
   not reported (it may simply not expect zero rows), but the steps after it are not run.

Without a contract only step 1 runs: the columns are unknown.

    >>> # problems = check_steps(load_config("dataplump.yaml"), "orders")
    >>> # [str(p) for p in problems]
    >>> # ['transform.steps.orders[9].sql: Binder Error: Referenced column "cust" not found ...']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

from dataplump.engine.builtin import ROW, StepError
from dataplump.engine.errors import (
    ReferenceLoadError,
    StepConfigError,
    StepFailed,
    TransientReferenceLoadError,
    TransientStepError,
)
from dataplump.engine.python_steps import ImportProblem, UserFunction, load_function
from dataplump.engine.spec import PandasStep, PolarsStep, SqlStep, Step, StepProblem

if TYPE_CHECKING:
    from dataplump.config.models import PipelineConfig
    from dataplump.engine.references import ReferenceTables

__all__ = ["check_steps"]


def check_steps(
    config: PipelineConfig, table: str, references: ReferenceTables | None = None
) -> list[StepProblem]:
    """Every problem found in ``table``'s steps; each ``path`` starts at the file's root
    (``("transform", "steps", "orders", 3, "sql")``) and ``str()`` is
    ``transform.steps.orders[3].sql: message``."""
    from dataplump.engine.transform import TableTransform

    at = ("transform", "steps", table)
    if table not in config.tables:
        return [StepProblem(at, f"no table `{table}` under `tables:`")]
    steps = config.transform.steps_for(table)
    problems: list[StepProblem] = []
    functions: dict[int, UserFunction] = {}
    runnable = len(steps)
    for i, step in enumerate(steps):
        if isinstance(step, PandasStep | PolarsStep):
            try:
                functions[i] = load_function(step.function)
            except ImportProblem as exc:
                message = f"cannot import `{step.function.text}`: {exc}"
                problems.append(StepProblem((*at, i, step.kind), message))
                runnable = min(runnable, i)
    if config.transform.engine == "spark":
        problems += _spark_sql_problems(config, table, steps)
    contract = config.contract(table)
    if contract is None or not steps:
        return problems
    if references is None and config.transform.references:
        from dataplump.engine.references import ReferenceTables

        references = ReferenceTables(config)
    if references is not None:
        for name in references.names:
            try:
                references.get(name)
            except (ReferenceLoadError, TransientReferenceLoadError) as exc:
                problems.append(StepProblem(("transform", "references", name), str(exc)))
        if any(p.path[:2] == ("transform", "references") for p in problems):
            return problems  # SQL steps cannot be checked without their references
    transform = TableTransform(
        table,
        steps[:runnable],
        primary_key=config.tables[table].primary_key,
        references=references,
        functions=functions,
    )
    empty = contract.arrow_schema().empty_table()
    empty = empty.append_column(ROW, pa.array([], pa.int64()))
    try:
        for i, bound in enumerate(transform._bound):
            try:
                empty = transform._run(bound, empty)[0]
            except StepFailed as exc:
                if isinstance(bound.step, PandasStep | PolarsStep) and exc.traceback_summary:
                    break  # the function raised on zero rows: not necessarily wrong
                problems.append(StepProblem((*at, i, bound.step.kind), exc.message))
                break
            except (TransientStepError, StepError) as exc:
                problems.append(StepProblem((*at, i, bound.step.kind), str(exc)))
                break
    finally:
        transform.close()
    return problems


def _spark_sql_problems(
    config: PipelineConfig, table: str, steps: tuple[Step, ...]
) -> list[StepProblem]:
    """The SQL steps that do not translate to Spark SQL (sqlglot only: no Spark here)."""
    from dataplump.engine.spark.sql import check_sql

    problems = []
    for i, step in enumerate(steps):
        if isinstance(step, SqlStep):
            try:
                check_sql(table, i + 1, step, tuple(config.transform.references))
            except StepConfigError as exc:
                message = str(exc).split(": ", 1)[-1]  # the path says table and step
                problems.append(StepProblem(("transform", "steps", table, i, "sql"), message))
    return problems
