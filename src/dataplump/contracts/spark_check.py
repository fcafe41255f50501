"""Check a Spark DataFrame against a contract, with the results of the DuckDB check.

:func:`check_frame` compiles a :class:`~dataplump.contracts.spec.Contract` to Spark
column expressions (no Python UDF): the batch's columns are read as declared (``try_cast``
under type drift), ``unique`` counts rows per value with a window, ``relationships``
left-joins the distinct keys of a reference DataFrame, and every rule becomes a boolean
flag. One aggregation pass counts the rows, the nulls ``null_share`` expectations need
and the rows broken per rule (so a rule that fails on a value raises here, as in DuckDB);
``valid`` and ``rejected`` are lazy filters of the input, ``rejected`` with
``__dp_reasons`` (``array<struct<rule, column, value, message>>``) in the DuckDB
checker's order, values rendered as DuckDB's ``CAST(... AS VARCHAR)`` renders them and
cut at :data:`~dataplump.contracts._sql.VALUE_CHARS` characters.

    >>> result = check_frame(contract, frame, references={"customers": customers})  # doctest: +SKIP
    >>> result.rejected.select("__dp_row", "__dp_reasons").show()  # doctest: +SKIP

The frame carries the engine's int64 lineage column ``__dp_row``
(:data:`~dataplump.contracts.spec.ROW`), which is not a contract column and rides into
both outputs. The session must run in UTC (``spark.sql.session.timeZone``), as the
engine's does. :func:`spark_problems` / :func:`ensure_translates` check that every rule
of a contract translates (against an empty frame of the declared columns) before data
flows; :func:`spark_expression` translates one DuckDB boolean expression.

Values are written as DuckDB writes them, with Spark expressions: floats with the
shortest digits that read back and Python-style exponents (and DuckDB's full text for a
float32 halfway between two shortest texts; Java's own float text is not shortest),
timestamps with ``+00``, bytes as ``\\xHH``, ``row(...)`` with DuckDB's quoting.

Where Spark differs from DuckDB (tested as documented; the rest is identical):

* Schema issues are judged on the frame's Spark types, read as Arrow types: Spark has
  no unsigned, view, large, dictionary or zoned timestamp types (``uint64`` data is
  ``decimal(20,0)``, a ``timestamp[s, tz=Europe/Paris]`` column is ``timestamp[us,
  tz=UTC]``), so a drift message may name another type than DuckDB's would.
* Under type drift values are read with Spark's ``try_cast``, rounding to integers as
  DuckDB does (floats half to even; decimals and texts such as ``'2.5'``, ``'1e3'``,
  ``'1_000'`` half away from zero); other text parsing differs from DuckDB's
  ``TRY_CAST`` at the edges (``'0x10'`` is no integer for Spark, ``'2020-01-01 10:00'``
  is a date, ``'yes'`` a boolean, ``'\\x41'`` text as bytes is four bytes). ISO times,
  plain numbers and the tested forms agree.
* A ``json`` column's text is checked with ``try_parse_json``, stricter than DuckDB's
  ``json_valid`` (which takes ``NaN``, ``[1,]`` and duplicate keys).
* ``pattern`` runs on Java regular expressions: the RE2 pattern is translated
  (:func:`spark_regex`: ``$`` is the end of the text, ``.`` stops only at ``\\n``, ``\\s``
  and ``\\b`` are ASCII, POSIX classes, ``(?P<name>``); case folding under ``(?i)`` and
  ``\\p{...}`` script names may still differ for non-ASCII text.
* ``expression_is_true`` is translated by sqlglot and then runs with Spark's semantics:
  ANSI errors (``1/0`` raises where DuckDB gives ``inf``), decimal division stays
  decimal, ``LIKE`` treats ``\\`` as an escape. When a rule fails on a value the batch is
  rejected as by DuckDB, but the message after "a rule could not run on the batch: " is
  Spark's.
* Values of structs and maps shown under type drift are Spark's text (``{1, a}``), not
  DuckDB's (``{'a': 1, 'b': a}``); lists of numbers agree. Dates and timestamps before
  year 1 show Spark's text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import reduce
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dataplump.contracts import _sql
from dataplump.contracts._sql import VALUE_CHARS
from dataplump.contracts.check import (
    TYPE_RULE,
    BatchFailure,
    RuleCount,
    SchemaIssue,
    batch_reason,
    batch_rejected,
    check_reference,
    expectation_failures,
    schema_issues,
)
from dataplump.contracts.errors import (
    CheckFailedError,
    ContractError,
    ContractProblem,
)
from dataplump.contracts.rules import (
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
from dataplump.contracts.spec import ROW, Contract
from dataplump.contracts.types import NUMERIC, LogicalType

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession
    from pyspark.sql.types import DataType

REASONS = "__dp_reasons"
"""Column of ``rejected`` holding each row's reasons."""
REASONS_DDL = "array<struct<rule:string,column:string,value:string,message:string>>"

_SPARK_TYPES = {
    "int8": "tinyint",
    "int16": "smallint",
    "int32": "int",
    "int64": "bigint",
    "float": "float",
    "double": "double",
    "string": "string",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp_ntz",
    "timestamptz": "timestamp",
    "json": "string",
    "bytes": "binary",
}
_EPOCH = date(1970, 1, 1)


