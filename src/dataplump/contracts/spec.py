"""The contract file: pydantic models, loading with located errors, versioning.

A contract is YAML, inline under ``tables.<t>.contract`` in the pipeline file or a file
beside it (``docs/contracts.md`` is the reference)::

    version: "1.2.0"
    owner: "#orders-team"
    on_unknown_column: pass          # pass | reject_row | reject_batch
    on_missing_column: reject_row
    on_type_drift: reject_batch
    columns:
      id: {type: int64, not_null: true, unique: true}
      amount: {type: 'decimal(12,2)', not_null: true, min: 0}
      status: {type: string, accepted_values: [new, paid, shipped]}
    rules:
      - name: paid_orders_have_amount
        expression_is_true: "status <> 'paid' OR amount > 0"
      - relationships: {column: customer_id, to: customers, field: id}
    expectations:                    # about the whole batch (output contracts)
      - row_count_not_zero
      - null_share: {column: status, max: 0.05}
        on_fail: warn

:meth:`Contract.from_config` loads one and checks everything a batch cannot fix: unknown
rules and types (with "did you mean"), rules that do not fit their column's type,
``min`` above ``max``, regular expressions and SQL expressions DuckDB cannot run
(each SQL expression is prepared against an empty table of the declared columns).
Every problem is raised at once in a :class:`~dataplump.contracts.errors.ContractError`,
one line each, with the contract file's line for a file.

    >>> contract = Contract.from_config("orders", {"version": "1", "columns": {"id": "int64"}})
    >>> contract.version, len(contract.content_hash)
    ('1', 12)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from difflib import get_close_matches
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeInt,
    PrivateAttr,
    StrictBool,
    ValidationError,
    model_validator,
)

from dataplump.contracts import _sql
from dataplump.contracts.errors import ContractError, ContractProblem
from dataplump.contracts.rules import (
    KNOWN_ELSEWHERE,
    RULE_NAMES,
    RULES,
    AcceptedValues,
    ColumnRule,
    ColumnSql,
    ExpressionIsTrue,
    Max,
    MaxLength,
    Min,
    MinLength,
    NotInFuture,
    NotNull,
    Pattern,
    Unique,
    literal,
)
from dataplump.contracts.types import NUMERIC, LogicalType, parse_type

if TYPE_CHECKING:
    import pyarrow as pa

    from dataplump.contracts.check import CheckResult

Policy = Literal["pass", "reject_row", "reject_batch"]
"""What a schema problem does: ``pass`` lets the rows through, ``reject_row`` makes every
row invalid with that reason, ``reject_batch`` raises
:class:`~dataplump.contracts.errors.BatchRejectedError` for the whole batch."""

Path_ = tuple[str | int, ...]
Locate = Callable[[Path_], tuple[int | None, int | None]]

COLUMN_KEYS = ("type", "description", "owner")
"""Keys of a column that are not rules."""
TABLE_RULE_KINDS = ("unique", "expression_is_true", "relationships")
"""Rules that can be written under ``rules:`` (about the row, not one column)."""
OnFail = Literal["reject_batch", "warn"]
"""What a failed expectation does: ``reject_batch`` makes every row of the batch invalid
with the expectation as a reason (nothing is valid); ``warn`` only reports it."""
EXPECTATION_KINDS = ("row_count_not_zero", "row_count_between", "null_share")
"""Expectations that can be written under ``expectations:`` (about the whole batch)."""
EXPECTATIONS_KNOWN_ELSEWHERE = {
    "not_empty": "row_count_not_zero",
    "row_count": "row_count_between",
    "expect_table_row_count_to_be_between": "row_count_between",
    "expect_table_row_count_to_equal": "row_count_between",
    "missing_percent": "null_share",
    "missing_count": "null_share",
    "null_percent": "null_share",
    "not_null_proportion": "null_share",
    "expect_column_values_to_not_be_null": "null_share",
}
"""Names Great Expectations, Soda and dbt use for our expectations, for hints."""


def _version(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(
            f"write the version as a string, e.g. `version: '{value}'` (YAML reads {value} as"
            " a number, so `1.10` would become `1.1`)"
        )
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _type_name(value: Any) -> Any:
    return parse_type(value).name if isinstance(value, str) else value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


@lru_cache(maxsize=256)
def _logical(name: str) -> LogicalType:
    return parse_type(name)


class _Model(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True
    )


class ColumnSpec(_Model):
    """One entry of ``columns:`` — a column's type, and the rules its values must meet.

    ``amount: decimal(12,2)`` is short for ``amount: {type: 'decimal(12,2)'}``. Any key
    besides ``type``, ``description`` and ``owner`` is a rule (see
    :mod:`dataplump.contracts.rules`). Nulls are allowed unless ``not_null: true``.
    """

    type: Annotated[str, BeforeValidator(_type_name)]
    """Declared type: integer, int8, int16, int32, int64, decimal(p,s), float, double, string
    (or text), boolean, date, timestamp, timestamptz, json or bytes."""
    description: str | None = None
    """What the column means; for people."""
    owner: str | None = None
    """Who is told when a rule of this column breaks; default: the contract's owner."""
    # One field per rule, in the order of rules.RULES (a test checks they match).
    not_null: NotNull | None = None
    """Rule: the value must not be null."""
    unique: Unique | None = None
    """Rule: no two rows of a batch share a value."""
    min: Min | None = None
    """Rule: the value is at least this."""
    max: Max | None = None
    """Rule: the value is at most this."""
    accepted_values: AcceptedValues | None = None
    """Rule: the value is one of these."""
    pattern: Pattern | None = None
    """Rule: the value contains a match of this RE2 regular expression."""
    min_length: MinLength | None = None
    """Rule: the value has at least this many characters (bytes for bytes)."""
    max_length: MaxLength | None = None
    """Rule: the value has at most this many characters (bytes for bytes)."""
    not_in_future: NotInFuture | None = None
    """Rule: the date or timestamp is not later than the check."""
    expression_is_true: ExpressionIsTrue | None = None
    """Rule: this SQL expression over the row is not false."""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"type": data}
        if isinstance(data, dict):  # `not_null: false` is the same as no rule
            off = [k for k, v in data.items() if k in RULE_NAMES and (v is False or _is_off(v))]
            return {k: v for k, v in data.items() if k not in off}
        return data

    @property
    def logical_type(self) -> LogicalType:
        """The declared type, with its Arrow and DuckDB types."""
        return _logical(self.type)

    @property
    def rules(self) -> tuple[ColumnRule, ...]:
        """The column's rules, in the order they are checked and reported."""
        found = (getattr(self, rule.name) for rule in RULES)
        return tuple(rule for rule in found if rule is not None)


