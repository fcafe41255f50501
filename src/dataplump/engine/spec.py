"""Transform steps as written in the pipeline file: one frozen pydantic model per kind.

A table's steps are a list; each step is a mapping with **one key, the step's kind**,
whose value holds its arguments::

    transform:
      steps:
        orders:
          - trim: [customer, status]
          - cast: {amount: "decimal(10,2)", qty: int32}
          - sql: SELECT o.*, c.country FROM batch o LEFT JOIN customers c USING (customer_id)
          - pandas: steps/orders.py:add_bucket

:func:`parse_steps` turns such a list into step models and collects every problem
(unknown kind with "did you mean", bad arguments, a type name
:func:`~dataplump.contracts.types.parse_type` refuses, SQL DuckDB cannot parse, a
function file that does not exist) as a :class:`StepProblem` whose ``path`` starts at
the step's index, e.g. ``(3, "cast", "amount")``. The config model reports them at
``transform.steps.<table>[3].cast.amount`` with the file line. What each step does is in
:mod:`dataplump.engine.builtin` and ``docs/transform.md``.

    >>> steps, problems = parse_steps([{"trim": "name"}, {"trimm": ["x"]}], None)
    >>> steps[0].describe()
    'trim name'
    >>> str(problems[0])[:46]
    '[1].trimm: unknown step `trimm`; did you mean `trim`?'[:46]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from difflib import get_close_matches
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dataplump.contracts.types import LogicalType, parse_type

__all__ = [
    "STEPS",
    "Cast",
    "Dedupe",
    "Drop",
    "DropNull",
    "FillNull",
    "FunctionRef",
    "Lowercase",
    "PandasStep",
    "ParseDates",
    "PolarsStep",
    "Rename",
    "SqlStep",
    "Step",
    "StepProblem",
    "Titlecase",
    "Trim",
    "Uppercase",
    "parse_steps",
]

DateTarget = Literal["date", "timestamp", "timestamptz"]
"""What ``parse_dates`` makes of a format: a date, a timestamp, or one with a zone (UTC)."""

_TIME_DIRECTIVES = re.compile(r"%[HIMSfpTRrXcsl]")
_ZONE_DIRECTIVES = re.compile(r"%[zZ]|%:z")
_FUNCTION = re.compile(r"(?P<target>.+):(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class StepProblem:
    """One problem in a table's step list."""

    path: tuple[str | int, ...]
    """Key path below the table's step list: ``(3, "cast", "amount")`` is the `amount`
    entry of the fourth step, a `cast`."""
    message: str
    """What is wrong, usually with the fix."""

    @property
    def key(self) -> str:
        """The path as config issues show it: ``transform.steps.orders[3].cast.amount``."""
        from dataplump.config.issues import format_path

        return format_path(self.path)

    def __str__(self) -> str:
        return f"{self.key}: {self.message}" if self.path else self.message


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Name = Annotated[str, Field(min_length=1)]
Columns = Annotated[tuple[Name, ...], BeforeValidator(_as_list), Field(min_length=1)]
"""A column name or a non-empty list of them."""


class Step(BaseModel):
    """Base of the step models: the kind, how the value under the key maps to fields,
    and a one-line description."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    kind: ClassVar[str]
    """The key the step is written with."""
    wrap: ClassVar[str | None]
    """The field the value under the key becomes; None: the value is a mapping of the
    fields (``dedupe: {newest_by: updated_at}``)."""
    example: ClassVar[str]
    """How the step is written, shown when its value has the wrong shape."""

    def describe(self) -> str:
        """One line for listings and logs, e.g. ``cast amount -> decimal(10,2)``."""
        raise NotImplementedError


class _ColumnsStep(Step):
    wrap: ClassVar[str | None] = "columns"
    columns: Columns
    """The columns the step applies to."""
    verb: ClassVar[str] = ""

    def describe(self) -> str:
        return f"{self.kind} {', '.join(self.columns)}{self.verb}"


class Trim(_ColumnsStep):
    """Text cleanup: Unicode NFC, runs of whitespace collapsed to one space, ends stripped."""

    kind: ClassVar[str] = "trim"
    example: ClassVar[str] = "trim: [customer, status]"


class Lowercase(_ColumnsStep):
    """Text to lower case (Unicode)."""

    kind: ClassVar[str] = "lowercase"
    example: ClassVar[str] = "lowercase: [status]"


class Uppercase(_ColumnsStep):
    """Text to upper case (Unicode)."""

    kind: ClassVar[str] = "uppercase"
    example: ClassVar[str] = "uppercase: [country]"


class Titlecase(_ColumnsStep):
    """Text to title case: each word's first letter upper, the rest lower."""

    kind: ClassVar[str] = "titlecase"
    example: ClassVar[str] = "titlecase: [city]"


