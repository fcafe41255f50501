"""Errors of the contracts package::

    ConfigError (dataplump.errors)
    └── ContractError          a contract cannot be loaded: one ContractProblem per problem
    TerminalError (dataplump.errors)
    └── BatchRejectedError     a whole batch breaks the contract (policy `reject_batch`,
                               or a rule could not run on it): send the batch to the DLQ
    └── ReferenceTableError    a `relationships` rule's reference table was not passed to
                               the check, or lacks the rule's field: fix the caller
    TransientError (dataplump.errors)
    └── CheckFailedError       DuckDB ran out of memory or was interrupted: retry later

A row that breaks a rule is not an error: :meth:`Contract.check` returns it among the
invalid rows, with its reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dataplump.errors import ConfigError, TerminalError, TransientError

MAX_SHOWN = 10
"""``str(ContractError)`` lists this many problems, then "... and N more"."""


def format_path(path: Sequence[str | int]) -> str:
    """``("columns", "amount", "min")`` -> ``columns.amount.min``; ints index: ``rules[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


@dataclass(frozen=True)
class ContractProblem:
    """One problem in a contract, and where it is."""

    path: tuple[str | int, ...]
    """Key path inside the contract, e.g. ``("columns", "amount", "min")``; empty for the
    whole contract."""
    message: str
    """What is wrong, naming the rule and the column, usually with the fix."""
    line: int | None = None
    """1-based line in the contract file, when the contract is a file."""
    column: int | None = None
    """1-based column in the contract file, when the contract is a file."""

    @property
    def key(self) -> str:
        """The key path as text: ``columns.amount.min``."""
        return format_path(self.path)


class ContractError(ConfigError):
    """A contract cannot be loaded; ``problems`` lists every problem found.

    ``str()`` is one line per problem,
    ``FILE:LINE:COL: contract of table `orders`: columns.amount.min: message``
    (no ``FILE:...`` for an inline contract).
    """

    def __init__(
        self, table: str, problems: Sequence[ContractProblem], file: Path | None = None
    ) -> None:
        self.table = table
        self.problems = tuple(problems)
        self.file = file
        lines = [self.line(problem) for problem in self.problems[:MAX_SHOWN]]
        if len(self.problems) > MAX_SHOWN:
            lines.append(f"... and {len(self.problems) - MAX_SHOWN} more")
        super().__init__("\n".join(lines))

    def line(self, problem: ContractProblem) -> str:
        """One problem as a line of the message."""
        where = ""
        if self.file is not None:
            where = f"{self.file}:{problem.line or 1}:{problem.column or 1}: "
        key = f"{problem.key}: " if problem.path else ""
        return f"{where}contract of table `{self.table}`: {key}{problem.message}"


class BatchRejectedError(TerminalError):
    """A whole batch breaks its contract; the caller sends it whole to the DLQ.

    Raised by :meth:`Contract.check` when a column is unknown, missing or drifted and
    the contract's policy for that is ``reject_batch``, or when a rule cannot run on
    the batch (e.g. an ``expression_is_true`` whose SQL fails on a value). ``reasons``
    hold the reasons every row of the batch is rejected for, in the shape of a row's
    reasons (``rule``, ``column``, ``value``, ``message``).
    """

    def __init__(
        self,
        message: str,
        *,
        table: str,
        contract_version: str | None,
        contract_hash: str,
        reasons: Sequence[dict[str, Any]],
        owner: str | None,
    ) -> None:
        super().__init__(message)
        self.table = table
        self.contract_version = contract_version
        self.contract_hash = contract_hash
        self.reasons = tuple(reasons)
        self.owner = owner


class ReferenceTableError(TerminalError):
    """A ``relationships`` rule cannot run: its reference table was not passed to
    :meth:`Contract.check` (``references``), lacks the rule's ``field``, or holds values
    of a type the column cannot be compared with. The batch is not at fault: fix the
    caller (the stage passes every table of :meth:`Contract.reference_names`)."""

    def __init__(self, message: str, *, table: str, rule: str, reference: str) -> None:
        super().__init__(message)
        self.table = table
        self.rule = rule
        self.reference = reference


class CheckFailedError(TransientError):
    """Checking a batch failed for a reason that is not the batch's: DuckDB ran out of
    memory, was interrupted or hit an I/O error. Retry later, or with smaller batches."""
