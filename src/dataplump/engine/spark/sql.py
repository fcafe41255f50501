"""The ``sql`` step on Spark: the step's DuckDB SQL translated to Spark SQL with sqlglot.

Steps are written once, in DuckDB's dialect (the relation ``batch``, the table's own
name, the reference tables). :func:`translate` parses the query as DuckDB with sqlglot,
renames the relations to temporary views private to one run (so that transforms sharing
a Spark session never see each other's ``batch``; each keeps its written name as its
alias, so ``batch.id`` still resolves) and generates Spark SQL with
``unsupported_level=RAISE``. What cannot be translated is refused *before data flows*
(:func:`check_sql`, called by :class:`~dataplump.engine.spark.transform.SparkTableTransform`
when it is built) with :class:`~dataplump.engine.errors.StepConfigError`:

- what sqlglot says it cannot generate for Spark;
- constructs sqlglot passes through although Spark has no such thing or its rewrite
  changes the result: ``ASOF`` and ``POSITIONAL`` joins, ``COLUMNS(...)``, ``QUALIFY``
  with ``SELECT *`` (sqlglot's rewrite adds its helper column ``_w`` to the output);
- with a Spark session at hand, whatever Spark's own parser refuses.

Functions and columns are resolved by Spark when the step runs on a batch (Spark
analyzes ``spark.sql`` at once): an unknown function or column fails the batch with
:class:`~dataplump.engine.errors.StepFailed`, as DuckDB does.

**Result types follow DuckDB.** The same expression can have another type in Spark:
``date_trunc`` of a date is a naive ``TIMESTAMP`` in DuckDB but a zoned one in Spark, a
date plus an interval a ``TIMESTAMP`` in DuckDB but a ``DATE`` in Spark, a decimal
divided by a number a ``DOUBLE`` in DuckDB but a ``DECIMAL`` in Spark, ``extract`` a
``BIGINT`` in DuckDB but an ``INT`` in Spark. So that a pipeline's output contract
holds on both engines, the query also runs in DuckDB on *empty* relations of the
batch's and the references' schemas (no rows: milliseconds, once per schema), and
Spark's result columns are cast to DuckDB's types where they differ (a naive
timestamp is Spark's ``TIMESTAMP_NTZ``). Values computed differently before that cast
(decimal rather than double arithmetic) can still differ in the last digits.

``SELECT *`` carries the lineage column ``__dp_row`` as in DuckDB. Spark runs with ANSI
mode on (Spark 4's default), so a cast that fails raises like DuckDB's does.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import ErrorLevel, exp
from sqlglot.errors import ParseError, SqlglotError

from dataplump.engine.builtin import ROW, StepError
from dataplump.engine.errors import StepConfigError
from dataplump.engine.sql import BATCH, new_connection

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

    from dataplump.engine.spec import SqlStep

_ids = itertools.count(1)
_ids_lock = threading.Lock()


@dataclass(frozen=True)
class Translated:
    """A SQL step in Spark's dialect, its relations renamed to ``{view}`` placeholders."""

    template: str
    """Spark SQL with each relation as ``__dp_view_<n>`` for ``views[n]``."""
    views: tuple[str, ...]
    """The relations the query reads, as written (lower case): ``batch`` or a reference
    name; ``views[0]`` of the template is ``__dp_view_0``."""

    def render(self, suffix: str) -> tuple[str, dict[str, str]]:
        """The SQL with view names unique to ``suffix``, and relation -> view name."""
        names = {rel: f"__dp_{i}_{suffix}" for i, rel in enumerate(self.views)}
        sql = self.template
        for i, rel in sorted(enumerate(self.views), reverse=True):  # _10 before _1
            sql = sql.replace(f"__dp_view_{i}", names[rel])
        return sql, names