class DropNull(_ColumnsStep):
    """Drop rows with a null in any of the columns (counted as filtered, not failed)."""

    kind: ClassVar[str] = "drop_null"
    example: ClassVar[str] = "drop_null: [customer_id]"
    verb: ClassVar[str] = " (rows with a null are dropped)"


class Drop(_ColumnsStep):
    """Remove columns."""

    kind: ClassVar[str] = "drop"
    example: ClassVar[str] = "drop: [internal_note]"


class ParseDates(Step):
    """Text to dates or timestamps with a strftime format; a non-null value that does not
    match (or is no real date, like 31/02) fails its row."""

    kind: ClassVar[str] = "parse_dates"
    wrap: ClassVar[str | None] = "formats"
    example: ClassVar[str] = 'parse_dates: {ordered_on: "%d/%m/%Y"}'
    formats: dict[Name, Name] = Field(min_length=1)
    """Column -> strftime format, e.g. ``%d/%m/%Y``."""

    @field_validator("formats")
    @classmethod
    def _formats(cls, formats: dict[str, str]) -> dict[str, str]:
        for column, text in formats.items():
            if "%" not in text:
                raise ValueError(
                    f"format {text!r} of `{column}` has no % directive; write it as strftime"
                    " does, e.g. `%d/%m/%Y` or `%Y-%m-%d %H:%M:%S`"
                )
        return formats

    def target(self, column: str) -> DateTarget:
        """``timestamptz`` if the format has a zone (%z), ``timestamp`` if it has a time
        of day, else ``date``."""
        text = self.formats[column]
        if _ZONE_DIRECTIVES.search(text):
            return "timestamptz"
        return "timestamp" if _TIME_DIRECTIVES.search(text) else "date"

    def describe(self) -> str:
        parts = [f"{c} ({f} -> {self.target(c)})" for c, f in self.formats.items()]
        return f"parse_dates {', '.join(parts)}"