def _is_off(value: Any) -> bool:
    return isinstance(value, dict) and value.get("value") is False


class Relationship(_Model):
    """The argument of a ``relationships`` table rule (dbt's name): every non-null value
    of ``column`` must be a value of ``field`` in the reference table ``to``."""

    column: str = Field(min_length=1)
    """The contract's column holding the reference (the foreign key)."""
    to: str = Field(min_length=1)
    """The reference table's name: the key of ``references`` in :meth:`Contract.check`."""
    field: str = Field(min_length=1)
    """The reference table's column the values must be found in."""


class TableRule(_Model):
    """One entry of ``rules:`` — a rule about the whole row rather than one column.

    Exactly one of ``unique``, ``expression_is_true`` and ``relationships``::

        rules:
          - unique: [tenant_id, id]
          - name: shipped_after_ordered
            expression_is_true: "shipped_at IS NULL OR shipped_at >= ordered_at"
            column: shipped_at
            owner: "#logistics"
          - relationships: {column: customer_id, to: customers, field: id}
    """

    name: str | None = Field(None, min_length=1)
    """The rule's name in violations; default: its kind (`unique`, `expression_is_true`).
    Two table rules of one kind need names."""
    description: str | None = None
    """What the rule means; for people."""
    owner: str | None = None
    """Who is told when this rule breaks; default: the contract's owner."""
    message: str | None = None
    """Text of the violation instead of the default message."""
    column: str | None = None
    """The column violations name and show the value of; default: none for
    `expression_is_true`, the listed columns for `unique`, `relationships.column` for
    `relationships` (which takes no other)."""
    unique: Annotated[tuple[str, ...], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    """Columns whose values together must not repeat within a batch (rows with a null in
    any of them are never duplicates)."""
    expression_is_true: str | None = Field(None, min_length=1)
    """A SQL boolean expression (DuckDB dialect) over the row's columns that must not be
    false (null passes, as in a SQL CHECK constraint)."""
    relationships: Relationship | None = None
    """Referential integrity: each non-null value of ``column`` must be in the reference
    table ``to``'s column ``field`` (a null passes, as in a SQL foreign key)."""

    @model_validator(mode="after")
    def _one_kind(self) -> TableRule:
        given = [kind for kind in TABLE_RULE_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = f"both {' and '.join(f'`{k}`' for k in given)}" if given else "none"
            raise ValueError(
                f"a table rule needs exactly one of {', '.join(TABLE_RULE_KINDS)}; found {found}"
            )
        return self

    @property
    def kind(self) -> str:
        """``unique``, ``expression_is_true`` or ``relationships``."""
        return next(kind for kind in TABLE_RULE_KINDS if getattr(self, kind) is not None)

    @property
    def rule_name(self) -> str:
        """The name violations carry: ``name``, else the kind."""
        return self.name or self.kind


class NullShare(_Model):
    """The argument of ``null_share``: at most ``max`` of the batch's rows have a null
    ``column``."""

    column: str = Field(min_length=1)
    """A declared column."""
    max: Annotated[float, Field(ge=0, le=1)]
    """The largest share of nulls allowed, from 0 (none) to 1 (all): 0.05 is 5%."""


class RowCountBetween(_Model):
    """The argument of ``row_count_between``: the batch has ``min`` to ``max`` rows
    (both inclusive; one may be left out)."""

    min: NonNegativeInt | None = None
    """Fewest rows allowed."""
    max: NonNegativeInt | None = None
    """Most rows allowed."""

    @model_validator(mode="after")
    def _bounds(self) -> RowCountBetween:
        if self.min is None and self.max is None:
            raise ValueError("`row_count_between` needs `min`, `max` or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(
                f"`min` {self.min} is greater than `max` {self.max}; no batch can pass"
            )
        return self


class Expectation(_Model):
    """One entry of ``expectations:`` — something the whole batch must meet.

    Exactly one of ``row_count_not_zero``, ``row_count_between`` and ``null_share``;
    ``- row_count_not_zero`` alone is short for ``- row_count_not_zero: true``::

        expectations:
          - row_count_not_zero
          - name: email_mostly_known
            null_share: {column: email, max: 0.05}
            on_fail: warn
            owner: "#crm"
          - row_count_between: {min: 1, max: 1000000}
    """

    name: str | None = Field(None, min_length=1)
    """The expectation's name in results and reasons; default: its kind."""
    description: str | None = None
    """What the expectation means; for people."""
    owner: str | None = None
    """Who is told when it fails; default: the column's owner, else the contract's."""
    message: str | None = None
    """Text of the failure instead of the default message."""
    on_fail: OnFail = "reject_batch"
    """`reject_batch`: every row of the batch is invalid, with this expectation among its
    reasons; `warn`: the batch is checked as if it had passed, and the failure reported."""
    row_count_not_zero: StrictBool | None = None
    """The batch is not empty — unless the input it was made from was empty too
    (``input_rows`` of :meth:`Contract.check`; not given: the batch must not be empty)."""
    row_count_between: RowCountBetween | None = None
    """The batch's row count is within ``min`` and ``max``."""
    null_share: NullShare | None = None
    """The share of the batch's rows whose ``column`` is null is at most ``max``."""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        if isinstance(data, str) and data in ("null_share", "row_count_between"):
            example = "{column: email, max: 0.05}" if data == "null_share" else "{min: 1}"
            raise ValueError(f"`{data}` needs its argument: `- {data}: {example}`")
        return {data: True} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _one_kind(self) -> Expectation:
        if self.row_count_not_zero is False:
            raise ValueError("`row_count_not_zero: false` checks nothing; remove the entry")
        given = [kind for kind in EXPECTATION_KINDS if getattr(self, kind) is not None]
        if len(given) != 1:
            found = f"both {' and '.join(f'`{k}`' for k in given)}" if given else "none"
            raise ValueError(
                f"an expectation needs exactly one of {', '.join(EXPECTATION_KINDS)}; found {found}"
            )
        return self

    @property
    def kind(self) -> str:
        """``row_count_not_zero``, ``row_count_between`` or ``null_share``."""
        return next(kind for kind in EXPECTATION_KINDS if getattr(self, kind) is not None)

    @property
    def expectation_name(self) -> str:
        """The name results carry: ``name``, else the kind."""
        return self.name or self.kind

    @property
    def column(self) -> str | None:
        """The column it is about (``null_share``), else None."""
        return self.null_share.column if self.null_share is not None else None


class Contract(_Model):
    """A table's data contract: its columns, their rules, and what schema changes do.

    Load with :meth:`from_config`; check a batch with :meth:`check`.
    """

    version: Annotated[str | None, BeforeValidator(_version)] = None
    """The contract's version, as its authors number it (`"1.2.0"`); every check result
    carries it, next to :attr:`content_hash`."""
    owner: str | None = None
    """Who is told about violations (person or channel), unless a column or rule names
    its own owner."""
    description: str | None = None
    """What the table holds; for people."""
    on_unknown_column: Policy = "pass"
    """A column in the batch that the contract does not declare: `pass` keeps it (valid
    rows carry it unchanged), `reject_row` or `reject_batch`."""
    on_missing_column: Policy = "reject_row"
    """A declared column absent from the batch: `pass` reads it as all nulls (so
    `not_null` on it still fails), `reject_row` or `reject_batch`."""
    on_type_drift: Policy = "reject_row"
    """A column whose Arrow type is not the declared one: `pass` reads the values as the
    declared type (a value that cannot be read breaks rule `type`), `reject_row` or
    `reject_batch`."""
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    """The declared columns, by name, in order."""
    rules: tuple[TableRule, ...] = ()
    """Rules about the whole row: `unique` over several columns, `expression_is_true`,
    `relationships` to a reference table."""
    expectations: tuple[Expectation, ...] = ()
    """Expectations about the whole batch (`row_count_not_zero`, `row_count_between`,
    `null_share`), as output contracts use them."""

    _table: str = PrivateAttr("")
    _source: Path | None = PrivateAttr(None)
    _plans: dict[Any, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_config(cls, table: str, value: Path | str | Mapping[str, Any]) -> Contract:
        """Load and validate the contract of ``table``: a mapping, or a YAML file's path.

        Raises :class:`~dataplump.contracts.errors.ContractError` listing every problem,
        located in the file when ``value`` is one.
        """
        file: Path | None = None
        locate: Locate = lambda path: (None, None)  # noqa: E731
        if isinstance(value, Mapping):
            data: Any = dict(value)
        else:
            file = Path(value)
            data, locate = _read_yaml(table, file)
        try:
            contract = cls.model_validate(data)
        except ValidationError as exc:
            problems = [_located(p, locate) for p in _problems_from_pydantic(exc, data)]
            raise ContractError(table, problems, file) from None
        if problems := [_located(p, locate) for p in contract._problems()]:
            problems.sort(key=lambda p: (p.line or 0, p.column or 0))  # file order, if a file
            raise ContractError(table, problems, file)
        contract._table = table
        contract._source = file
        return contract

    @property
    def table(self) -> str:
        """The table this contract is for."""
        return self._table

    @property
    def source(self) -> Path | None:
        """The contract file, or None for an inline contract."""
        return self._source

    @cached_property
    def content_hash(self) -> str:
        """First 12 hex digits of the sha256 of the parsed contract as canonical JSON.

        Defaults are filled in and short forms expanded first, so two files that mean
        the same have the same hash; any change of meaning changes it.
        """
        data = self.model_dump(mode="json")
        # Keys added later are left out while unused, so older contracts keep their hash.
        if not data["expectations"]:
            del data["expectations"]
        for rule in data["rules"]:
            if rule["relationships"] is None:
                del rule["relationships"]
        canonical = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()[:12]

    @property
    def version_label(self) -> str:
        """``1.2.0+3f2a9c1b7d4e``: the declared version (``unversioned`` if none) and hash."""
        return f"{self.version or 'unversioned'}+{self.content_hash}"

    def arrow_schema(self) -> pa.Schema:
        """The declared columns as an Arrow schema (see :meth:`LogicalType.arrow`)."""
        import pyarrow as pa

        return pa.schema(
            [
                pa.field(name, spec.logical_type.arrow(), nullable=spec.not_null is None)
                for name, spec in self.columns.items()
            ]
        )

    def owner_of(self, rule: str, column: str | None) -> str | None:
        """Who to tell about rule ``rule`` of ``column`` (None for a table rule): the
        rule's owner, else the column's, else the contract's."""
        spec = self.columns.get(column) if column is not None else None
        if spec is not None:
            column_rule = getattr(spec, rule, None) if rule in RULE_NAMES else None
            if isinstance(column_rule, ColumnRule) and column_rule.owner:
                return column_rule.owner
            if spec.owner:
                return spec.owner
        for table_rule in self.rules:
            if table_rule.rule_name == rule and table_rule.owner:
                return table_rule.owner
        return self.owner

    def expectation_owner(self, expectation: Expectation) -> str | None:
        """Who to tell when ``expectation`` fails: its owner, else its column's, else the
        contract's."""
        spec = self.columns.get(expectation.column or "")
        return expectation.owner or (spec.owner if spec else None) or self.owner

    def reference_names(self) -> frozenset[str]:
        """Names of the reference tables the contract's ``relationships`` rules need, to
        be passed to :meth:`check` as ``references``."""
        return frozenset(r.relationships.to for r in self.rules if r.relationships is not None)

    def check(
        self,
        batch: pa.Table | pa.RecordBatch,
        *,
        now: datetime | None = None,
        references: Mapping[str, pa.Table] | None = None,
        input_rows: int | None = None,
    ) -> CheckResult:
        """Check a batch; see :func:`dataplump.contracts.check.check`."""
        from dataplump.contracts.check import check

        return check(self, batch, now=now, references=references, input_rows=input_rows)

    # ---- load-time checks -------------------------------------------------------------

    def _problems(self) -> list[ContractProblem]:
        """Everything wrong that pydantic's validation cannot see, in file order."""
        problems: list[ContractProblem] = []
        lowered: dict[str, str] = {}
        for name, spec in self.columns.items():
            if (first := lowered.setdefault(name.lower(), name)) != name:
                problems.append(
                    ContractProblem(
                        ("columns", name),
                        f"column `{name}` differs from column `{first}` only in case;"
                        " SQL (which runs the rules) does not tell them apart",
                    )
                )
            problems += _column_problems(name, spec)
        problems += self._table_rule_problems()
        problems += self._expectation_problems()
        problems += _duckdb_problems(self, {p.path for p in problems})
        return problems

    def _table_rule_problems(self) -> list[ContractProblem]:
        problems = []
        seen: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if (first := seen.setdefault(rule.rule_name, i)) != i:
                problems.append(
                    ContractProblem(
                        ("rules", i),
                        f"table rules {first} and {i} are both called `{rule.rule_name}`;"
                        " give each a different `name`",
                    )
                )
            named: list[tuple[Path_, str | None]] = [
                (("rules", i, "unique", j), column) for j, column in enumerate(rule.unique or ())
            ]
            if rule.relationships is not None:
                named.append((("rules", i, "relationships", "column"), rule.relationships.column))
                if rule.column is not None and rule.column != rule.relationships.column:
                    problems.append(
                        ContractProblem(
                            ("rules", i, "column"),
                            f"table rule `{rule.rule_name}` shows `relationships.column`"
                            f" ({rule.relationships.column}); remove `column`",
                        )
                    )
            else:
                named.append((("rules", i, "column"), rule.column))
            for at, column in named:
                if column is not None and column not in self.columns:
                    problems.append(
                        ContractProblem(
                            at,
                            f"table rule `{rule.rule_name}` names column `{column}`, which the"
                            f" contract does not declare{_suggest(column, list(self.columns))}",
                        )
                    )
        return problems

    def _expectation_problems(self) -> list[ContractProblem]:
        problems = []
        seen: dict[tuple[str, str | None], int] = {}
        for i, expectation in enumerate(self.expectations):
            name = expectation.expectation_name
            if (first := seen.setdefault((name, expectation.column), i)) != i:
                problems.append(
                    ContractProblem(
                        ("expectations", i),
                        f"expectations {first} and {i} are both `{name}`"
                        + (f" of column `{expectation.column}`" if expectation.column else "")
                        + "; give each a different `name`",
                    )
                )
            column = expectation.column
            if column is not None and column not in self.columns:
                problems.append(
                    ContractProblem(
                        ("expectations", i, expectation.kind, "column"),
                        f"expectation `{name}` names column `{column}`, which the contract"
                        f" does not declare{_suggest(column, list(self.columns))}",
                    )
                )
        return problems


def _column_problems(name: str, spec: ColumnSpec) -> list[ContractProblem]:
    type_ = spec.logical_type
    problems = [
        ContractProblem(("columns", name, rule.name), message)
        for rule in spec.rules
        for message in rule.problems(type_)
    ]
    if problems:
        return problems
    if (
        spec.min
        and spec.max
        and type_.family in NUMERIC
        and Decimal(spec.min.value) > Decimal(spec.max.value)
    ):
        problems.append(
            ContractProblem(
                ("columns", name, "max"),
                f"`min` {spec.min.value} is greater than `max` {spec.max.value}; no value can pass",
            )
        )
    if spec.min_length and spec.max_length and spec.min_length.value > spec.max_length.value:
        problems.append(
            ContractProblem(
                ("columns", name, "max_length"),
                f"`min_length` {spec.min_length.value} is greater than `max_length`"
                f" {spec.max_length.value}; no value can pass",
            )
        )
    return problems


_EMPTY = "__dp_contract_empty"
ROW = "__dp_row"
"""Name of the row-number column in the check query (never a contract column)."""
_SAMPLE_NOW = {"now": "2000-01-01T00:00:00+00:00"}


def _duckdb_problems(contract: Contract, known: set[Path_]) -> list[ContractProblem]:
    """Run each rule's literals and SQL on DuckDB against an empty table of the columns.

    Rules (and columns) with a problem in ``known`` are skipped: their SQL would fail
    for the reason already reported.
    """
    con = _sql.connection()
    skipped = {path[1] for path in known if len(path) == 2 and path[0] == "columns"}
    columns = {name: spec for name, spec in contract.columns.items() if name not in skipped}
    created = [f"{_sql.ident(ROW)} BIGINT"] + [
        f"{_sql.ident(name)} {spec.logical_type.duckdb}" for name, spec in columns.items()
    ]
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_EMPTY} ({', '.join(created)})")
    problems = []

    def run(sql: str) -> tuple[list[str], str | None]:
        try:
            if len(con.extract_statements(sql)) != 1:
                return [], "is not one SQL expression"
            relation = con.sql(sql, params=_SAMPLE_NOW if "$now" in sql else None)
            return [str(t) for t in relation.types], None
        except Exception as exc:  # any DuckDB error is the problem to report
            return [], _sql.first_line(exc)

    def evaluate(constant: str) -> str | None:
        # Only NULL-ness is fetched: DuckDB needs pytz to hand a TIMESTAMPTZ to Python.
        try:
            con.sql(f"SELECT ({constant}) IS NULL").fetchall()
        except Exception as exc:  # any DuckDB error is the problem to report
            return _sql.first_line(exc)
        return None

    try:
        for name, spec in columns.items():
            type_ = spec.logical_type
            column = ColumnSql(name, _sql.ident(name), type_, duplicates="CAST(2 AS BIGINT)")
            for rule in spec.rules:
                at: Path_ = ("columns", name, rule.name)
                if at in known:
                    continue
                failed = [f"{p}: {e}" for q, p in rule.checks(type_) if (e := evaluate(q))]
                if not failed and isinstance(rule, ExpressionIsTrue):
                    failed = _expression_problems(rule.value, run)
                if not failed:
                    broken = rule.failure(column)
                    query = f"SELECT {_sql.ident(ROW)}, {broken} FROM {_EMPTY}"  # noqa: S608
                    if error := run(query)[1]:
                        failed = [f"rule `{rule.name}` does not run: {error}"]
                problems += [ContractProblem(at, p) for p in failed]
            bounds = ("columns", name, "min"), ("columns", name, "max")
            clean = not any(p.path in bounds for p in problems) and not known & set(bounds)
            if spec.min and spec.max and type_.family not in NUMERIC and clean:
                low, high = (literal(b.value, type_) for b in (spec.min, spec.max))
                if (
                    not evaluate(low)
                    and not evaluate(high)
                    and (con.sql(f"SELECT {low} > {high}").fetchall() == [(True,)])
                ):
                    problems.append(
                        ContractProblem(
                            bounds[1],
                            f"`min` {spec.min.value} is later than `max` {spec.max.value};"
                            " no value can pass",
                        )
                    )
        for i, table_rule in enumerate(contract.rules):
            if table_rule.expression_is_true is not None and not any(
                path[:2] == ("rules", i) for path in known
            ):
                problems += [
                    ContractProblem(("rules", i, "expression_is_true"), p)
                    for p in _expression_problems(table_rule.expression_is_true, run)
                ]
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_EMPTY}")
    return problems


def _expression_problems(
    expression: str, run: Callable[[str], tuple[list[str], str | None]]
) -> list[str]:
    if not _sql.balanced(expression):
        return ["SQL expression has unbalanced parentheses"]
    query = f"SELECT {_sql.ident(ROW)}, {_sql.wrap(expression)} FROM {_EMPTY}"  # noqa: S608
    types, error = run(query)
    if error and "GROUP BY" in error:
        return [
            "SQL expression uses an aggregate (sum, count, ...); it is checked row by row,"
            " so use a window (`amount <= 10 * avg(amount) OVER ()`) or another rule"
        ]
    if error:
        return [f"SQL expression does not run: {error}"]
    if len(types) != 2:
        return ["is not one SQL expression"]
    if types[1] != "BOOLEAN":
        return [f"SQL expression gives {types[1]}, not BOOLEAN (true for a valid row)"]
    return []


# ---- reading files and reporting pydantic's errors -------------------------------------


def _read_yaml(table: str, file: Path) -> tuple[Any, Locate]:
    """The file's data and a function locating a key path in it (1-based line, column)."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    problem, line, col = None, None, None
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        problem = "contract file not found"
    except (OSError, UnicodeDecodeError) as exc:
        problem = f"cannot read the contract file: {getattr(exc, 'strerror', None) or exc}"
    if problem is None:
        try:
            data = YAML(typ="rt").load(text)
        except MarkedYAMLError as exc:
            mark = exc.problem_mark
            problem = f"YAML syntax error: {exc.problem}"
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        except YAMLError as exc:
            problem = f"YAML error: {type(exc).__name__}"
        except ValueError as exc:  # ruamel builds dates while parsing: `2020-13-01`
            problem = f"YAML value that cannot be read: {exc}; quote it to keep it as text"
    if problem is None and not isinstance(data, dict):
        what = "empty" if data is None else "a list" if isinstance(data, list) else "one value"
        problem, line, col = f"expected a mapping with `columns:`, the file is {what}", 1, 1
    if problem is not None:
        raise ContractError(table, [ContractProblem((), problem, line, col)], file)

    def locate(path: Path_) -> tuple[int | None, int | None]:
        node: Any = data
        where: tuple[int | None, int | None] = (1, 1)
        for part in path:
            try:
                if isinstance(node, dict) and part in node:
                    at = getattr(node, "lc").key(part)  # noqa: B009 (ruamel's positions)
                    node = node[part]
                elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                    at = getattr(node, "lc").item(part)  # noqa: B009
                    node = node[part]
                else:
                    break
            except (AttributeError, KeyError, TypeError):
                break
            where = (at[0] + 1, at[1] + 1)
        return where

    return _plain(data), locate


def _plain(value: Any) -> Any:
    """ruamel's round-trip objects as plain Python data."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str):
        return str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, datetime):  # ruamel's TimeStamp
        return datetime.fromisoformat(value.isoformat())
    return value


