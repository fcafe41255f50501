"""The built-in cleaning steps as Spark column expressions, matching the Arrow engine.

:func:`run_builtin` is :func:`dataplump.engine.builtin.run_builtin` for a Spark
``DataFrame``: the same steps, the same output values and types, the same failed rows
with the same texts and the same :class:`~dataplump.engine.builtin.StepError` messages.
It is lazy (no Spark action runs inside it) and uses no Python UDF: every step is Spark
column expressions. Where Spark's own functions differ from Arrow's, DuckDB's or Polars'
the step rebuilds the Arrow engine's semantics:

- ``trim``: NFC through ICU4J's ``Normalizer.compose`` (bundled with Spark, called with
  ``try_reflect`` only on rows with a non-ASCII character), and the whitespace classes
  taken from Arrow itself (RE2's ``[\\s\\pZ]`` and ``utf8_trim_whitespace``'s set), so
  ``\\v`` or U+0085 stay inside a text as in the Arrow engine.
- ``lowercase``/``uppercase``: Arrow's one-for-one case mapping (``ß`` stays one letter)
  as a ``translate`` table computed from Arrow; Spark's ``upper`` would give ``SS``.
- ``titlecase``: Arrow's word rule (a word is a run of cased letters; its first letter
  upper, the rest lower), with the cased letters taken from Arrow; Spark's ``initcap``
  only splits at spaces.
- ``parse_dates``: the format becomes one regular expression following chrono's parser
  (which Polars uses): numbers of 1 to the field's width digits, whitespace allowed before
  a number and for a space of the format, ``%Y`` signed, ``%f`` nanoseconds, ``%.f`` a
  fraction, ``%z`` ``+hh:mm``/``+hhmm``, second 60 rolling into the next minute; the
  date is checked with ``try_make_timestamp_ntz`` (31/02 fails).
- ``cast``: DuckDB's ``TRY_CAST`` plus the Arrow engine's rounding check, rebuilt from
  Spark's ``try_cast``: text to integer goes through ``decimal(38,18)`` and rounds half
  away from zero, ``1_000`` and ``0x1f``/``0b101`` are read as DuckDB does, DuckDB's
  boolean words only (no trimming), DuckDB's date and timestamp text layouts
  (``2024-5-1``, ``2024/05/01``, ``99-1-2`` as year 99, a ``T`` or spaces, ``24:00:00``,
  an offset that a ``timestamp`` ignores and a ``timestamptz`` applies, no whitespace
  after a bare date for timestamps, only spaces after a time). Failure values are the Arrow
  text of the value (``1e+20``, ``nan``, ``2024-05-01 10:00:00.000000``).
- ``dedupe``: one row per key by a window over the key, ordered like the Arrow engine
  (nulls oldest, then NaN, then values; ties by the later row).

Known differences (documented, tested where they show):

- ``dedupe`` takes "later row" to mean the greater ``__dp_row``: a Spark frame has no row
  position. After built-in steps the two are the same.
- ``cast`` from text: DuckDB's special words (``epoch``, ``infinity``, ``BC`` dates, a
  ``UTC`` suffix, negative years) fail the row in Spark; so do DuckDB's quirks with
  spaces inside a time (``4:53: 01``, which DuckDB reads as ``04:53:00``) or text after
  it (``11:12:53 x``), and its integer reading of ``50E1.`` or ``0E948``.
- ``cast`` of text to an integer reads the number as ``decimal(38,18)`` first, so
  digits past the 18th decimal are rounded before the rounding check (a value with more
  than 20 digits before the point is out of every integer range anyway).
- ``cast`` from a float of a value JDK 17's ``Double.toString`` does not print in its
  shortest form reports a failure value with more digits than Arrow's (rare).
- ``parse_dates``: the directives ``%Y %m %d %e %H %M %S %y %f %.f %z %:z %b %B %h %T
  %F %D %R %%`` are supported; another one (``%j``, ``%p``, ``%a``...) raises
  :class:`StepError`, where Polars might parse it.
- Text normalization and case tables follow the Unicode versions of ICU4J and Arrow;
  letters new in one and not the other may differ.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from dataplump.contracts._sql import VALUE_CHARS
from dataplump.contracts.types import LogicalType
from dataplump.engine.builtin import ROW, StepError, missing_column
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

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import DataType

__all__ = ["SparkStepOutput", "quote", "run_builtin"]

_FAIL = "__dp_fail"
_RANK = "__dp_rank"
_MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class SparkStepOutput:
    """What a step made of a Spark frame."""

    frame: Any
    """The rows that go on (a ``DataFrame``), the lineage column kept."""
    failures: Any | None = None
    """A ``DataFrame`` of the rows that failed and left ``frame``: ``input_row`` (long),
    ``column``, ``value`` (text, cut at ``VALUE_CHARS``), ``message``; None for steps
    where no row can fail."""
    dropped: Any | None = None
    """A ``DataFrame`` of the rows removed on purpose (``drop_null``, ``dedupe``); None
    for other steps."""


def run_builtin(step: Step, frame: DataFrame, primary_key: Sequence[str]) -> SparkStepOutput:
    """Run one built-in step on ``frame`` lazily; ``primary_key`` is ``dedupe``'s default."""
    if isinstance(step, Trim | Lowercase | Uppercase | Titlecase):
        return SparkStepOutput(_text_step(step, frame))
    if isinstance(step, ParseDates):
        return _parse_dates(step, frame)
    if isinstance(step, Cast):
        return _cast(step, frame)
    if isinstance(step, FillNull):
        return SparkStepOutput(_fill_null(step, frame))
    if isinstance(step, DropNull):
        return _drop_null(step, frame)
    if isinstance(step, Dedupe):
        return _dedupe(step, frame, primary_key)
    if isinstance(step, Rename):
        return SparkStepOutput(_rename(step, frame))
    if isinstance(step, Drop):
        _columns(frame, step.columns)
        gone = set(step.columns)
        return SparkStepOutput(frame.select(*[_col(c) for c in frame.columns if c not in gone]))
    raise TypeError(f"not a built-in step: {step.kind}")  # pragma: no cover