def translate(
    table: str, position: int, step: SqlStep, references: Collection[str] = ()
) -> Translated:
    """The step's query as Spark SQL; :class:`StepConfigError` naming the table, the step
    (``position`` counts from 1) and the construct when it cannot run on Spark.

    Relations named ``batch``, or like the table (unless a reference has its name), are
    the batch; those named like a reference are that reference; CTE names shadow both.
    """
    where = f"table `{table}`, step {position} (sql)"
    try:
        tree = sqlglot.parse_one(step.query, read="duckdb")
    except ParseError as exc:
        raise StepConfigError(f"{where}: sqlglot cannot parse the query: {_line(exc)}") from None
    _refuse_passthrough(tree, where)
    refs = {name.lower() for name in references}
    batch_names = {BATCH} | ({table.lower()} if table.lower() not in refs else set())
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    views: list[str] = []
    for node in list(tree.find_all(exp.Table)):
        name = node.name.lower()
        if node.args.get("db") or node.args.get("catalog") or name in ctes:
            continue
        relation = BATCH if name in batch_names else name if name in refs else None
        if relation is None:
            continue
        if relation not in views:
            views.append(relation)
        alias = node.alias or node.name
        node.set("this", exp.to_identifier(f"__dp_view_{views.index(relation)}"))
        node.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
    try:
        sql = tree.sql(dialect="spark", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise StepConfigError(f"{where}: the query cannot run on Spark: {_line(exc)}") from None
    return Translated(sql, tuple(views))


def _refuse_passthrough(tree: exp.Expr, where: str) -> None:
    """Constructs sqlglot generates unchanged (or wrongly) for Spark."""
    for join in tree.find_all(exp.Join):
        method = str(join.args.get("method") or "").upper()
        if method in ("ASOF", "POSITIONAL"):
            raise StepConfigError(
                f"{where}: `{method} JOIN` cannot run on Spark: Spark SQL has no {method} join;"
                " write it as a join with a window (row_number) instead"
            )
    if tree.find(exp.Columns) is not None:
        raise StepConfigError(
            f"{where}: `COLUMNS(...)` cannot run on Spark: Spark SQL has no COLUMNS"
            " expression; name the columns"
        )
    for select in tree.find_all(exp.Select):
        if select.args.get("qualify") is not None and any(
            isinstance(e, exp.Star) or (isinstance(e, exp.Column) and e.is_star)
            for e in select.expressions
        ):
            raise StepConfigError(
                f"{where}: `QUALIFY` with `SELECT *` cannot run on Spark: Spark SQL has no"
                " QUALIFY and its rewrite into a subquery adds a column to `*`; filter a"
                " window column in a subquery instead"
            )


def check_sql(
    table: str,
    position: int,
    step: SqlStep,
    references: Collection[str] = (),
    spark: SparkSession | None = None,
) -> Translated:
    """:func:`translate`, and with ``spark`` also Spark's own parser on the result: call
    it at startup to refuse a step before data flows (:class:`StepConfigError`)."""
    translated = translate(table, position, step, references)
    if spark is not None:
        try:
            spark._jsparkSession.sessionState().sqlParser().parsePlan(translated.template)
        except Exception as exc:  # py4j wraps Spark's ParseException
            reason = _line(exc).removeprefix("An error occurred while calling o0.parsePlan.")
            raise StepConfigError(
                f"table `{table}`, step {position} (sql): the query cannot run on Spark:"
                f" Spark's parser refuses its translation ({reason}):"
                f" {' '.join(translated.template.split())}"
            ) from None
    return translated


def run_sql(
    spark: SparkSession,
    translated: Translated,
    batch: DataFrame,
    references: Mapping[str, DataFrame],
    *,
    query: str | None = None,
    table: str = "",
) -> DataFrame:
    """The step on ``batch`` (lazy). Spark analyzes the query here, so the temporary views
    are dropped before returning; :class:`StepError` when Spark refuses it (an unknown
    column or function). With ``query`` (the DuckDB original) the result columns are cast
    to the types DuckDB gives them (see the module docstring)."""
    from pyspark.errors import PySparkException

    with _ids_lock:
        suffix = str(next(_ids))
    sql, names = translated.render(suffix)
    declared = {name.lower(): name for name in references}
    try:
        for relation, view in names.items():
            if relation == BATCH:
                frame = batch
            elif relation in declared:
                frame = references[declared[relation]]  # a lazy mapping loads it here
            else:
                raise StepError(f"reference `{relation}` is not given")
            frame.createOrReplaceTempView(view)
        try:
            result = spark.sql(sql)
        except PySparkException as exc:
            raise StepError(_line(exc)) from None
    finally:
        for view in names.values():
            spark.catalog.dropTempView(view)
    if query is None:
        return result
    inputs = {rel: (batch if rel == BATCH else references[declared[rel]]).schema for rel in names}
    return _as_duckdb_types(result, duckdb_schema(query, table, inputs))


_SCHEMAS: dict[tuple[str, str, tuple[tuple[str, str], ...]], pa.Schema | None] = {}
_SCHEMAS_LOCK = threading.Lock()


def duckdb_schema(query: str, table: str, inputs: Mapping[str, StructType]) -> pa.Schema | None:
    """The schema DuckDB gives ``query``'s result over empty relations of ``inputs``
    (relation -> Spark schema; ``batch`` is also registered as ``table``); None when
    DuckDB cannot run it on them (Spark's own types are kept then). Cached."""
    from pyspark.sql.pandas.types import to_arrow_schema

    key = (query, table, tuple(sorted((rel, s.json()) for rel, s in inputs.items())))
    with _SCHEMAS_LOCK:
        if key in _SCHEMAS:
            return _SCHEMAS[key]
    con = new_connection()
    try:
        for rel, schema in inputs.items():
            empty = to_arrow_schema(schema, timezone="UTC").empty_table()
            con.register(rel, empty)
            if rel == BATCH and table and table.lower() not in inputs:
                con.register(table, empty)
        found: pa.Schema | None = con.sql(query).to_arrow_table().schema
    except (duckdb.Error, TypeError, pa.ArrowException):
        found = None
    finally:
        con.close()
    with _SCHEMAS_LOCK:
        if len(_SCHEMAS) > 512:
            _SCHEMAS.clear()
        _SCHEMAS[key] = found
    return found


def _as_duckdb_types(frame: DataFrame, schema: pa.Schema | None) -> DataFrame:
    """``frame`` with DuckDB's column names (an unnamed expression: ``count_star()``
    rather than Spark's ``count(1)``) and each type that differs cast to DuckDB's; left
    as it is when the two disagree on the number of columns or where ``__dp_row`` is."""
    from pyspark.sql.pandas.types import from_arrow_type

    if schema is None or len(schema.names) != len(frame.columns):
        return frame
    if [n == ROW for n in schema.names] != [n == ROW for n in frame.columns]:
        return frame
    columns, changed = [], schema.names != frame.columns
    for i, (field, spark_field) in enumerate(zip(schema, frame.schema.fields, strict=True)):
        column = frame[i]  # by position: names may repeat (`SELECT a.id, b.id`)
        try:
            wanted = from_arrow_type(field.type, prefer_timestamp_ntz=True)
        except (TypeError, NotImplementedError):
            wanted = spark_field.dataType  # no Spark type for it (unsigned, interval)
        if wanted != spark_field.dataType and _castable(spark_field.dataType, wanted):
            column = column.cast(wanted)
            changed = True
        columns.append(column.alias(field.name))
    return frame.select(*columns) if changed else frame


def _castable(source: DataType, target: DataType) -> bool:
    """Only scalar columns are aligned (not arrays, maps, structs)."""
    from pyspark.sql.types import ArrayType, MapType, NullType, StructType

    nested = (ArrayType, MapType, StructType)
    return not isinstance(source, nested) and not isinstance(target, (*nested, NullType))


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