def spark_type(type_: LogicalType) -> str:
    """The Spark SQL type a declared type is read as: ``decimal(12,2)``, ``timestamp_ntz``..."""
    if type_.family == "decimal":
        return f"decimal({type_.precision},{type_.scale})"
    return _SPARK_TYPES[type_.name]


def quote(name: str) -> str:
    """A Spark SQL identifier: the name in backquotes, inner ones doubled."""
    return "`" + name.replace("`", "``") + "`"


@dataclass(frozen=True)
class SparkCheckResult:
    """The outcome of checking one Spark DataFrame (the counterpart of
    :class:`~dataplump.contracts.check.CheckResult`)."""

    valid: DataFrame
    """Rows that meet the contract: a filter of the input, same columns."""
    rejected: DataFrame
    """Rows that break it: the input's columns plus ``__dp_reasons``."""
    batch_failures: tuple[BatchFailure, ...] = ()
    """Failed expectations with ``on_fail: reject_batch`` (then nothing is valid)."""
    batch_warnings: tuple[BatchFailure, ...] = ()
    """Failed expectations with ``on_fail: warn``."""
    schema_issues: tuple[SchemaIssue, ...] = ()
    """Unknown, missing and drifted columns found."""
    violations: tuple[RuleCount, ...] = ()
    """Rows broken per rule, in check order (as ``CheckResult.violations``)."""
    num_rows: int | None = None
    """Rows checked; None when nothing needed counting (no rule, no expectation)."""
    checked_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """The time ``not_in_future`` compared with (UTC)."""


# ---- translating DuckDB SQL and RE2 patterns ------------------------------------------------

_POSIX = {
    "alnum": r"\p{Alnum}",
    "alpha": r"\p{Alpha}",
    "ascii": r"\p{ASCII}",
    "blank": r"\p{Blank}",
    "cntrl": r"\p{Cntrl}",
    "digit": r"\p{Digit}",
    "graph": r"\p{Graph}",
    "lower": r"\p{Lower}",
    "print": r"\p{Print}",
    "punct": r"\p{Punct}",
    "space": r"\p{Space}",
    "upper": r"\p{Upper}",
    "word": r"\w",
    "xdigit": r"\p{XDigit}",
}
_SPACE = r"\t\n\f\r "
_WORD_BOUNDARY = r"(?:(?<=\w)(?!\w)|(?<!\w)(?=\w))"
_NOT_WORD_BOUNDARY = r"(?:(?<=\w)(?=\w)|(?<!\w)(?!\w))"


