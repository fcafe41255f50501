"""The rules a contract puts on a column: one small class per rule, listed in :data:`RULES`.

A rule is written under its column, by name, with its argument (*short form*) or
with a mapping that adds an owner or a message (*long form*)::

    columns:
      amount:
        type: decimal(12,2)
        min: 0                                   # short form
        max: {value: 10000, owner: "#finance", message: "too large for one order"}

Each rule class turns itself into a SQL expression that is true for a row that
*breaks* it (:meth:`ColumnRule.failure`); :mod:`dataplump.contracts.check` runs
every rule of a contract in one DuckDB query per batch. A null value breaks
``not_null`` and nothing else: every other rule lets nulls pass.

The names follow the tools people know: dbt's ``not_null``, ``unique``,
``accepted_values`` and ``expression_is_true`` (dbt-utils); the JSON Schema and
ODCS property constraints ``pattern``, ``min_length``, ``max_length`` (ODCS:
``minLength``...) and Soda's ``valid min`` / ``valid max`` as ``min`` / ``max``.
:data:`KNOWN_ELSEWHERE` maps the names Great Expectations, Soda, Pandera and
ODCS use to ours, for "did you mean" hints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    field_validator,
    model_validator,
)

from dataplump.contracts import _sql
from dataplump.contracts.types import NUMERIC, TEMPORAL, Family, LogicalType


@dataclass(frozen=True)
class ColumnSql:
    """How the check query refers to a column, for a rule to build its SQL."""

    name: str
    """The column's name in the contract."""
    ref: str
    """SQL reference to the column's value, read as its declared type."""
    type: LogicalType
    """The declared type."""
    duplicates: str = "NULL"
    """SQL for how many rows of the batch share this row's value (NULL when one);
    set only for a column with ``unique``."""


