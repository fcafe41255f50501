"""The built-in cleaning steps: vectorized functions from an Arrow table to an Arrow table.

Each step works a whole column at a time with Arrow compute (``trim``, case, ``fill_null``,
``drop_null``, ``dedupe``, ``rename``, ``drop``), Polars (``parse_dates``, whose parser
refuses impossible dates such as 31/02 that Arrow's ``strptime`` rolls over into March)
or one DuckDB query (``cast`` values Arrow's exact cast refuses). No Python loop runs per
row. A step returns a :class:`StepOutput`: the table, the rows that *failed* (a value
that cannot be cast or parsed: they leave the output and are reported) and the number
of rows it *dropped* on purpose (``drop_null``, ``dedupe``).

The hidden lineage column :data:`ROW` rides along untouched; a step naming a column
that does not exist raises :class:`StepError`, which the transform reports as
:class:`~dataplump.engine.errors.StepFailed` for the whole batch.

    >>> import pyarrow as pa
    >>> from dataplump.engine.spec import Cast
    >>> out = run_builtin(Cast(types={"qty": "int32"}), pa.table({"qty": ["1", "x", None]}), ())
    >>> out.table["qty"].type, out.failures.mask.to_pylist()
    (DataType(int32), [False, True, False])
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import get_close_matches
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dataplump.contracts._sql import VALUE_CHARS, ident
from dataplump.contracts.types import LogicalType
from dataplump.engine.spec import (
    Cast,
    Dedupe,
    Drop,
    DropNull,
    FillNull,
    Lowercase,
    ParseDates,
    Rename,
    Step,
    Titlecase,
    Trim,
    Uppercase,
)

ROW = "__dp_row"
"""Hidden int64 column: each row's index in the batch given to ``apply`` (lineage)."""

_local = threading.local()