def spark_regex(pattern: str) -> str:
    """An RE2 pattern (as DuckDB runs it) as a Java pattern (as Spark's ``rlike`` runs it)
    that matches the same texts: ``$`` is the end of the text unless ``(?m)``, only
    ``\\n`` ends a line, ``\\s`` and ``\\b`` are ASCII, POSIX classes and ``(?P<name>``
    are spelled the Java way, ``[`` and ``&`` in a class are literal."""
    multiline = re.search(r"\(\?[a-zA-Z]*m[a-zA-Z]*[:)]", pattern) is not None
    out: list[str] = ["(?d)"]  # UNIX_LINES: only \n is a line terminator, as in RE2
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            if e == "Q":  # \Q...\E: literal text, the same in both
                end = pattern.find("\\E", i + 2)
                end = n if end < 0 else end + 2
                out.append(pattern[i:end])
                i = end
                continue
            if e == "s":
                out.append(_SPACE if in_class else f"[{_SPACE}]")
            elif e == "S" and not in_class:
                out.append(f"[^{_SPACE}]")
            elif e == "b" and not in_class:
                out.append(_WORD_BOUNDARY)
            elif e == "B" and not in_class:
                out.append(_NOT_WORD_BOUNDARY)
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "[" and (m := re.match(r"\[:(\^?)([a-z]+):\]", pattern[i:])):
                java = _POSIX.get(m[2])
                if java is None:
                    out.append(re.escape(m[0]))
                elif m[1]:
                    out.append(java.replace(r"\p", r"\P").replace(r"\w", r"\W"))
                else:
                    out.append(java)
                i += len(m[0])
                continue
            if c in "[&":
                out.append("\\" + c)
            elif c == "]":
                out.append(c)
                in_class = False
            else:
                out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            out.append(pattern[i:j])
            if j < n and pattern[j] == "]":  # a leading ] is literal
                out.append("\\]")
                j += 1
            i = j
            continue
        if c == "$" and not multiline:
            out.append(r"\z")
        elif pattern.startswith("(?P<", i):
            out.append("(?<")
            i += 4
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def spark_expression(sql: str, *, rule: str = "expression_is_true") -> str:
    """A DuckDB boolean expression as Spark SQL text (sqlglot), its regular expressions
    translated by :func:`spark_regex`. Raises ``ValueError`` naming ``rule`` when it does
    not translate."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")

        def fix(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.RegexpLike | exp.RegexpFullMatch | exp.SimilarTo):
                pattern = node.expression
                if not isinstance(pattern, exp.Literal) or not pattern.is_string:
                    raise ValueError("a regular expression that is not a string literal")
                text = pattern.this
                flag = node.args.get("flag")
                if flag is not None:
                    options = flag.this if isinstance(flag, exp.Literal) else None
                    if options is None or set(options) - {"i", "c"}:
                        raise ValueError(f"regular expression options {flag.sql()}")
                    if options.rfind("i") > options.rfind("c"):  # the last one wins
                        text = "(?i)" + text
                if not isinstance(node, exp.RegexpLike):
                    text = f"^(?:{text})$"
                return exp.RegexpLike(
                    this=node.this, expression=exp.Literal.string(spark_regex(text))
                )
            if isinstance(node, exp.RegexpReplace | exp.RegexpExtract):
                pattern = node.expression
                if isinstance(pattern, exp.Literal) and pattern.is_string:
                    node.set("expression", exp.Literal.string(spark_regex(pattern.this)))
            return node

        tree = tree.transform(fix)
        return tree.sql(dialect="spark", unsupported_level=sqlglot.ErrorLevel.RAISE)
    except (SqlglotError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(
            f"rule `{rule}`: SQL expression does not translate to Spark SQL: {detail}"
        ) from None


def spark_problems(contract: Contract, spark: SparkSession) -> list[ContractProblem]:
    """What in ``contract`` does not run on Spark: each rule is compiled against an empty
    frame of the declared columns (Spark analyses it; no job runs)."""
    from pyspark.errors import PySparkException
    from pyspark.sql import functions as F

    problems: list[ContractProblem] = []
    declared = ", ".join(
        [f"{quote(ROW)} bigint"]
        + [f"{quote(n)} {spark_type(s.logical_type)}" for n, s in contract.columns.items()]
    )
    empty = spark.createDataFrame([], declared)

    def analyse(at: tuple[str | int, ...], rule: str, sql: str) -> None:
        try:
            text = spark_expression(sql, rule=rule)
        except ValueError as exc:
            problems.append(ContractProblem(at, str(exc)))
            return
        try:
            kind = empty.select(F.expr(text)).schema.fields[0].dataType.simpleString()
        except PySparkException as exc:
            detail = str(exc).strip().splitlines()[0]
            problems.append(ContractProblem(at, f"rule `{rule}`: does not run on Spark: {detail}"))
            return
        if kind != "boolean":
            problems.append(
                ContractProblem(at, f"rule `{rule}`: on Spark the expression gives {kind}")
            )

    for name, spec in contract.columns.items():
        if spec.expression_is_true is not None:
            at = ("columns", name, "expression_is_true")
            analyse(at, "expression_is_true", spec.expression_is_true.value)
        if spec.pattern is not None:
            try:
                spark.sparkContext._jvm.java.util.regex.Pattern.compile(  # type: ignore[union-attr]
                    spark_regex(spec.pattern.value)
                )
            except Exception as exc:  # the JVM's PatternSyntaxException
                detail = str(exc).strip().splitlines()[0]
                problems.append(
                    ContractProblem(
                        ("columns", name, "pattern"),
                        f"rule `pattern`: Java cannot run the translated pattern: {detail}",
                    )
                )
    for i, table_rule in enumerate(contract.rules):
        if table_rule.expression_is_true is not None:
            analyse(
                ("rules", i, "expression_is_true"),
                table_rule.rule_name,
                table_rule.expression_is_true,
            )
    return problems


def ensure_translates(contract: Contract, spark: SparkSession) -> None:
    """Raise :class:`~dataplump.contracts.errors.ContractError` listing every rule of
    ``contract`` that does not run on Spark (see :func:`spark_problems`)."""
    if problems := spark_problems(contract, spark):
        raise ContractError(contract.table, problems, contract.source)


# ---- values as DuckDB's text ---------------------------------------------------------------


def _float_text(c: Column, bits: int) -> Column:
    """A float as DuckDB (and Python's repr) writes it: the shortest digits that read
    back the same, ``1e+20``, ``1e-05``, ``0.0001``, ``nan``, ``inf``."""
    from pyspark.sql import functions as F

    kind = "double" if bits == 64 else "float"
    candidates = [F.format_string(f"%.{k}e", c) for k in range(17 if bits == 64 else 9)]
    if bits == 64:
        sci = F.coalesce(*[F.when(text.try_cast(kind) == c, text) for text in candidates])
    else:
        sci = _float32_digits(c, candidates)

    def python(digits: Column, e: Column) -> Column:
        length = F.length(digits)
        fixed = (
            F.when(e < 0, F.concat(F.lit("0."), F.repeat(F.lit("0"), -e - 1), digits))
            .when(
                e + 1 >= length,
                F.concat(digits, F.repeat(F.lit("0"), e + 1 - length), F.lit(".0")),
            )
            .otherwise(
                F.concat(digits.substr(F.lit(1), e + 1), F.lit("."), digits.substr(e + 2, length))
            )
        )
        exponent = F.abs(e).cast("string")
        scientific = F.concat(
            digits.substr(1, 1),
            F.when(length > 1, F.concat(F.lit("."), digits.substr(F.lit(2), length))).otherwise(""),
            F.lit("e"),
            F.when(e < 0, "-").otherwise("+"),
            F.when(F.abs(e) < 10, F.concat(F.lit("0"), exponent)).otherwise(exponent),
        )
        sign = F.when(c < 0, "-").otherwise("")
        return F.concat(sign, F.when((e >= -4) & (e < 16), fixed).otherwise(scientific))

    def parts(text: Column) -> Column:
        mantissa = F.regexp_extract(text, r"^-?([0-9.]+)e", 1)
        digits = F.regexp_replace(F.regexp_replace(mantissa, r"\.", ""), "0+$", "")
        e = F.regexp_extract(text, r"e([+-][0-9]+)$", 1).cast("int")
        # Each part once (a lambda binds it): the expression stays small.
        pair = F.array(F.struct(digits.alias("d"), e.alias("e")))
        return F.transform(pair, lambda p: python(p["d"], p["e"]))[0]

    return (
        F.when(c.isNull(), F.lit(None).cast("string"))
        .when(F.isnan(c), "nan")
        .when(c == float("inf"), "inf")
        .when(c == float("-inf"), "-inf")
        .when(c == 0, F.when(c.cast("string").startswith("-"), "-0.0").otherwise("0.0"))
        .otherwise(F.transform(F.array(sci), parts)[0])
    )


def _bound(value: Column, body: Any) -> Column:
    """``body(value)`` with ``value`` evaluated once (bound by a lambda), which keeps a
    large expression that uses it several times small."""
    from pyspark.sql import functions as F

    return F.transform(F.array(value), body)[0]


def _float32_digits(c: Column, candidates: list[Column]) -> Column:
    """The first of ``candidates`` (``%.ke`` texts of float ``c``, k = 0, 1...) that
    DuckDB would write: it reads back as ``c`` strictly (a text halfway between two
    floats is not taken), and DuckDB writes a float whose exact value lies halfway
    between two shortest texts in full (199525.625, not 199525.62)."""
    from pyspark.sql import functions as F

    size = F.abs(c).cast("double")

    def power_of(guess: Column) -> Column:
        return F.greatest(
            F.when(F.pow(F.lit(2.0), guess) > size, guess - 1)
            .when(F.pow(F.lit(2.0), guess + 1) <= size, guess + 1)
            .otherwise(guess),
            F.lit(-126),
        )

    power = _bound(F.greatest(F.floor(F.log2(size)), F.lit(-126)).cast("int"), power_of)

    def spacing(p: Column) -> Column:
        half = F.pow(F.lit(2.0), p - 24)
        lower = F.when((F.pow(F.lit(2.0), p) == size) & (p > -126), half / 2).otherwise(half)
        exact = F.regexp_extract(c.cast("double").cast("string"), r"^-?([0-9.]+)", 1)
        exact = F.regexp_replace(F.regexp_replace(exact, r"\.", ""), "^0+|0+$", "")
        return F.struct(half.alias("h"), lower.alias("l"), exact.alias("x"))

    def choose(q: Column) -> Column:
        tied = F.endswith(q["x"], F.lit("5"))
        found = []
        for k, text in enumerate(candidates):
            away = (text.try_cast("double") - c.cast("double")) * F.signum(c)
            inside = ((away >= 0) & (away < q["h"])) | ((away < 0) & (-away < q["l"]))
            found.append(F.when(inside & ~(tied & (F.length(q["x"]) == k + 2)), text))
        return F.coalesce(*found)

    return _bound(_bound(power, spacing), choose)


def _bytes_text(c: Column) -> Column:
    """Bytes as DuckDB writes a BLOB: printable ASCII as is, other bytes (and ``"``, ``'``,
    ``\\``) as ``\\xHH``."""
    from pyspark.sql import functions as F

    pairs = F.regexp_extract_all(F.hex(c), F.lit("(..)"), 1)
    shown = F.transform(
        pairs,
        lambda h: F.when(
            (h >= "20") & (h <= "7E") & ~h.isin("22", "27", "5C"), F.unhex(h).cast("string")
        ).otherwise(F.concat(F.lit("\\x"), h)),
    )
    return F.when(c.isNotNull(), F.array_join(shown, ""))


def _text(c: Column, kind: DataType) -> Column:
    """``c`` (of Spark type ``kind``) as DuckDB's ``CAST(c AS VARCHAR)`` writes it."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(kind, T.StringType):
        return c
    if isinstance(kind, T.NullType):
        return F.lit(None).cast("string")
    if isinstance(kind, T.DoubleType | T.FloatType):
        return _float_text(c, 64 if isinstance(kind, T.DoubleType) else 32)
    if isinstance(kind, T.BinaryType):
        return _bytes_text(c)
    text = c.cast("string")
    if isinstance(kind, T.DateType | T.TimestampNTZType):
        return F.regexp_replace(text, r"^\+", "")
    if isinstance(kind, T.TimestampType):  # the session is in UTC
        return F.concat(F.regexp_replace(text, r"^\+", ""), F.lit("+00"))
    return text


def _in_row(text: Column) -> Column:
    """A value's text inside DuckDB's ``row(...)`` text: quoted (``\\`` and ``'``
    escaped) when empty, ``null``, padded with spaces or holding ``"'():=[]\\{},``."""
    from pyspark.sql import functions as F

    quoted = F.concat(
        F.lit("'"),
        F.replace(F.replace(text, F.lit("\\"), F.lit("\\\\")), F.lit("'"), F.lit("\\'")),
        F.lit("'"),
    )
    needs = (
        (text == "")
        | (F.lower(text) == "null")
        | text.rlike(r"^\s|\s$")
        | text.rlike(r"[\"'():=\[\]\\{},]")
    )
    return F.coalesce(F.when(needs, quoted).otherwise(text), F.lit("NULL"))


def _shorten(text: Column) -> Column:
    from pyspark.sql import functions as F

    cut = F.concat(text.substr(1, VALUE_CHARS - 3), F.lit("..."))
    return F.when(F.length(text) > VALUE_CHARS, cut).otherwise(text)


# ---- literals ---------------------------------------------------------------------------------


def _number(text: str, type_: LogicalType) -> Column:
    """A rule's numeric argument, typed as DuckDB compares it with a ``type_`` column."""
    from pyspark.sql import functions as F

    plain = _sql.number(text)
    digits = len(Decimal(plain).as_tuple().digits)
    value = F.lit(float(plain)) if digits > 38 else F.expr(plain)
    if type_.family == "float" and type_.bits == 32:  # DuckDB compares as FLOAT
        value = value.cast("float")
    return value


def _constant(text: str, type_: LogicalType) -> Column:
    """A rule's argument for a ``type_`` column, read by DuckDB (as the check reads it)."""
    from pyspark.sql import functions as F

    if type_.family in NUMERIC:
        return _number(text, type_)
    sql = literal(text, type_)
    con = _sql.connection()
    if type_.family == "date":
        days = con.sql(f"SELECT date_diff('day', DATE '1970-01-01', {sql})").fetchall()[0][0]
        return F.date_from_unix_date(F.lit(days))
    if type_.family in ("timestamp", "timestamptz"):
        micros = con.sql(f"SELECT epoch_us({sql})").fetchall()[0][0]
        moment = F.timestamp_micros(F.lit(micros))
        return moment if type_.family == "timestamptz" else moment.cast("timestamp_ntz")
    if type_.family == "boolean":
        return F.lit(con.sql(f"SELECT {sql}").fetchall()[0][0])
    return F.lit(text)


def _now(now: datetime, type_: LogicalType) -> Column:
    from pyspark.sql import functions as F

    utc = now.astimezone(UTC)
    if type_.family == "date":
        return F.date_from_unix_date(F.lit((utc.date() - _EPOCH).days))
    micros = (utc - datetime(1970, 1, 1, tzinfo=UTC)) // _MICROSECOND
    moment = F.timestamp_micros(F.lit(micros))
    return moment if type_.family == "timestamptz" else moment.cast("timestamp_ntz")


_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)