def _type_names(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {k: parse_type(v).name if isinstance(v, str) else v for k, v in value.items()}


class Cast(Step):
    """Columns to declared types (the contract's type words); a non-null value that cannot
    be represented exactly fails its row."""

    kind: ClassVar[str] = "cast"
    wrap: ClassVar[str | None] = "types"
    example: ClassVar[str] = 'cast: {amount: "decimal(10,2)", qty: int32}'
    types: Annotated[dict[Name, str], BeforeValidator(_type_names), Field(min_length=1)]
    """Column -> type word (`int32`, `decimal(10,2)`, `timestamp`, ...)."""

    def logical(self, column: str) -> LogicalType:
        """The declared type of ``column``."""
        return parse_type(self.types[column])

    def describe(self) -> str:
        return "cast " + ", ".join(f"{c} -> {t}" for c, t in self.types.items())


Scalar = str | bool | int | float | date | datetime


class FillNull(Step):
    """Replace nulls with a value of the column's type."""

    kind: ClassVar[str] = "fill_null"
    wrap: ClassVar[str | None] = "values"
    example: ClassVar[str] = "fill_null: {status: unknown, qty: 0}"
    values: dict[Name, Scalar] = Field(min_length=1)
    """Column -> the value nulls become."""

    def describe(self) -> str:
        return "fill_null " + ", ".join(f"{c} = {v!r}" for c, v in self.values.items())


class Dedupe(Step):
    """Keep one row per key: the newest by a column, else the last in the batch."""

    kind: ClassVar[str] = "dedupe"
    wrap: ClassVar[str | None] = None
    example: ClassVar[str] = "dedupe: {newest_by: updated_at}"
    key: Columns | None = None
    """Key columns; default: the table's `primary_key`."""
    newest_by: Name | None = None
    """Keep the row with the greatest value here (nulls count as oldest; ties: the later
    row); unset: the last row of the batch."""

    @model_validator(mode="before")
    @classmethod
    def _empty(cls, data: Any) -> Any:
        return {} if data is None else data

    def describe(self) -> str:
        key = ", ".join(self.key) if self.key else "the primary key"
        newest = f"newest by {self.newest_by}" if self.newest_by else "last in the batch"
        return f"dedupe by {key}, keeping the {newest}"


class Rename(Step):
    """Rename columns: old name -> new name."""

    kind: ClassVar[str] = "rename"
    wrap: ClassVar[str | None] = "columns"
    example: ClassVar[str] = "rename: {cust: customer_id}"
    columns: dict[Name, Name] = Field(min_length=1)
    """Old name -> new name."""

    @field_validator("columns")
    @classmethod
    def _distinct(cls, columns: dict[str, str]) -> dict[str, str]:
        new = list(columns.values())
        if twice := sorted({n for n in new if new.count(n) > 1}):
            raise ValueError(f"two columns would be called `{twice[0]}`")
        return columns

    def describe(self) -> str:
        return "rename " + ", ".join(f"{a} -> {b}" for a, b in self.columns.items())


class SqlStep(Step):
    """A DuckDB SELECT over the relation `batch` (and the reference tables)."""

    kind: ClassVar[str] = "sql"
    wrap: ClassVar[str | None] = "query"
    example: ClassVar[str] = "sql: SELECT *, amount * 2 AS doubled FROM batch"
    query: Name
    """One SELECT statement (DuckDB dialect)."""

    @field_validator("query")
    @classmethod
    def _one_select(cls, query: str) -> str:
        import duckdb

        try:
            statements = duckdb.extract_statements(query)
        except duckdb.Error as exc:
            raise ValueError(f"the SQL does not parse: {_first_line(exc)}") from None
        if len(statements) != 1:
            raise ValueError(f"expected one SELECT statement, found {len(statements)}")
        if statements[0].type != duckdb.StatementType.SELECT:
            kind = str(statements[0].type).rsplit(".", 1)[-1]
            raise ValueError(f"expected a SELECT statement, found {kind}")
        return query

    def describe(self) -> str:
        text = " ".join(self.query.split())
        return f"sql {text if len(text) <= 80 else text[:77] + '...'}"


@dataclass(frozen=True)
class FunctionRef:
    """Where a user function lives: a Python file or an importable module, and its name."""

    text: str
    """As written: ``steps/orders.py:add_bucket`` or ``mypkg.steps:add_bucket``."""
    name: str
    """The function's name."""
    file: Path | None = None
    """The file (resolved against the pipeline file's folder), for the file form."""
    module: str | None = None
    """The dotted module name, for the module form."""


class _FunctionStep(Step):
    wrap: ClassVar[str | None] = "function"
    frame: ClassVar[str] = ""
    function: FunctionRef
    """The function: ``path/to/file.py:name`` or ``package.module:name``."""

    @field_validator("function", mode="before")
    @classmethod
    def _ref(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        match = _FUNCTION.fullmatch(value.strip())
        if match is None:
            raise ValueError(
                f"expected `path/to/file.py:function` or `package.module:function`, got {value!r}"
            )
        target, name = match["target"], match["name"]
        context = info.context or {}
        if target.endswith(".py") or "/" in target or "\\" in target:
            file = Path(target).expanduser()
            base = context.get("base_dir")
            if base is not None and not file.is_absolute():
                file = Path(base) / file
            if context.get("check_files") and not file.is_file():
                raise ValueError(
                    f"no such file `{target}` (relative paths start at the pipeline file)"
                )
            return FunctionRef(value, name, file=file)
        if not _MODULE.fullmatch(target):
            raise ValueError(f"`{target}` is neither a `.py` file nor a dotted module name")
        return FunctionRef(value, name, module=target)

    def describe(self) -> str:
        return f"{self.kind} {self.function.text} ({self.frame} -> {self.frame})"


class PandasStep(_FunctionStep):
    """A Python function ``f(df: pandas.DataFrame) -> pandas.DataFrame``."""

    kind: ClassVar[str] = "pandas"
    example: ClassVar[str] = "pandas: steps/orders.py:add_bucket"
    frame: ClassVar[str] = "pandas.DataFrame"


class PolarsStep(_FunctionStep):
    """A Python function ``f(df: polars.DataFrame) -> polars.DataFrame``."""

    kind: ClassVar[str] = "polars"
    example: ClassVar[str] = "polars: steps/orders.py:flag"
    frame: ClassVar[str] = "polars.DataFrame"


STEPS: tuple[type[Step], ...] = (
    Trim,
    Lowercase,
    Uppercase,
    Titlecase,
    ParseDates,
    Cast,
    FillNull,
    DropNull,
    Dedupe,
    Rename,
    Drop,
    SqlStep,
    PandasStep,
    PolarsStep,
)
"""Every step kind, in the order ``docs/transform.md`` lists them."""
_BY_KIND = {step.kind: step for step in STEPS}


def parse_steps(
    raw: list[Any], base_dir: Path | None, *, check_files: bool = True
) -> tuple[list[Step], list[StepProblem]]:
    """Parse a table's step list; return the steps that parsed and every problem.

    ``base_dir`` resolves relative function files; ``check_files`` reports a function
    file that does not exist.
    """
    steps: list[Step] = []
    problems: list[StepProblem] = []
    context = {"base_dir": base_dir, "check_files": check_files}
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or len(item) != 1:
            keys = ", ".join(f"`{k}`" for k in item) if isinstance(item, dict) else ""
            found = f"found keys {keys}" if keys else f"found {_describe(item)}"
            problems.append(
                StepProblem(
                    (i,),
                    "a step is a mapping with one key, its kind, e.g. `- trim: [customer]`;"
                    f" {found}",
                )
            )
            continue
        kind, value = next(iter(item.items()))
        model = _BY_KIND.get(kind)
        if model is None:
            close = get_close_matches(str(kind), list(_BY_KIND), n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            shown = ", ".join(_BY_KIND)
            problems.append(StepProblem((i, kind), f"unknown step `{kind}`{hint} (steps: {shown})"))
            continue
        data = {model.wrap: value} if model.wrap else value
        try:
            steps.append(model.model_validate(data, context=context))
        except ValidationError as exc:
            found_problems = [
                StepProblem((i, kind, *_loc(model, error["loc"])), _message(model, error))
                for error in exc.errors(include_url=False)
            ]
            problems += list(dict.fromkeys(found_problems))
    return steps, problems


def _loc(model: type[Step], loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """pydantic's ``loc`` as a key path under the step's key (the wrapped field dropped)."""
    if model is FillNull:  # a union's member names are no keys of the file
        loc = loc[:2]
    parts = loc[1:] if model.wrap and loc[:1] == (model.wrap,) else loc
    # dict keys come back as `[key, "[key]"]` for key errors; keep the key once
    return tuple(p for p in parts if not (isinstance(p, str) and p.endswith("[key]")))


def _message(model: type[Step], error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    got = _describe(error.get("input"))
    fix = f"; write it like `{model.example}`"
    if kind == "missing":
        return f"missing required key `{error['loc'][-1]}`"
    if kind == "extra_forbidden":
        fields = [name for name in model.model_fields if name != model.wrap]
        name = str(error["loc"][-1])
        close = get_close_matches(name, fields, n=1)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        return f"unknown key `{name}`{hint} (valid: {', '.join(fields)})"
    if error["loc"][:1] == ("values",) and len(error["loc"]) >= 2:
        return f"expected a single value (text, number, true/false or a date), got {got}"
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return f"must not be empty{fix}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {got}{fix}"
    if kind in ("list_type", "tuple_type"):
        return f"expected a column name or a list of them, got {got}{fix}"
    if kind == "string_type":
        return f"expected a string, got {got}{fix}"
    if kind == "greater_than":
        return f"expected a number > {ctx['gt']}, got {got}"
    text = str(error["msg"]).removeprefix("Value error, ")
    return text[:1].lower() + text[1:]


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if value is None:
        return "nothing"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