def as_text(value: Any) -> str:
    """A rule argument from YAML (number, date, string) as the text rules keep.

    Floats go through their shortest repr, so ``0.1`` stays ``0.1``; quote values
    with more digits than a float holds (``max: "99999999999999999.99"``).
    """
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a number, a date or a string, got {_show(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {value}")
        return str(Decimal(repr(value)))
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        return value.strip()
    raise ValueError(f"expected a number, a date or a string, got {_show(value)}")


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def literal(text: str, type: LogicalType) -> str:
    """SQL for a rule argument compared with a column of ``type``.

    Numbers are exact numeric literals (DuckDB reads ``0.005`` as DECIMAL(4,3), so a
    decimal column is compared without rounding); anything else is cast to the
    column's type.
    """
    if type.family in NUMERIC:
        return _sql.number(text)
    return f"CAST({_sql.string(text)} AS {type.duckdb})"


def _families(families: frozenset[Family]) -> str:
    order = ("integer", "decimal", "float", "string", "bytes", "date", "timestamp", "timestamptz")
    return ", ".join(f for f in order if f in families)


class ColumnRule(BaseModel):
    """A rule on one column. Subclasses set :attr:`name`, ``value`` and :meth:`failure`."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True
    )

    name: ClassVar[str]
    """The rule's name: its key under the column, and ``rule`` in violations."""
    families: ClassVar[frozenset[Family] | None] = None
    """Column types the rule applies to; None: every type."""

    value: Any
    """The rule's argument (the short form's value)."""
    owner: str | None = None
    """Who is told when this rule breaks (person or channel); default: the column's
    owner, else the contract's."""
    message: str | None = None
    """Text of the violation instead of the rule's default message."""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return data if isinstance(data, dict) else {"value": data}

    def failure(self, column: ColumnSql) -> str:
        """SQL that is true for a row that breaks the rule (null or false: the row passes)."""
        raise NotImplementedError

    def describe(self, column: ColumnSql) -> str:
        """The default message of a violation (the value is shown beside it); for
        ``unique``, ``{n}`` stands for the number of rows sharing the value."""
        raise NotImplementedError

    def problems(self, type: LogicalType) -> list[str]:
        """What is wrong with the rule on a column of ``type``, found without DuckDB."""
        if self.families is not None and type.family not in self.families:
            return [
                f"rule `{self.name}` does not apply to a column of type {type.name}"
                f" (it applies to {_families(self.families)})"
            ]
        return []

    def checks(self, type: LogicalType) -> list[tuple[str, str]]:
        """``(SQL constant expression, problem)`` pairs DuckDB evaluates at load; an error
        is the problem (a date in ``min`` that is not a date, an invalid regex)."""
        return []


class NotNull(ColumnRule):
    """The value must not be null. dbt ``not_null``; GE ``expect_column_values_to_not_be_null``;
    ODCS ``required``; Soda ``missing_count``.

    Example: ``id: {type: int64, not_null: true}`` (``not_null: false`` is the same as
    leaving it out).
    """

    name: ClassVar[str] = "not_null"
    value: StrictBool = True
    """``true`` (``false`` means no rule)."""

    def failure(self, column: ColumnSql) -> str:
        return f"{column.ref} IS NULL"

    def describe(self, column: ColumnSql) -> str:
        return "is null"


class Unique(ColumnRule):
    """No two rows of the batch have the same value; every row sharing a value is
    rejected (nulls are never duplicates). dbt ``unique``; ODCS ``unique``; Soda
    ``duplicate_count``; GE ``expect_column_values_to_be_unique``.

    Example: ``id: {type: int64, unique: true}``. For several columns together, use a
    table rule: ``rules: [{unique: [tenant_id, id]}]``.
    """

    name: ClassVar[str] = "unique"
    value: StrictBool = True
    """``true`` (``false`` means no rule)."""

    def failure(self, column: ColumnSql) -> str:
        return f"{column.duplicates} IS NOT NULL"

    def describe(self, column: ColumnSql) -> str:
        return "is not unique in the batch: {n} rows have this value"


class _Bound(ColumnRule):
    families: ClassVar[frozenset[Family] | None] = NUMERIC | TEMPORAL
    value: str
    """The bound, inclusive: a number for numeric columns, an ISO date or timestamp for
    date and timestamp columns (``2020-01-01``, ``2020-01-01T00:00:00+02:00``)."""

    _value_text = field_validator("value", mode="before")(as_text)

    def problems(self, type: LogicalType) -> list[str]:
        found = super().problems(type)
        if not found and type.family in NUMERIC:
            try:
                Decimal(self.value)
            except InvalidOperation:
                found.append(f"`{self.name}` must be a number for a column of type {type.name}")
        return found

    def checks(self, type: LogicalType) -> list[tuple[str, str]]:
        if type.family in NUMERIC:
            return []
        return [
            (
                literal(self.value, type),
                f"`{self.name}` {self.value!r} is not a {type.name}",
            )
        ]


class Min(_Bound):
    """The value must be at least ``min`` (inclusive). Soda ``valid min``; ODCS
    ``minimum``; GE ``expect_column_values_to_be_between(min_value=)``; Pandera ``ge``.

    Example: ``amount: {type: 'decimal(12,2)', min: 0}``;
    ``born: {type: date, min: 1900-01-01}``.
    """

    name: ClassVar[str] = "min"

    def failure(self, column: ColumnSql) -> str:
        below = f"{column.ref} < {literal(self.value, column.type)}"
        # NaN compares above every number (DuckDB and Spark): no bound admits it
        return f"({below} OR isnan({column.ref}))" if column.type.family == "float" else below

    def describe(self, column: ColumnSql) -> str:
        nan = " (a NaN never meets it)" if column.type.family == "float" else ""
        return f"is less than the minimum {self.value}{nan}"


class Max(_Bound):
    """The value must be at most ``max`` (inclusive). Soda ``valid max``; ODCS
    ``maximum``; GE ``expect_column_values_to_be_between(max_value=)``; Pandera ``le``.

    Example: ``quantity: {type: int32, min: 1, max: 100}``.
    """

    name: ClassVar[str] = "max"

    def failure(self, column: ColumnSql) -> str:
        above = f"{column.ref} > {literal(self.value, column.type)}"
        return f"({above} OR isnan({column.ref}))" if column.type.family == "float" else above

    def describe(self, column: ColumnSql) -> str:
        nan = " (a NaN never meets it)" if column.type.family == "float" else ""
        return f"is greater than the maximum {self.value}{nan}"


class AcceptedValues(ColumnRule):
    """The value must be one of a list. dbt ``accepted_values``; Soda and ODCS
    ``valid values``; GE ``expect_column_values_to_be_in_set``; Pandera ``isin``.

    Example: ``status: {type: string, accepted_values: [new, paid, shipped]}``.
    """

    name: ClassVar[str] = "accepted_values"
    families: ClassVar[frozenset[Family] | None] = frozenset(
        {"integer", "decimal", "float", "string", "date", "timestamp", "timestamptz", "boolean"}
    )
    value: tuple[str, ...] = Field(min_length=1)
    """The accepted values (a non-empty list)."""

    @field_validator("value", mode="before")
    @classmethod
    def _texts(cls, value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of values, got {_show(value)}")
        return tuple(
            ("true" if v else "false") if isinstance(v, bool) else as_text(v) for v in value
        )

    def problems(self, type: LogicalType) -> list[str]:
        found = super().problems(type)
        if not found and type.family in NUMERIC:
            for text in self.value:
                try:
                    Decimal(text)
                except InvalidOperation:
                    found.append(f"accepted value {text!r} is not a number ({type.name} column)")
        return found

    def checks(self, type: LogicalType) -> list[tuple[str, str]]:
        if type.family in NUMERIC:
            return []
        return [
            (literal(text, type), f"accepted value {text!r} is not a {type.name}")
            for text in self.value
        ]

    def failure(self, column: ColumnSql) -> str:
        values = ", ".join(literal(text, column.type) for text in self.value)
        return f"{column.ref} NOT IN ({values})"

    def describe(self, column: ColumnSql) -> str:
        shown = ", ".join(self.value[:10])
        more = f", ... ({len(self.value)} in all)" if len(self.value) > 10 else ""
        return f"is not one of the accepted values: {shown}{more}"


class Pattern(ColumnRule):
    """The value must contain a match of a regular expression (RE2 syntax, as DuckDB's
    ``regexp_matches`` runs it); anchor it with ``^...$`` to match the whole value.
    ODCS and JSON Schema ``pattern``; Soda ``valid regex``; Pandera ``str_matches``;
    GE ``expect_column_values_to_match_regex``.

    Example: ``email: {type: string, pattern: '^[^@\\s]+@[^@\\s]+$'}``.
    """

    name: ClassVar[str] = "pattern"
    families: ClassVar[frozenset[Family] | None] = frozenset({"string"})
    value: str = Field(min_length=1)
    """The regular expression."""

    def checks(self, type: LogicalType) -> list[tuple[str, str]]:
        return [
            (
                f"regexp_matches('', {_sql.string(self.value)})",
                "invalid regular expression (RE2 syntax, as DuckDB runs it)",
            )
        ]

    def failure(self, column: ColumnSql) -> str:
        return f"NOT regexp_matches({column.ref}, {_sql.string(self.value)})"

    def describe(self, column: ColumnSql) -> str:
        return f"does not match the pattern {self.value}"


class _Length(ColumnRule):
    families: ClassVar[frozenset[Family] | None] = frozenset({"string", "bytes"})
    value: StrictInt = Field(ge=0)
    """Characters of a string, bytes of a bytes value."""

    @staticmethod
    def _length(column: ColumnSql) -> str:
        function = "octet_length" if column.type.family == "bytes" else "length"
        return f"{function}({column.ref})"

    @staticmethod
    def _unit(column: ColumnSql) -> str:
        return "bytes" if column.type.family == "bytes" else "characters"


class MinLength(_Length):
    """The value must have at least ``min_length`` characters (bytes for ``bytes``).
    ODCS ``minLength``; Soda ``valid min length``; Pandera ``str_length(min_value=)``.

    Example: ``country: {type: string, min_length: 2, max_length: 2}``.
    """

    name: ClassVar[str] = "min_length"

    def failure(self, column: ColumnSql) -> str:
        return f"{self._length(column)} < {self.value}"

    def describe(self, column: ColumnSql) -> str:
        return f"is shorter than {self.value} {self._unit(column)}"


class MaxLength(_Length):
    """The value must have at most ``max_length`` characters (bytes for ``bytes``).
    ODCS ``maxLength``; Soda ``valid max length``; Pandera ``str_length(max_value=)``.

    Example: ``note: {type: text, max_length: 500}``.
    """

    name: ClassVar[str] = "max_length"

    def failure(self, column: ColumnSql) -> str:
        return f"{self._length(column)} > {self.value}"

    def describe(self, column: ColumnSql) -> str:
        return f"is longer than {self.value} {self._unit(column)}"


class NotInFuture(ColumnRule):
    """A date or timestamp must not be later than the time of the check (UTC; a date:
    not after today's UTC date; a timestamp without zone is read as UTC).

    Example: ``created_at: {type: timestamptz, not_in_future: true}``.
    """

    name: ClassVar[str] = "not_in_future"
    families: ClassVar[frozenset[Family] | None] = TEMPORAL
    value: StrictBool = True
    """``true`` (``false`` means no rule)."""

    def failure(self, column: ColumnSql) -> str:
        now = "CAST($now AS TIMESTAMPTZ)"
        if column.type.family != "timestamptz":
            now = f"CAST({now} AS {column.type.duckdb})"
        return f"{column.ref} > {now}"

    def describe(self, column: ColumnSql) -> str:
        return "is in the future"


class ExpressionIsTrue(ColumnRule):
    """A SQL boolean expression (DuckDB dialect) over the row's columns must not be
    false; like a SQL ``CHECK`` constraint, null passes. dbt-utils ``expression_is_true``.
    Columns are read as their declared types.

    Example: ``shipped_at: {type: timestamptz, expression_is_true: "shipped_at >= ordered_at"}``.
    """

    name: ClassVar[str] = "expression_is_true"
    value: str = Field(min_length=1)
    """The SQL expression."""

    def failure(self, column: ColumnSql) -> str:
        return f"NOT {_sql.wrap(self.value)}"

    def describe(self, column: ColumnSql) -> str:
        return f"expression is not true: {self.value}"


RULES: tuple[type[ColumnRule], ...] = (
    NotNull,
    Unique,
    Min,
    Max,
    AcceptedValues,
    Pattern,
    MinLength,
    MaxLength,
    NotInFuture,
    ExpressionIsTrue,
)
"""Every column rule, in the order they are checked and reported."""

RULE_NAMES = tuple(rule.name for rule in RULES)

KNOWN_ELSEWHERE = {
    "required": "not_null",
    "nullable": "not_null",
    "is_not_null": "not_null",
    "missing_count": "not_null",
    "not_be_null": "not_null",
    "distinct": "unique",
    "duplicate_count": "unique",
    "primary_key": "unique",
    "minimum": "min",
    "min_value": "min",
    "ge": "min",
    "greater_than_or_equal_to": "min",
    "in_range": "min",
    "between": "min",
    "maximum": "max",
    "max_value": "max",
    "le": "max",
    "less_than_or_equal_to": "max",
    "isin": "accepted_values",
    "in_set": "accepted_values",
    "valid_values": "accepted_values",
    "allowed_values": "accepted_values",
    "enum": "accepted_values",
    "regex": "pattern",
    "valid_regex": "pattern",
    "str_matches": "pattern",
    "match_regex": "pattern",
    "minlength": "min_length",
    "maxlength": "max_length",
    "length": "max_length",
    "str_length": "max_length",
    "future": "not_in_future",
    "sql": "expression_is_true",
    "check": "expression_is_true",
    "expression": "expression_is_true",
}
"""Names other tools use for our rules (GE, Soda, Pandera, ODCS, dbt), for hints."""
