"""The transformation engine: a table's steps run on an Arrow batch.

    >>> import pyarrow as pa
    >>> from dataplump.engine import TableTransform, parse_steps
    >>> steps, problems = parse_steps(
    ...     [{"trim": ["status"]}, {"lowercase": "status"}, {"drop_null": ["id"]}], None
    ... )
    >>> result = TableTransform("orders", steps).apply(
    ...     pa.table({"id": [1, None, 3], "status": [" PAID ", "new", "Shipped  "]})
    ... )
    >>> result.output.to_pylist(), result.source_rows.to_pylist(), result.filtered
    ([{'id': 1, 'status': 'paid'}, {'id': 3, 'status': 'shipped'}], [0, 2], {'3:drop_null': 1})

The seam the transform stage codes against is :meth:`TableTransform.apply`, built with
:meth:`TableTransform.from_config`. Modules: :mod:`~dataplump.engine.spec` (the steps as
written in the config), :mod:`~dataplump.engine.builtin` (cleaning steps),
:mod:`~dataplump.engine.sql` (the DuckDB SQL step), :mod:`~dataplump.engine.python_steps`
(pandas and polars functions), :mod:`~dataplump.engine.references` (reference tables),
:mod:`~dataplump.engine.transform` (running the steps, lineage and row failures),
:mod:`~dataplump.engine.check` (checking steps before data flows),
:mod:`~dataplump.engine.errors`. Every step is described in ``docs/transform.md``.
"""

from dataplump.engine.builtin import ROW
from dataplump.engine.check import check_steps
from dataplump.engine.errors import (
    EngineError,
    ReferenceLoadError,
    StepConfigError,
    StepFailed,
    TransientReferenceLoadError,
    TransientStepError,
)
from dataplump.engine.references import ReferenceCopies, ReferenceTables
from dataplump.engine.spec import STEPS, Step, StepProblem, parse_steps
from dataplump.engine.transform import FAILURES_SCHEMA, TableTransform, TransformResult

__all__ = [
    "FAILURES_SCHEMA",
    "ROW",
    "STEPS",
    "EngineError",
    "ReferenceCopies",
    "ReferenceLoadError",
    "ReferenceTables",
    "Step",
    "StepConfigError",
    "StepFailed",
    "StepProblem",
    "TableTransform",
    "TransformResult",
    "TransientReferenceLoadError",
    "TransientStepError",
    "check_steps",
    "parse_steps",
]