def _located(problem: ContractProblem, locate: Locate) -> ContractProblem:
    line, col = locate(problem.path)
    return ContractProblem(problem.path, problem.message, line, col)


def _suggest(name: str, valid: list[str], known: Mapping[str, str] | None = None) -> str:
    hint = (known or {}).get(name.lower()) or next(
        iter(get_close_matches(name, valid, n=1, cutoff=0.6)), None
    )
    return f"; did you mean `{hint}`?" if hint else ""


_TOP_KEYS = list(Contract.model_fields)
_RULE_KEYS = ["value", "owner", "message"]
_TABLE_RULE_KEYS = list(TableRule.model_fields)
_EXPECTATION_KEYS = list(Expectation.model_fields)
_ARGUMENT_KEYS = {
    "relationships": list(Relationship.model_fields),
    "null_share": list(NullShare.model_fields),
    "row_count_between": list(RowCountBetween.model_fields),
}
_EXPECTED = {
    "string_type": "a string",
    "bool_type": "true or false",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
    "float_type": "a number",
    "float_parsing": "a number",
}


def _problems_from_pydantic(exc: ValidationError, data: Any) -> list[ContractProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        path = _in_data(tuple(error["loc"]), data)
        problems.append(ContractProblem(path, _message(error, tuple(error["loc"]), path)))
    return problems


def _in_data(loc: Path_, data: Any) -> Path_:
    """The longest prefix of pydantic's ``loc`` that exists in the data: drops the
    ``value`` key a short form never had, and keys that are missing."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif not isinstance(node, dict) or part not in node:
            break
        else:
            node = node[part]
        path.append(part)
    return tuple(path)


def _message(error: Any, loc: Path_, path: Path_) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = _describe(error.get("input"))
    if kind == "missing":
        return f"missing required key `{loc[-1]}`"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        if len(loc) == 3 and loc[0] == "columns" and re.fullmatch(r"\s*\d+\s*\)", key):
            return (
                f"`{key}` is the end of a decimal(p,s) type cut at its comma; inside a flow"
                " mapping `{...}` put the type in quotes, `type: 'decimal(12,2)'`"
            )
        if len(loc) == 3 and loc[0] == "columns" and key == "relationships":
            return (
                f"column `{loc[1]}`: `relationships` is a table rule; write it under `rules:`"
                f" as `- relationships: {{column: {loc[1]}, to: TABLE, field: COLUMN}}`"
            )
        if len(loc) == 3 and loc[0] == "columns":
            rules = ", ".join(RULE_NAMES)
            hint = _suggest(key, [*RULE_NAMES, *COLUMN_KEYS], KNOWN_ELSEWHERE)
            return (
                f"column `{loc[1]}`: unknown rule `{key}`{hint} (rules: {rules};"
                f" other keys: {', '.join(COLUMN_KEYS)})"
            )
        if len(loc) == 2 and loc[0] == "columns":
            return f"unknown key `{key}`"
        if len(loc) == 4 and loc[0] == "columns":
            return (
                f"column `{loc[1]}`, rule `{loc[2]}`: unknown key `{key}`"
                f"{_suggest(key, _RULE_KEYS)} (valid: {', '.join(_RULE_KEYS)})"
            )
        if len(loc) == 3 and loc[0] == "rules":
            hint = _suggest(key, _TABLE_RULE_KEYS, KNOWN_ELSEWHERE)
            valid = ", ".join(_TABLE_RULE_KEYS)
            return f"table rule {loc[1]}: unknown key `{key}`{hint} (valid: {valid})"
        if len(loc) == 3 and loc[0] == "expectations":
            hint = _suggest(key, _EXPECTATION_KEYS, EXPECTATIONS_KNOWN_ELSEWHERE)
            kinds = ", ".join(EXPECTATION_KINDS)
            others = ", ".join(k for k in _EXPECTATION_KEYS if k not in EXPECTATION_KINDS)
            return (
                f"expectation {loc[1]}: unknown expectation `{key}`{hint} (expectations:"
                f" {kinds}; other keys: {others})"
            )
        if len(loc) == 4 and loc[0] in ("rules", "expectations"):
            valid = ", ".join(_ARGUMENT_KEYS.get(str(loc[2]), []))
            hint = _suggest(key, _ARGUMENT_KEYS.get(str(loc[2]), []))
            return f"`{loc[2]}`: unknown key `{key}`{hint} (valid: {valid})"
        return f"unknown key `{key}`{_suggest(key, _TOP_KEYS)} (valid: {', '.join(_TOP_KEYS)})"
    if kind == "literal_error":
        options = [
            o.strip(" '") for o in str(ctx.get("expected", "")).replace(" or ", ",").split(",")
        ]
        value = error.get("input")
        hint = _suggest(value, options) if isinstance(value, str) else ""
        return f"invalid choice {got}{hint} (valid: {', '.join(options)})"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got}"
    if kind in ("too_short", "string_too_short"):
        return "must not be empty"
    if kind in ("greater_than_equal", "less_than_equal") and loc[-2:] == ("null_share", "max"):
        return f"expected a share from 0 to 1 (0.05 is 5%), got {got}"
    if kind == "greater_than_equal":
        return f"expected a number >= {ctx.get('ge')}, got {got}"
    if kind == "less_than_equal":
        return f"expected a number <= {ctx.get('le')}, got {got}"
    text = str(error["msg"]).removeprefix("Value error, ")
    return f"{text}"


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)