class StepError(Exception):
    """A step cannot run on this batch; the message is one line (no table or step)."""

    def __init__(self, message: str, traceback_summary: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.traceback_summary = traceback_summary


@dataclass(frozen=True)
class RowFailures:
    """Rows of a step's input that failed, with the first failing column of each."""

    mask: pa.BooleanArray
    """One entry per input row of the step: true if the row failed."""
    column: pa.Array
    """Per row, the failing column (null where the row did not fail)."""
    value: pa.Array
    """Per row, the failing value as text, at most ``VALUE_CHARS`` characters."""
    message: pa.Array
    """Per row, what is wrong with the value."""


@dataclass(frozen=True)
class StepOutput:
    """What a step made of a table."""

    table: pa.Table
    """The rows after the step, failed rows still in (the transform removes them)."""
    failures: RowFailures | None = None
    """Rows that failed, or None when none can."""
    dropped: int | None = None
    """Rows removed on purpose (``drop_null``, ``dedupe``); None for other steps."""


def run_builtin(step: Step, table: pa.Table, primary_key: Sequence[str]) -> StepOutput:
    """Run one built-in step on ``table``; ``primary_key`` is ``dedupe``'s default key."""
    if isinstance(step, Trim | Lowercase | Uppercase | Titlecase):
        return StepOutput(_text_step(step, table))
    if isinstance(step, ParseDates):
        return _parse_dates(step, table)
    if isinstance(step, Cast):
        return _cast(step, table)
    if isinstance(step, FillNull):
        return StepOutput(_fill_null(step, table))
    if isinstance(step, DropNull):
        return _drop_null(step, table)
    if isinstance(step, Dedupe):
        return _dedupe(step, table, primary_key)
    if isinstance(step, Rename):
        return StepOutput(_rename(step, table))
    if isinstance(step, Drop):
        _columns(table, step.columns)
        return StepOutput(table.drop_columns(list(step.columns)))
    raise TypeError(f"not a built-in step: {step.kind}")  # pragma: no cover


# ---- helpers -----------------------------------------------------------------------


def visible(names: Sequence[str]) -> list[str]:
    """Column names without the hidden lineage column."""
    return [name for name in names if name != ROW]


def missing_column(name: str, table: pa.Table) -> StepError:
    """The error for a column the batch does not have, with the closest one."""
    names = visible(table.column_names)
    close = get_close_matches(name, names, n=1)
    hint = f"did you mean `{close[0]}`? " if close else ""
    return StepError(f"no column `{name}` in the batch; {hint}(columns: {', '.join(names)})")


def _columns(table: pa.Table, names: Iterable[str]) -> list[int]:
    found = []
    for name in names:
        index = table.schema.get_field_index(name)
        if index < 0 or name == ROW:
            raise missing_column(name, table)
        found.append(index)
    return found


def _text(table: pa.Table, name: str, kind: str) -> pa.ChunkedArray:
    column = table[name]
    value_type = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if not (
        pa.types.is_string(value_type)
        or pa.types.is_large_string(value_type)
        or pa.types.is_string_view(value_type)
    ):
        raise StepError(
            f"`{kind}` works on text, but column `{name}` is {column.type}; cast it first or"
            " remove it from the step"
        )
    return column.cast(value_type) if value_type != column.type else column


def _as_text(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Values as text for a failure report, cut at ``VALUE_CHARS`` characters."""
    text = values if pa.types.is_string(values.type) else pc.cast(values, pa.string())
    long = pc.greater(pc.utf8_length(text), VALUE_CHARS)
    cut = pc.binary_join_element_wise(
        pc.utf8_slice_codeunits(text, 0, VALUE_CHARS - 3), pa.scalar("..."), ""
    )
    return pc.if_else(long, cut, text)


class _Failures:
    """Accumulates failing rows column by column; a row keeps its first failure."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.mask: Any = None
        self.column: Any = None
        self.value: Any = None
        self.message: Any = None

    def add(self, column: str, bad: Any, values: Any, message: str) -> None:
        bad = pc.fill_null(bad, False)
        if not pc.any(bad).as_py():
            return
        text = _as_text(values)
        if self.mask is None:
            self.mask = bad
            self.column = pc.if_else(bad, pa.scalar(column), pa.scalar(None, pa.string()))
            self.value = pc.if_else(bad, text, pa.scalar(None, pa.string()))
            self.message = pc.if_else(bad, pa.scalar(message), pa.scalar(None, pa.string()))
            return
        new = pc.and_(bad, pc.invert(self.mask))
        self.column = pc.if_else(new, pa.scalar(column), self.column)
        self.value = pc.if_else(new, text, self.value)
        self.message = pc.if_else(new, pa.scalar(message), self.message)
        self.mask = pc.or_(self.mask, bad)

    def result(self) -> RowFailures | None:
        if self.mask is None:
            return None
        return RowFailures(
            *(
                a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
                for a in (self.mask, self.column, self.value, self.message)
            )
        )


# ---- steps -------------------------------------------------------------------------


def _text_step(step: Trim | Lowercase | Uppercase | Titlecase, table: pa.Table) -> pa.Table:
    for index, name in zip(_columns(table, step.columns), step.columns, strict=True):
        values = _text(table, name, step.kind)
        if isinstance(step, Trim):
            values = pc.utf8_normalize(values, "NFC")
            values = pc.replace_substring_regex(values, r"[\s\pZ]+", " ")
            values = pc.utf8_trim_whitespace(values)
        elif isinstance(step, Lowercase):
            values = pc.utf8_lower(values)
        elif isinstance(step, Uppercase):
            values = pc.utf8_upper(values)
        else:
            values = pc.utf8_title(values)
        table = table.set_column(index, name, values)
    return table


def _parse_dates(step: ParseDates, table: pa.Table) -> StepOutput:
    import polars as pl

    failures = _Failures(table.num_rows)
    for index, name in zip(_columns(table, step.formats), step.formats, strict=True):
        if pa.types.is_temporal(table[name].type):
            continue  # already parsed (e.g. a DATE column of PostgreSQL): kept as it is
        values = _text(table, name, step.kind)
        fmt = step.formats[name]
        target = step.target(name)
        dtype = pl.Date() if target == "date" else pl.Datetime("us")
        series = pl.Series(name, values) if values.num_chunks else pl.Series(name, [], pl.String)
        try:
            parsed = series.str.strptime(dtype, fmt, strict=False).to_arrow()
        except pl.exceptions.PolarsError as exc:
            raise StepError(f"format {fmt!r} of `{name}` cannot be used: {exc}") from None
        if target == "timestamptz" and parsed.type.tz != "UTC":
            parsed = pc.cast(parsed, pa.timestamp("us", tz="UTC"))
        failures.add(
            name,
            pc.and_(pc.is_valid(values), pc.is_null(parsed)),
            values,
            f"does not match the date format {fmt!r}",
        )
        table = table.set_column(index, name, parsed)
    return StepOutput(table, failures.result())


def _connection() -> Any:
    """This thread's DuckDB connection for casts (no file or network access)."""
    from dataplump.engine.sql import new_connection

    con = getattr(_local, "con", None)
    if con is None:
        con = _local.con = new_connection()
    return con


def _try_cast(values: pa.ChunkedArray, type_: LogicalType) -> tuple[pa.ChunkedArray, Any]:
    """DuckDB's ``TRY_CAST``, with a value that only casts by rounding (``1.5`` to an
    integer, ``1.005`` to ``decimal(10,2)``) counted as failed; returns (cast, failed)."""
    target = "VARCHAR" if type_.family == "json" else type_.duckdb
    lossy = "false"
    if type_.family in ("integer", "decimal") and not pa.types.is_integer(values.type):
        lossy = "TRY_CAST(v AS DOUBLE) <> CAST(c AS DOUBLE)"
    query = (
        f"SELECT c, v IS NOT NULL AND (c IS NULL OR {lossy}) AS bad"  # noqa: S608
        f" FROM (SELECT v, TRY_CAST(v AS {target}) AS c FROM {ident('__dp_cast')})"
    )
    con = _connection()
    con.register("__dp_cast", pa.table({"v": values}))
    try:
        result = con.sql(query).to_arrow_table()
    finally:
        con.unregister("__dp_cast")
    cast = result["c"]
    if cast.type != type_.arrow():
        cast = cast.cast(type_.arrow(), safe=False)
    return cast, result["bad"]


def _cast(step: Cast, table: pa.Table) -> StepOutput:
    failures = _Failures(table.num_rows)
    for index, name in zip(_columns(table, step.types), step.types, strict=True):
        type_ = step.logical(name)
        values = table[name]
        if values.type == type_.arrow():
            continue
        try:  # Arrow's safe cast is exact or raises: the fast path when every value fits
            cast = values.cast(type_.arrow(), safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            cast, bad = _try_cast(values, type_)
            failures.add(name, bad, values, f"cannot be cast to {type_.name}")
        table = table.set_column(index, name, cast)
    return StepOutput(table, failures.result())


def _fill_null(step: FillNull, table: pa.Table) -> pa.Table:
    for index, name in zip(_columns(table, step.values), step.values, strict=True):
        column = table[name]
        value = step.values[name]
        try:
            scalar = pa.scalar(value).cast(column.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise StepError(
                f"fill_null value {value!r} does not fit column `{name}` ({column.type})"
            ) from None
        table = table.set_column(index, name, pc.fill_null(column, scalar))
    return table


def _drop_null(step: DropNull, table: pa.Table) -> StepOutput:
    _columns(table, step.columns)
    keep = pc.is_valid(table[step.columns[0]])
    for name in step.columns[1:]:
        keep = pc.and_(keep, pc.is_valid(table[name]))
    kept = table.filter(keep)
    return StepOutput(kept, dropped=table.num_rows - kept.num_rows)


def _dedupe(step: Dedupe, table: pa.Table, primary_key: Sequence[str]) -> StepOutput:
    key = list(step.key or primary_key)
    if not key:
        raise StepError("`dedupe` needs `key`: the table has no primary key to default to")
    wanted = [*key, *([step.newest_by] if step.newest_by else [])]
    _columns(table, wanted)
    pos = "__dp_pos"
    small = pa.table({**{k: table[k] for k in wanted}, pos: np.arange(table.num_rows)})
    order = [(pos, "ascending", "at_end")]
    if step.newest_by:  # nulls first: they count as the oldest
        order.insert(0, (step.newest_by, "ascending", "at_start"))
    ordered = small.take(pc.sort_indices(small, sort_keys=order))
    last = ordered.group_by(key, use_threads=False).aggregate([(pos, "last")])[f"{pos}_last"]
    positions = pc.take(last, pc.array_sort_indices(last))
    kept = table.take(positions)
    return StepOutput(kept, dropped=table.num_rows - kept.num_rows)


def _rename(step: Rename, table: pa.Table) -> pa.Table:
    _columns(table, step.columns)
    kept = set(table.column_names) - set(step.columns)
    if taken := [new for new in step.columns.values() if new in kept]:
        raise StepError(f"cannot rename to `{taken[0]}`: the batch already has that column")
    return table.rename_columns(dict(step.columns))