# ---- helpers -----------------------------------------------------------------------


def quote(name: str) -> str:
    """``name`` as a Spark identifier: in backquotes, inner backquotes doubled."""
    return "`" + name.replace("`", "``") + "`"


def _col(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(quote(name))


@dataclass(frozen=True)
class _Names:
    column_names: list[str]


def _columns(frame: DataFrame, names: Iterable[str]) -> None:
    present = set(frame.columns)
    for name in names:
        if name not in present or name == ROW:
            raise missing_column(name, _Names(list(frame.columns)))


def _dtype(frame: DataFrame, name: str) -> DataType:
    return frame.schema[name].dataType


def _arrow_type(dtype: DataType) -> pa.DataType:
    """The Arrow type ``toArrow`` gives a Spark type (for messages and ``fill_null``)."""
    from pyspark.sql.pandas.types import to_arrow_type

    return to_arrow_type(dtype, timezone="UTC")


def _is_text(dtype: DataType) -> bool:
    from pyspark.sql.types import StringType

    return isinstance(dtype, StringType)


def _check_text(frame: DataFrame, name: str, kind: str) -> None:
    dtype = _dtype(frame, name)
    if not _is_text(dtype):
        raise StepError(
            f"`{kind}` works on text, but column `{name}` is {_arrow_type(dtype)}; cast it"
            " first or remove it from the step"
        )


def _replace(frame: DataFrame, new: dict[str, Column], *extra: Column) -> DataFrame:
    """``frame`` with the columns of ``new`` replaced in place, plus ``extra`` at the end."""
    return frame.select(*[new[c].alias(c) if c in new else _col(c) for c in frame.columns], *extra)


def _cut(text: Column) -> Column:
    from pyspark.sql import functions as F

    return F.when(
        F.char_length(text) > VALUE_CHARS,
        F.concat(F.substring(text, 1, VALUE_CHARS - 3), F.lit("...")),
    ).otherwise(text)


def _split_failures(staged: DataFrame, first: Column | None) -> SparkStepOutput:
    """Rows whose first failure (a struct or null) is set leave the frame for the
    failures; ``staged`` has the failure struct as its last column."""
    from pyspark.sql import functions as F

    if first is None:
        return SparkStepOutput(staged, _no_failures(staged))
    fail = F.col(_FAIL)
    kept = staged.filter(fail.isNull()).drop(_FAIL)
    failed = staged.filter(fail.isNotNull()).select(
        _col(ROW).cast("long").alias("input_row"),
        fail["column"].alias("column"),
        fail["value"].alias("value"),
        fail["message"].alias("message"),
    )
    return SparkStepOutput(kept, failed)


def _no_failures(frame: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return frame.limit(0).select(
        F.lit(None).cast("long").alias("input_row"),
        F.lit(None).cast("string").alias("column"),
        F.lit(None).cast("string").alias("value"),
        F.lit(None).cast("string").alias("message"),
    )


def _first_failure(checks: list[tuple[str, Column, Column, str]]) -> Column | None:
    """Per row the first failing (column, value text, message) of ``checks`` as a struct."""
    from pyspark.sql import functions as F

    if not checks:
        return None
    result: Any = F
    for name, bad, text, message in checks:
        item = F.struct(
            F.lit(name).alias("column"), _cut(text).alias("value"), F.lit(message).alias("message")
        )
        result = result.when(F.coalesce(bad, F.lit(False)), item)
    return result  # type: ignore[no-any-return]


# ---- Unicode tables taken from Arrow ------------------------------------------------


@functools.cache
def _code_points() -> pa.Array:
    chars = [chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF]
    return pa.array(chars, pa.string())


def _class(points: Iterable[int]) -> str:
    """A Java regex character class body for ``points`` (as ranges)."""
    ordered = sorted(points)
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        start, end = ordered[i], ordered[j]
        parts.append(f"\\x{{{start:X}}}" + (f"-\\x{{{end:X}}}" if end != start else ""))
        i = j + 1
    return "".join(parts)


def _points_where(mask: Any) -> list[int]:
    chars = _code_points().filter(mask).to_pylist()
    return [ord(c) for c in chars]


@functools.cache
def _case_map(kind: str) -> tuple[str, str]:
    """(from, to) of Arrow's ``utf8_lower``/``utf8_upper``: one character for one."""
    chars = _code_points()
    mapped = pc.utf8_lower(chars) if kind == "lower" else pc.utf8_upper(chars)
    changed = pc.not_equal(chars, mapped)
    return "".join(chars.filter(changed).to_pylist()), "".join(mapped.filter(changed).to_pylist())


@functools.cache
def _cased_class() -> str:
    """Letters Arrow's ``utf8_title`` treats as part of a word."""
    chars = _code_points()
    titled = pc.utf8_title(pc.binary_join_element_wise(chars, "a", ""))
    return _class(_points_where(pc.equal(pc.utf8_slice_codeunits(titled, -1), "a")))


@functools.cache
def _space_classes() -> tuple[str, str]:
    """(what ``[\\s\\pZ]`` matches in RE2, what ``utf8_trim_whitespace`` strips)."""
    chars = _code_points()
    runs = pc.equal(pc.replace_substring_regex(chars, r"[\s\pZ]+", " "), " ")
    trimmed = pc.equal(pc.utf8_trim_whitespace(pc.binary_join_element_wise(chars, "a", "")), "a")
    return _class(_points_where(runs)), _class(_points_where(trimmed))


# ---- steps -------------------------------------------------------------------------


def _text_step(step: Trim | Lowercase | Uppercase | Titlecase, frame: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    _columns(frame, step.columns)
    new: dict[str, Column] = {}
    for name in step.columns:
        _check_text(frame, name, step.kind)
        values = new.get(name, _col(name))
        if isinstance(step, Trim):
            runs, ends = _space_classes()
            nfc = F.call_function(
                "try_reflect",
                F.lit("com.ibm.icu.text.Normalizer"),
                F.lit("compose"),
                values,
                F.lit(False),
            )
            values = F.when(values.rlike("[^\\x{0}-\\x{7F}]"), nfc).otherwise(values)
            values = F.regexp_replace(values, f"[{runs}]+", " ")
            values = F.regexp_replace(values, f"\\A[{ends}]+|[{ends}]+\\z", "")
        elif isinstance(step, Lowercase | Uppercase):
            source, target = _case_map("lower" if isinstance(step, Lowercase) else "upper")
            values = F.translate(values, source, target)
        else:
            values = _titlecase(values)
        new[name] = values
    return _replace(frame, new)


def _titlecase(values: Column) -> Column:
    from pyspark.sql import functions as F

    cased = _cased_class()
    up_from, up_to = _case_map("upper")
    low_from, low_to = _case_map("lower")
    words = F.regexp_extract_all(values, F.lit(f"([{cased}]+|[^{cased}]+)"), F.lit(1))
    titled = F.transform(
        words,
        lambda w: F.concat(
            F.translate(F.substring(w, 1, 1), up_from, up_to),
            F.translate(F.substring(w, 2, _MAX_INT), low_from, low_to),
        ),
    )
    return F.when(values.isNull(), values).otherwise(F.array_join(titled, ""))


# ---- parse_dates --------------------------------------------------------------------

_WS = (
    "[\\x{9}-\\x{D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}]*"
)
"""Rust's ``char::is_whitespace``, any number: what chrono skips before a number."""
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTH_NAMES = (
    "(?i:"
    + "|".join(
        f"{m}{rest}"
        for m, rest in zip(
            _MONTHS,
            [
                "(?:uary)?",
                "(?:ruary)?",
                "(?:ch)?",
                "(?:il)?",
                "",
                "(?:e)?",
                "(?:y)?",
                "(?:ust)?",
                "(?:tember)?",
                "(?:ober)?",
                "(?:ember)?",
                "(?:ember)?",
            ],
            strict=True,
        )
    )
    + ")"
)
_EXPAND = {"T": "%H:%M:%S", "F": "%Y-%m-%d", "D": "%m/%d/%y", "R": "%H:%M"}
_NUMERIC = {"Y": 4, "m": 2, "d": 2, "e": 2, "H": 2, "M": 2, "S": 2, "y": 2, "f": 9}
_FIELD = {"m": "month", "d": "day", "e": "day", "H": "hour", "M": "minute", "S": "second"}


@dataclass
class _Format:
    pattern: str
    groups: dict[str, int]


def _compile_format(fmt: str, name: str) -> _Format:
    """chrono's reading of a strftime format as one Java regular expression."""
    for short, long in _EXPAND.items():
        fmt = fmt.replace(f"%{short}", long)
    parts: list[str] = []
    groups: dict[str, int] = {}
    count = 0

    def group(field: str, regex: str) -> None:
        nonlocal count
        if field in groups:
            raise StepError(
                f"format {fmt!r} of `{name}` cannot be used by the Spark engine: a field"
                " appears twice"
            )
        count += 1
        groups[field] = count
        parts.append(f"({regex})")

    i = 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%":
            spec = fmt[i + 1 : i + 2]
            if spec == ":" and fmt[i + 2 : i + 3] == "z":
                spec, i = "z", i + 1
            if spec == "." and fmt[i + 2 : i + 3] == "f":
                group("fraction", "(?:\\.[0-9]{1,9})?")
                i += 3
                continue
            if spec in _NUMERIC:
                parts.append(_WS)
                if spec == "Y":
                    group("year", "[+-][0-9]+|[0-9]{1,4}")
                elif spec == "y":
                    group("year2", "[0-9]{1,2}")
                elif spec == "f":
                    group("nanos", "[0-9]{1,9}")
                else:
                    group(_FIELD[spec], f"[0-9]{{1,{_NUMERIC[spec]}}}")
            elif spec in ("b", "h"):  # chrono: the three letters only
                group("month_name", "(?i:" + "|".join(_MONTHS) + ")")
            elif spec == "B":  # chrono: the three letters or the whole name
                group("month_name", _MONTH_NAMES)
            elif spec == "z":
                parts.append(_WS)
                group("offset", "[+-][0-9]{2}:?[0-9]{2}")
            elif spec == "%":
                parts.append("%")
            else:
                raise StepError(
                    f"format {fmt!r} of `{name}` cannot be used by the Spark engine: %{spec}"
                    " is not supported (supported: %Y %m %d %e %H %M %S %y %f %.f %z %:z %b %B"
                    " %h %T %F %D %R %%)"
                )
            i += 2
            continue
        if char.isspace():
            parts.append(_WS)
            while i < len(fmt) and fmt[i].isspace():
                i += 1
            continue
        parts.append(re.escape(char) if char.isascii() else f"\\x{{{ord(char):X}}}")
        i += 1
    if ("year" not in groups and "year2" not in groups) or "day" not in groups:
        raise StepError(
            f"format {fmt!r} of `{name}` cannot be used by the Spark engine: it needs a year,"
            " a month and a day"
        )
    if "month" not in groups and "month_name" not in groups:
        raise StepError(
            f"format {fmt!r} of `{name}` cannot be used by the Spark engine: it needs a year,"
            " a month and a day"
        )
    return _Format("\\A" + "".join(parts) + "\\z", groups)


def _parsed(values: Column, fmt: _Format, target: str) -> Column:
    from pyspark.sql import functions as F

    # one match for all fields: the groups joined by U+0001 (no group can hold it), split
    joined = F.regexp_replace(
        values, fmt.pattern, "\u0001".join(f"${i}" for i in range(1, len(fmt.groups) + 1))
    )
    fields = F.split(joined, "\u0001")

    def part(field: str) -> Column:
        return F.get(fields, fmt.groups[field] - 1)

    def number(field: str, default: int = 0) -> Column:
        if field not in fmt.groups:
            return F.lit(default)
        return part(field).try_cast("int")

    matched = values.rlike(fmt.pattern)
    if "year" in fmt.groups:
        year = part("year").try_cast("int")
    else:
        two = part("year2").try_cast("int")
        year = F.when(two < 70, two + 2000).otherwise(two + 1900)
    if "month" in fmt.groups:
        month = number("month")
    else:
        abbrev = F.lower(F.substring(part("month_name"), 1, 3))
        month = ((F.instr(F.lit("".join(_MONTHS)), abbrev) + 2) / 3).cast("int")
    second = number("second").cast("decimal(16,6)")
    if "nanos" in fmt.groups:
        nanos = part("nanos").try_cast("long")
        second = second + (F.floor(nanos / 1000) / 1_000_000).cast("decimal(16,6)")
    if "fraction" in fmt.groups:
        digits = F.substring(F.concat(F.substring(part("fraction"), 2, 6), F.lit("000000")), 1, 6)
        micros = F.when(part("fraction") == "", F.lit(0)).otherwise(digits.try_cast("int"))
        second = second + (micros / 1_000_000).cast("decimal(16,6)")
    leap = second >= 60  # chrono's leap second: the next minute (as Polars stores it)
    second = F.when(leap, second - 1).otherwise(second).cast("decimal(16,6)")
    stamp = F.try_make_timestamp_ntz(
        year, month, number("day"), number("hour"), number("minute"), second
    )
    stamp = F.when(leap, stamp + F.expr("INTERVAL 1 SECOND")).otherwise(stamp)
    stamp = F.when(matched & (number("second") <= 60), stamp)
    if target == "date":
        return stamp.cast("date")
    if target == "timestamp" or "offset" not in fmt.groups:
        return stamp
    offset = F.regexp_replace(part("offset"), ":", "")
    sign = F.when(F.substring(offset, 1, 1) == "-", F.lit(-1)).otherwise(F.lit(1))
    hours = F.substring(offset, 2, 2).try_cast("int")
    minutes = F.substring(offset, 4, 2).try_cast("int")
    shift = F.make_dt_interval(F.lit(0), hours * sign, minutes * sign, F.lit(0))
    valid = (hours < 24) & (minutes < 60)
    return F.when(valid, (stamp.cast("timestamp") - shift))


def _parse_dates(step: ParseDates, frame: DataFrame) -> SparkStepOutput:
    from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

    _columns(frame, step.formats)
    new: dict[str, Column] = {}
    checks: list[tuple[str, Column, Column, str]] = []
    for name, fmt in step.formats.items():
        if isinstance(_dtype(frame, name), DateType | TimestampType | TimestampNTZType):
            continue
        _check_text(frame, name, step.kind)
        values = _col(name)
        parsed = _parsed(values, _compile_format(fmt, name), step.target(name))
        new[name] = parsed
        bad = values.isNotNull() & parsed.isNull()
        checks.append((name, bad, values, f"does not match the date format {fmt!r}"))
    first = _first_failure(checks)
    staged = _replace(frame, new, *([first.alias(_FAIL)] if first is not None else []))
    return _split_failures(staged, first)


# ---- cast ---------------------------------------------------------------------------


def _spark_type(type_: LogicalType) -> DataType:
    from pyspark.sql import types as T

    if type_.family == "integer":
        return {8: T.ByteType(), 16: T.ShortType(), 32: T.IntegerType()}.get(
            type_.bits, T.LongType()
        )
    if type_.family == "decimal":
        return T.DecimalType(type_.precision, type_.scale)
    simple: dict[str, DataType] = {
        "float": T.FloatType(),
        "double": T.DoubleType(),
        "string": T.StringType(),
        "json": T.StringType(),
        "boolean": T.BooleanType(),
        "date": T.DateType(),
        "timestamp": T.TimestampNTZType(),
        "timestamptz": T.TimestampType(),
        "bytes": T.BinaryType(),
    }
    return simple[type_.name]


def arrow_text(values: Column, dtype: DataType) -> Column:
    """``values`` as Arrow's cast to string writes them (floats, timestamps...)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(dtype, T.StringType):
        return values
    if isinstance(dtype, T.FloatType | T.DoubleType):
        return _float_text(values)
    if isinstance(dtype, T.TimestampNTZType):
        return F.date_format(values, "yyyy-MM-dd HH:mm:ss.SSSSSS")
    if isinstance(dtype, T.TimestampType):
        return F.concat(F.date_format(values, "yyyy-MM-dd HH:mm:ss.SSSSSS"), F.lit("Z"))
    return values.cast("string")


def _float_text(values: Column) -> Column:
    """Arrow's shortest float text (``1``, ``1.5``, ``1e+20``, ``1e-7``, ``nan``) from
    Java's (``1.0``, ``1.5``, ``1.0E20``, ``1.0E-7``, ``NaN``)."""
    from pyspark.sql import functions as F

    java = values.cast("string")
    pattern = r"^(-?)([0-9]+)\.([0-9]+)(?:E(-?[0-9]+))?$"
    sign = F.regexp_extract(java, pattern, 1)
    whole = F.regexp_extract(java, pattern, 2)
    digits_all = F.concat(whole, F.regexp_extract(java, pattern, 3))
    power = F.coalesce(F.regexp_extract(java, pattern, 4).try_cast("int"), F.lit(0))
    leading = F.length(F.regexp_extract(digits_all, "^0*", 0))
    digits = F.regexp_replace(F.regexp_replace(digits_all, "^0+", ""), "0+$", "")
    exponent = power + F.length(whole) - 1 - leading
    count = F.length(digits)
    fixed_big = F.when(
        count <= exponent + 1, F.concat(digits, F.repeat(F.lit("0"), exponent + 1 - count))
    ).otherwise(
        F.concat(
            F.call_function("substr", digits, F.lit(1), exponent + 1),
            F.lit("."),
            F.call_function("substr", digits, exponent + 2),
        )
    )
    fixed_small = F.concat(F.lit("0."), F.repeat(F.lit("0"), -exponent - 1), digits)
    mantissa = F.when(
        count > 1, F.concat(F.substring(digits, 1, 1), F.lit("."), F.substring(digits, 2, _MAX_INT))
    ).otherwise(digits)
    scientific = F.concat(
        mantissa,
        F.lit("e"),
        F.when(exponent >= 0, F.lit("+")).otherwise(F.lit("-")),
        F.abs(exponent).cast("string"),
    )
    number = (
        F.when(digits == "", F.lit("0"))
        .when(
            (exponent >= -6) & (exponent <= 9),
            F.when(exponent >= 0, fixed_big).otherwise(fixed_small),
        )
        .otherwise(scientific)
    )
    return (
        F.when(F.isnan(values), F.lit("nan"))
        .when(values == float("inf"), F.lit("inf"))
        .when(values == float("-inf"), F.lit("-inf"))
        .otherwise(F.concat(sign, number))
    )


def _number_text(values: Column) -> Column:
    """Text as DuckDB reads numbers: an underscore between two digits is dropped."""
    from pyspark.sql import functions as F

    return F.when(
        values.contains("_"), F.regexp_replace(values, "(?<=[0-9])_(?=[0-9])", "")
    ).otherwise(values)


def _radix(values: Column) -> Column:
    """DuckDB's ``0x1f`` and ``0b101`` integers (as decimal(38,0)), null for other text."""
    from pyspark.sql import functions as F

    values = F.trim(_number_text(values), F.lit(" \t\n\r"))
    hex_ = F.conv(F.substring(values, 3, _MAX_INT), 16, 10)
    bin_ = F.conv(F.substring(values, 3, _MAX_INT), 2, 10)
    return (
        F.when(values.rlike("^0[xX][0-9a-fA-F]{1,15}$"), hex_)
        .when(values.rlike("^0[bB][01]{1,62}$"), bin_)
        .try_cast("decimal(20,0)")
    )


_DATE = r"([0-9]{1,9})([-/])([0-9]{1,2})\2([0-9]{1,2})"
_TIME = r"(?:(?:T| +)([0-9]{1,2}):([0-9]{1,2})(?::([0-9]{1,2})(?:\.([0-9]*))?)?)"
_OFFSET = r"(Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"
_STAMP = rf"^[ \t\n\r]*{_DATE}{_TIME}?{_OFFSET}[ \t\n\r]*$"


def _duckdb_stamp(values: Column, family: str) -> Column:
    """DuckDB's reading of text as a date, timestamp or timestamptz (its common layouts)."""
    from pyspark.sql import functions as F

    def part(i: int) -> Column:
        return F.regexp_extract(values, _STAMP, i)

    def number(i: int) -> Column:
        return F.coalesce(part(i).try_cast("int"), F.lit(0))

    hour, minute, second = number(5), number(6), number(7)
    micros = F.substring(F.concat(part(8), F.lit("000000")), 1, 6).try_cast("int")
    midnight = (hour == 24) & (minute == 0) & (second == 0) & (micros == 0)
    seconds = (second + micros / 1_000_000).cast("decimal(16,6)")
    stamp = F.try_make_timestamp_ntz(
        part(1).try_cast("int"),
        number(3),
        number(4),
        F.when(midnight, F.lit(0)).otherwise(hour),
        minute,
        F.when(second < 60, seconds),
    )
    stamp = F.when(midnight, stamp + F.expr("INTERVAL 1 DAY")).otherwise(stamp)
    # DuckDB: only spaces may follow a time of day
    timed_tail = (part(5) != "") & values.rlike("[\t\n\r][ \t\n\r]*$")
    stamp = F.when(~timed_tail, stamp)
    if family == "date":  # the time of day must be valid but does not count
        zero = F.lit(0)
        day = F.try_make_timestamp_ntz(
            part(1).try_cast("int"), number(3), number(4), zero, zero, zero
        )
        return F.when(values.rlike(_STAMP) & stamp.isNotNull(), day.cast("date"))
    # DuckDB: no whitespace after a timestamp without a time of day
    bare = (part(5) == "") & values.rlike("[ \t\n\r]$")
    stamp = F.when(values.rlike(_STAMP) & ~bare, stamp)
    if family == "timestamp":
        return stamp
    offset = F.regexp_replace(part(9), "[:Z]", "")
    sign = F.when(F.substring(offset, 1, 1) == "-", F.lit(-1)).otherwise(F.lit(1))
    hours = F.coalesce(F.substring(offset, 2, 2).try_cast("int"), F.lit(0))
    minutes = F.coalesce(F.substring(offset, 4, 2).try_cast("int"), F.lit(0))
    shift = F.make_dt_interval(F.lit(0), hours * sign, minutes * sign, F.lit(0))
    return stamp.cast("timestamp") - shift


_BOOLEAN_WORDS = {"true": True, "t": True, "yes": True, "y": True, "1": True}
_BOOLEAN_WORDS |= {"false": False, "f": False, "no": False, "n": False, "0": False}


def _cast_column(values: Column, source: DataType, type_: LogicalType) -> tuple[Column, Column]:
    """(the cast values, whether a row failed): DuckDB's TRY_CAST with the Arrow engine's
    check that a value cast to an integer or decimal did not round."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    target = _spark_type(type_)
    family = type_.family
    lossy_check = family in ("integer", "decimal") and not isinstance(source, T.IntegralType)
    if family in ("integer", "decimal"):
        if isinstance(source, T.StringType):
            text = _number_text(values)
            if family == "integer":
                number = F.coalesce(text.try_cast("decimal(38,18)"), _radix(values))
                cast = F.round(number, 0).try_cast(target)
                radix = _radix(values).isNotNull()
                lossy = F.when(radix, F.lit(False)).otherwise(
                    text.try_cast("double") != cast.cast("double")
                )
            else:
                cast = text.try_cast(target)
                lossy = text.try_cast("double") != cast.cast("double")
        elif isinstance(source, T.FloatType | T.DoubleType):
            finite = ~F.isnan(values) & (F.abs(values) != float("inf"))
            rounded = F.round(values, 0) if family == "integer" else values
            cast = F.when(finite, rounded.try_cast(target))
            lossy = values.cast("double") != cast.cast("double")
        elif isinstance(source, T.DecimalType):
            rounded = F.round(values, 0) if family == "integer" else values
            cast = rounded.try_cast(target)
            lossy = values.cast("double") != cast.cast("double")
        elif isinstance(source, T.IntegralType | T.BooleanType):
            cast = values.try_cast(target)
            lossy = values.cast("double") != cast.cast("double")
        else:
            raise _unsupported(source, type_)
        rounded_away = F.coalesce(lossy, F.lit(False)) if lossy_check else F.lit(False)
        bad = values.isNotNull() & (cast.isNull() | rounded_away)
        return cast, bad
    if family == "float":
        if isinstance(source, T.StringType):
            cast = _number_text(values).try_cast(target)
        elif isinstance(source, T.NumericType | T.BooleanType):
            cast = values.try_cast(target)
        else:
            raise _unsupported(source, type_)
    elif family in ("string", "json"):
        cast = arrow_text(values, source)
    elif family == "boolean":
        if isinstance(source, T.StringType):
            words = F.create_map(*[F.lit(x) for kv in _BOOLEAN_WORDS.items() for x in kv])
            cast = words[F.lower(values)]
        elif isinstance(source, T.NumericType):
            cast = values.try_cast(target)
        else:
            raise _unsupported(source, type_)
    elif family in ("date", "timestamp", "timestamptz"):
        if isinstance(source, T.StringType):
            cast = _duckdb_stamp(values, family)
        elif isinstance(source, T.DateType | T.TimestampType | T.TimestampNTZType):
            cast = values.try_cast(target)
        else:
            raise _unsupported(source, type_)
    elif family == "bytes" and isinstance(source, T.StringType):
        cast = values.cast(target)
    else:
        raise _unsupported(source, type_)
    return cast, values.isNotNull() & cast.isNull()


def _unsupported(source: DataType, type_: LogicalType) -> StepError:
    return StepError(
        f"the Spark engine cannot cast {_arrow_type(source)} to {type_.name}; cast in a"
        " `sql` step or use the DuckDB engine"
    )


def _cast(step: Cast, frame: DataFrame) -> SparkStepOutput:
    _columns(frame, step.types)
    new: dict[str, Column] = {}
    checks: list[tuple[str, Column, Column, str]] = []
    for name in step.types:
        type_ = step.logical(name)
        source = _dtype(frame, name)
        if source == _spark_type(type_):
            continue
        values = _col(name)
        cast, bad = _cast_column(values, source, type_)
        new[name] = cast
        checks.append((name, bad, arrow_text(values, source), f"cannot be cast to {type_.name}"))
    first = _first_failure(checks)
    staged = _replace(frame, new, *([first.alias(_FAIL)] if first is not None else []))
    return _split_failures(staged, first)


# ---- fill_null, drop_null, dedupe, rename -------------------------------------------


def _fill_null(step: FillNull, frame: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    _columns(frame, step.values)
    new: dict[str, Column] = {}
    for name, value in step.values.items():
        dtype = _dtype(frame, name)
        arrow_type = _arrow_type(dtype)
        try:  # the Arrow engine's own cast of the value decides what it becomes
            scalar = pa.scalar(value).cast(arrow_type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise StepError(
                f"fill_null value {value!r} does not fit column `{name}` ({arrow_type})"
            ) from None
        if pa.types.is_temporal(arrow_type):
            text = pc.cast(pa.array([scalar.as_py()], arrow_type), pa.string())[0].as_py()
            literal = F.lit(text.removesuffix("Z")).cast(dtype)
        else:
            literal = F.lit(scalar.as_py()).cast(dtype)
        new[name] = F.coalesce(_col(name), literal)
    return _replace(frame, new)


def _drop_null(step: DropNull, frame: DataFrame) -> SparkStepOutput:
    from pyspark.sql import functions as F

    _columns(frame, step.columns)
    keep = F.lit(True)
    for name in step.columns:
        keep = keep & _col(name).isNotNull()
    return SparkStepOutput(frame.filter(keep), dropped=frame.filter(~keep))


def _dedupe(step: Dedupe, frame: DataFrame, primary_key: Sequence[str]) -> SparkStepOutput:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T
    from pyspark.sql.window import Window

    key = list(step.key or primary_key)
    if not key:
        raise StepError("`dedupe` needs `key`: the table has no primary key to default to")
    wanted = [*key, *([step.newest_by] if step.newest_by else [])]
    _columns(frame, wanted)
    order: list[Column] = []
    if step.newest_by:  # nulls count as the oldest, then NaN (Arrow's sort), then values
        newest = _col(step.newest_by)
        rank = F.when(newest.isNull(), F.lit(0))
        if isinstance(_dtype(frame, step.newest_by), T.FloatType | T.DoubleType):
            rank = rank.when(F.isnan(newest), F.lit(1))
        order += [rank.otherwise(F.lit(2)).desc(), newest.desc_nulls_last()]
    order.append(_col(ROW).desc())
    window = Window.partitionBy(*[_col(k) for k in key]).orderBy(*order)
    ranked = frame.withColumn(_RANK, F.row_number().over(window))
    kept = ranked.filter(F.col(_RANK) == 1).drop(_RANK)
    dropped = ranked.filter(F.col(_RANK) > 1).drop(_RANK)
    return SparkStepOutput(kept, dropped=dropped)


def _rename(step: Rename, frame: DataFrame) -> DataFrame:
    _columns(frame, step.columns)
    kept = set(frame.columns) - set(step.columns)
    if taken := [new for new in step.columns.values() if new in kept]:
        raise StepError(f"cannot rename to `{taken[0]}`: the batch already has that column")
    return frame.select(*[_col(c).alias(step.columns.get(c, c)) for c in frame.columns])
