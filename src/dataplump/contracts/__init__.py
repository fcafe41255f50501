"""Data contracts: declared columns, types and rules, checked on Arrow batches.

    >>> import pyarrow as pa
    >>> from dataplump.contracts import Contract
    >>> contract = Contract.from_config("orders", {
    ...     "version": "1.0.0",
    ...     "columns": {
    ...         "id": {"type": "int64", "not_null": True, "unique": True},
    ...         "status": {"type": "string", "accepted_values": ["new", "paid"]},
    ...     },
    ... })
    >>> result = contract.check(pa.table({"id": [1, 2, 2], "status": ["new", "lost", "paid"]}))
    >>> result.valid.num_rows, result.invalid_rows.to_pylist()
    (1, [1, 2])
    >>> [reason["rule"] for reason in result.reasons.to_pylist()[0]]
    ['unique', 'accepted_values']

The file format, every rule, the policies and what a violation looks like are in
``docs/contracts.md``. Modules: :mod:`~dataplump.contracts.spec` (the file, loading,
versioning), :mod:`~dataplump.contracts.rules` (one class per rule, in
:data:`~dataplump.contracts.rules.RULES`), :mod:`~dataplump.contracts.types` (declared
types, Arrow types, drift), :mod:`~dataplump.contracts.check` (the DuckDB check).
"""

from dataplump.contracts.check import (
    REASON_TYPE,
    REASONS_TYPE,
    BatchFailure,
    CheckResult,
    RuleCount,
    SchemaIssue,
)
from dataplump.contracts.errors import (
    BatchRejectedError,
    CheckFailedError,
    ContractError,
    ContractProblem,
    ReferenceTableError,
)
from dataplump.contracts.rules import RULES, ColumnRule
from dataplump.contracts.spec import (
    ColumnSpec,
    Contract,
    Expectation,
    OnFail,
    Policy,
    Relationship,
    TableRule,
)
from dataplump.contracts.types import LogicalType, parse_type

__all__ = [
    "REASONS_TYPE",
    "REASON_TYPE",
    "RULES",
    "BatchFailure",
    "BatchRejectedError",
    "CheckFailedError",
    "CheckResult",
    "ColumnRule",
    "ColumnSpec",
    "Contract",
    "ContractError",
    "ContractProblem",
    "Expectation",
    "LogicalType",
    "OnFail",
    "Policy",
    "ReferenceTableError",
    "Relationship",
    "RuleCount",
    "SchemaIssue",
    "TableRule",
    "parse_type",
]