# ---- the check ---------------------------------------------------------------------------------


@dataclass
class _Item:
    rule: str
    column: str | None
    flag: Column
    message: str
    value: Column | None
    count: Column | None = None


def _read_as(raw: Column, kind: DataType, type_: LogicalType) -> Column:
    """A drifted column's value read as ``type_``, as DuckDB's ``TRY_CAST`` reads it: to
    an integer, a float rounds half to even, a decimal or a text (``'2.5'``, ``'1e3'``,
    ``'1_000'``) half away from zero; null where it cannot be read."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    target = spark_type(type_)
    if type_.family != "integer":
        return raw.try_cast(target)
    if isinstance(kind, T.StringType):
        text = F.regexp_replace(raw, r"(?<=[0-9])_(?=[0-9])", "")
        rounded = F.round(text.try_cast("decimal(38,10)"), 0)
        return F.coalesce(text.try_cast(target), rounded.try_cast(target))
    if isinstance(kind, T.FloatType | T.DoubleType):
        return F.bround(raw, 0).try_cast(target)
    if isinstance(kind, T.DecimalType):
        return F.round(raw, 0).try_cast(target)
    return raw.try_cast(target)


def _spark_arrow(kind: DataType) -> pa.DataType:
    from pyspark.sql.pandas.types import to_arrow_type

    try:
        return to_arrow_type(kind, timezone="UTC")
    except Exception:  # a type Arrow has no counterpart for (variant, ...): drift
        return pa.struct([])


def _rule_failure(
    rule: ColumnRule, ref: Column, type_: LogicalType, dup: Column | None, now: datetime
) -> Column:
    """Spark for "the row breaks ``rule``" (null: it passes), as ``rule.failure`` in DuckDB."""
    from pyspark.sql import functions as F

    if isinstance(rule, NotNull):
        return ref.isNull()
    if isinstance(rule, Unique):
        assert dup is not None
        return dup.isNotNull()
    if isinstance(rule, Min | Max):
        bound = _constant(rule.value, type_)
        broken = ref < bound if isinstance(rule, Min) else ref > bound
        return broken | F.isnan(ref) if type_.family == "float" else broken
    if isinstance(rule, AcceptedValues):
        return ~ref.isin(*[_constant(text, type_) for text in rule.value])
    if isinstance(rule, Pattern):
        return ~ref.rlike(spark_regex(rule.value))
    if isinstance(rule, MinLength | MaxLength):
        length = F.octet_length(ref) if type_.family == "bytes" else F.length(ref)
        return length < rule.value if isinstance(rule, MinLength) else length > rule.value
    if isinstance(rule, NotInFuture):
        return ref > _now(now, type_)
    if isinstance(rule, ExpressionIsTrue):
        return ~F.expr(spark_expression(rule.value))
    raise NotImplementedError(f"rule `{rule.name}` has no Spark translation")


def check_frame(
    contract: Contract,
    frame: DataFrame,
    *,
    references: Mapping[str, DataFrame] | None = None,
    input_rows: int | None = None,
    now: datetime | None = None,
) -> SparkCheckResult:
    """Check ``frame`` (which carries ``__dp_row``) against ``contract``, as
    :meth:`Contract.check` checks an Arrow batch; see the module docstring.

    Raises :class:`~dataplump.contracts.errors.BatchRejectedError` and
    :class:`~dataplump.contracts.errors.ReferenceTableError` where the DuckDB check does,
    :class:`~dataplump.contracts.errors.CheckFailedError` when Spark fails for a reason
    that is not the batch's, and ``ValueError`` for a frame without an int64 ``__dp_row``
    or a session not in UTC.
    """
    from pyspark.errors import AnalysisException, PySparkException
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    zone = frame.sparkSession.conf.get("spark.sql.session.timeZone")
    if zone not in ("UTC", "Etc/UTC", "Z", "+00:00", "GMT"):
        raise ValueError(
            f"checking a contract on Spark needs spark.sql.session.timeZone UTC (it is {zone})"
        )
    names = list(frame.columns)
    if ROW not in names or not isinstance(frame.schema[names.index(ROW)].dataType, T.LongType):
        raise ValueError(f"the frame to check needs the int64 lineage column `{ROW}`")
    row_at = names.index(ROW)
    positions = [j for j in range(len(names)) if j != row_at]
    inputs = [names[j] for j in positions]
    internal = [ROW if j == row_at else f"__dp_in_{j}" for j in range(len(names))]
    renamed = frame.toDF(*internal)
    kinds = {names[j]: frame.schema.fields[j].dataType for j in positions}
    refs = _reference_frames(contract, references or {})

    # The plan: schema issues, as check._build finds them.
    if len(set(inputs)) != len(inputs):
        twice = next(name for name in inputs if inputs.count(name) > 1)
        reason = batch_reason(
            "duplicate_column", twice, f"the batch has two columns called `{twice}`"
        )
        raise batch_rejected(contract, reason["message"], (reason,))
    schema = pa.schema([pa.field(name, _spark_arrow(kinds[name])) for name in inputs])
    issues = schema_issues(contract, schema)
    blocking = [issue for issue in issues if issue.policy == "reject_batch"]
    if blocking:
        reasons = [batch_reason(i.kind, i.column, i.message) for i in issues if i.policy != "pass"]
        text = "; ".join(f"{i.message} (on_{i.kind}: reject_batch)" for i in blocking[:3])
        if len(blocking) > 3:
            text += f"; ... and {len(blocking) - 3} more"
        raise batch_rejected(contract, text, tuple(reasons))

    source = {name: f"__dp_in_{positions[k]}" for k, name in enumerate(inputs)}
    items: list[_Item] = []
    false = F.lit(False)

    def add(
        rule: str,
        column: str | None,
        broken: Column,
        message: str,
        value: Column | None,
        count: Column | None = None,
    ) -> None:
        items.append(_Item(rule, column, F.coalesce(broken, false), message, value, count))

    for schema_issue in issues:
        if schema_issue.policy == "reject_row":
            add(schema_issue.kind, schema_issue.column, F.lit(True), schema_issue.message, None)

    found = {issue.column: issue for issue in issues if issue.kind != "unknown_column"}
    declared: list[Column] = []
    for name, spec in contract.columns.items():
        type_, issue = spec.logical_type, found.get(name)
        if issue is None:
            declared.append(F.col(source[name]).alias(name))
        elif issue.kind == "type_drift":
            raw = F.col(source[name])
            nested = isinstance(kinds[name], T.ArrayType | T.StructType | T.MapType)
            read = F.lit(None) if nested else _read_as(raw, kinds[name], type_)
            declared.append(read.cast(spark_type(type_)).alias(name))
        else:
            declared.append(F.lit(None).cast(spark_type(type_)).alias(name))
    b = renamed.select(*[F.col(c) for c in internal], *declared)

    # Duplicates (`unique`) by window, lookups (`relationships`) by left join.
    duplicates: dict[tuple[str, ...], Column] = {}

    def group(columns: tuple[str, ...]) -> Column:
        if columns not in duplicates:
            keys = [F.col(quote(c)) for c in columns]
            present = reduce(lambda a, c: a & c.isNotNull(), keys[1:], keys[0].isNotNull())
            n = F.count(F.lit(1)).over(Window.partitionBy(*keys))
            duplicates[columns] = F.when(present & (n > 1), n)
        return duplicates[columns]

    lookups: dict[tuple[str, str, str], Column] = {}
    for table_rule in contract.rules:
        if (rel := table_rule.relationships) is not None and (
            key := (rel.to, rel.column, rel.field)
        ) not in lookups:
            k = len(lookups)
            alias = f"__dp_key{k}"
            keys = (
                refs[rel.to]
                .select(F.col(quote(rel.field)).alias(alias))
                .where(F.col(alias).isNotNull())
                .distinct()
            )
            b = b.join(keys, F.col(quote(rel.column)) == F.col(alias), "left")
            lookups[key] = F.col(alias)
    types_b = {f.name: f.dataType for f in b.schema.fields}

    def shown(name: str) -> Column:
        return _text(F.col(quote(name)), types_b[name])

    for name, spec in contract.columns.items():
        type_, issue = spec.logical_type, found.get(name)
        ref = F.col(quote(name))
        value = shown(name)
        if issue is None:
            if type_.family == "json" and isinstance(kinds[name], T.StringType):
                invalid = ref.isNotNull() & F.try_parse_json(ref).isNull()
                add(TYPE_RULE, name, invalid, "is not valid JSON", value)
        elif issue.kind == "type_drift":
            raw = F.col(source[name])
            value = _text(raw, kinds[name])
            nested = isinstance(kinds[name], T.ArrayType | T.StructType | T.MapType)
            unreadable = ref.isNull()
            if type_.family in NUMERIC and not nested:
                unreadable = unreadable | (ref != raw.try_cast("double"))
            add(
                TYPE_RULE,
                name,
                raw.isNotNull() & unreadable,
                f"cannot be read as {type_.name}",
                value,
            )
        elif issue.policy == "reject_row":
            continue
        dup = group((name,)) if spec.unique is not None else None
        for rule in spec.rules:
            message = rule.message or rule.describe(_column_sql(name, type_))
            count = dup if isinstance(rule, Unique) else None
            add(rule.name, name, _rule_failure(rule, ref, type_, dup, now), message, value, count)

    for table_rule in contract.rules:
        column_shown = table_rule.column
        if (rel := table_rule.relationships) is not None:
            found_key = lookups[rel.to, rel.column, rel.field]
            message = table_rule.message or f"is not in reference table {rel.to}.{rel.field}"
            ref = F.col(quote(rel.column))
            add(
                table_rule.rule_name,
                rel.column,
                ref.isNotNull() & found_key.isNull(),
                message,
                shown(rel.column),
            )
        elif table_rule.unique is not None:
            dup = group(table_rule.unique)
            message = table_rule.message or (
                "is not unique in the batch: {n} rows have these values of "
                + ", ".join(table_rule.unique)
            )
            if column_shown is None and len(table_rule.unique) == 1:
                column_shown = table_rule.unique[0]
            if column_shown is not None:
                row_value = shown(column_shown)
            else:
                column_shown = ", ".join(table_rule.unique)
                parts = [_in_row(shown(c)) for c in table_rule.unique]
                tail = [F.lit(",")] if len(parts) == 1 else []
                row_value = F.concat(F.lit("("), F.concat_ws(", ", *parts), *tail, F.lit(")"))
            add(table_rule.rule_name, column_shown, dup.isNotNull(), message, row_value, dup)
        else:
            expression = table_rule.expression_is_true or "true"
            message = table_rule.message or f"expression is not true: {expression}"
            broken = ~F.expr(spark_expression(expression, rule=table_rule.rule_name))
            add(
                table_rule.rule_name,
                column_shown,
                broken,
                message,
                shown(column_shown) if column_shown else None,
            )

    # One pass: rows, nulls for expectations, rows per rule.
    flags = [f"__dp_f{i}" for i in range(len(items))]
    counted = b.select(
        *[F.col(quote(c)) for c in b.columns],
        *[it.flag.alias(f) for it, f in zip(items, flags, strict=True)],
    )
    shares = [
        e.null_share.column
        for e in contract.expectations
        if e.null_share is not None and e.null_share.column in source
    ]
    shares = list(dict.fromkeys(shares))
    n: int | None = None
    sizes: list[int] = [0] * len(items)
    nulls: dict[str, int] = {}
    if items or contract.expectations:
        measures = [F.count(F.lit(1)).alias("n")]
        measures += [F.sum(F.col(f).cast("long")).alias(f) for f in flags]
        measures += [
            F.sum(F.col(source[c]).isNull().cast("long")).alias(f"__dp_nulls{k}")
            for k, c in enumerate(shares)
        ]
        try:
            totals = (counted if items else renamed).agg(*measures).collect()[0]
        except AnalysisException:
            raise
        except PySparkException as exc:
            state = exc.getSqlState() or ""
            error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if state.startswith("22"):
                reason = batch_reason("check_failed", None, error)
                raise batch_rejected(
                    contract, f"a rule could not run on the batch: {error}", (reason,)
                ) from None
            raise CheckFailedError(
                f"checking a batch of table `{contract.table}` failed: {error};"
                " retry later or with smaller batches"
            ) from None
        n = int(totals["n"])
        sizes = [int(totals[f] or 0) for f in flags]
        nulls = {c: int(totals[f"__dp_nulls{k}"] or 0) for k, c in enumerate(shares)}
    failures: tuple[BatchFailure, ...] = ()
    warnings: tuple[BatchFailure, ...] = ()
    if contract.expectations:
        assert n is not None
        failures, warnings = expectation_failures(contract, _counts_table(n, nulls), input_rows)

    found_counts: dict[tuple[str, str | None], int] = {}
    for item, size in zip(items, sizes, strict=True):
        if size:
            found_counts[item.rule, item.column] = (
                found_counts.get((item.rule, item.column), 0) + size
            )
    violations = tuple(
        RuleCount(r, c, k, contract.owner_of(r, c)) for (r, c), k in found_counts.items()
    )

    own = (
        F.array_compact(
            F.array(
                *[
                    F.when(F.col(f), _reason_struct(item))
                    for item, f in zip(items, flags, strict=True)
                ]
            )
        )
        if items
        else F.array().cast(REASONS_DDL)
    )
    outputs = [F.col(c) for c in internal]
    if failures:
        batch = [
            _literal_struct(f.expectation, f.column, f"batch rejected: {f.message}")
            for f in failures
        ]
        every = F.concat(F.array(*batch), own)
        rejected = counted.select(*outputs, every.cast(REASONS_DDL).alias(REASONS))
        valid = renamed.where(F.lit(False))
        if n:
            violations = (
                tuple(RuleCount(f.expectation, f.column, n, f.owner) for f in failures) + violations
            )
    elif items:
        broken = reduce(lambda a, f: a | F.col(f), flags[1:], F.col(flags[0]))
        rejected = counted.where(broken).select(*outputs, own.cast(REASONS_DDL).alias(REASONS))
        valid = counted.where(~broken).select(*outputs)
    else:
        rejected = renamed.where(F.lit(False)).select(
            *outputs, F.array().cast(REASONS_DDL).alias(REASONS)
        )
        valid = renamed
    return SparkCheckResult(
        valid=valid.toDF(*names),
        rejected=rejected.toDF(*names, REASONS),
        batch_failures=failures,
        batch_warnings=warnings,
        schema_issues=tuple(issues),
        violations=violations,
        num_rows=n,
        checked_at=now,
    )


def _column_sql(name: str, type_: LogicalType) -> ColumnSql:
    return ColumnSql(name, _sql.ident(name), type_)


def _literal_struct(rule: str, column: str | None, message: str) -> Column:
    from pyspark.sql import functions as F

    return F.struct(
        F.lit(rule).cast("string").alias("rule"),
        F.lit(column).cast("string").alias("column"),
        F.lit(None).cast("string").alias("value"),
        F.lit(message).cast("string").alias("message"),
    )


def _reason_struct(item: _Item) -> Column:
    from pyspark.sql import functions as F

    if item.count is not None and "{n}" in item.message:
        before, _, after = item.message.partition("{n}")
        message = F.concat(F.lit(before), item.count.cast("string"), F.lit(after))
    else:
        message = F.lit(item.message)
    value = _shorten(item.value) if item.value is not None else F.lit(None).cast("string")
    return F.struct(
        F.lit(item.rule).cast("string").alias("rule"),
        F.lit(item.column).cast("string").alias("column"),
        value.cast("string").alias("value"),
        message.cast("string").alias("message"),
    )


def _counts_table(n: int, nulls: Mapping[str, int]) -> pa.Table:
    """An Arrow table with ``n`` rows and, per column of ``nulls``, that many nulls: what
    the DuckDB checker's expectations read (row count, null counts), built without data."""
    columns: dict[str, Any] = {"__dp_n": pa.nulls(n)}
    for name, k in nulls.items():
        columns[name] = pa.chunked_array(
            [pa.nulls(k, pa.bool_()), pa.repeat(pa.scalar(False, pa.bool_()), n - k)],
            pa.bool_(),
        )
    return pa.table(columns)


def _reference_frames(
    contract: Contract, references: Mapping[str, DataFrame]
) -> dict[str, DataFrame]:
    """The reference frames the contract's rules need; :class:`ReferenceTableError` for a
    missing one, a missing field or a field of a type the column cannot be compared with
    (the DuckDB check's messages, with Spark's types read as Arrow types)."""
    needed: dict[str, DataFrame] = {}
    for rule in contract.rules:
        if (rel := rule.relationships) is None:
            continue
        frame = references.get(rel.to)
        types = (
            None
            if frame is None
            else {f.name: _spark_arrow(f.dataType) for f in frame.schema.fields}
        )
        check_reference(contract, rule, references, types)
        assert frame is not None
        needed[rel.to] = frame
    return needed


__all__ = [
    "REASONS",
    "SparkCheckResult",
    "check_frame",
    "ensure_translates",
    "quote",
    "spark_expression",
    "spark_problems",
    "spark_regex",
    "spark_type",
]
