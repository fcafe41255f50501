"""Steps and references in the pipeline file: located errors, parsed steps, check_steps."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplump.config import InvalidConfigError, load_config
from dataplump.engine import StepConfigError, TableTransform, check_steps
from dataplump.engine.spec import Cast, Dedupe, PandasStep, SqlStep, Trim
from tests.unit.engine.helpers import pipeline

HEAD = """\
pipeline: {name: shop}
source: {url: "sqlite:///x.db"}
tables:
  orders:
    primary_key: id
    contract:
      columns: {id: int64, customer_id: int64, status: string, amount: string}
transform:
"""
GOOD_STEPS = """\
  steps:
    orders:
      - trim: status
      - cast: {amount: "decimal(10,2)"}
      - dedupe:
      - sql: SELECT * FROM batch
      - pandas: steps/o.py:f
"""


def load(tmp_path: Path, body: str) -> list[str]:
    file = tmp_path / "dataplump.yaml"
    file.write_text(f"{HEAD}{body}")
    with pytest.raises(InvalidConfigError) as caught:
        load_config(file, env={})
    return [f"{i.line}: {i.path}: {i.message}" for i in caught.value.issues]


def test_steps_parse_with_paths_resolved(tmp_path: Path) -> None:
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "o.py").write_text("def f(df): return df\n")
    file = tmp_path / "dataplump.yaml"
    file.write_text(HEAD + GOOD_STEPS)
    config = load_config(file, env={})
    steps = config.transform.steps_for("orders")
    assert [type(s) for s in steps] == [Trim, Cast, Dedupe, SqlStep, PandasStep]
    assert isinstance(steps[4], PandasStep)
    assert steps[4].function.file == tmp_path / "steps" / "o.py"
    assert config.transform.steps_for("customers") == ()
    assert check_steps(config, "orders") == []


def test_step_errors_are_located(tmp_path: Path) -> None:
    issues = load(
        tmp_path,
        """\
  steps:
    orders:
      - trimm: [status]
      - cast: {amount: bigint}
      - sql: SELEC 1
      - pandas: steps/missing.py:f
      - dedupe: {newest: x}
      - {trim: [a], drop: [b]}
      - fill_null: {status: [1]}
      - rename: {a: x, b: x}
      - parse_dates: {a: "dd/mm"}
      - sql: "DELETE FROM batch"
""",
    )
    assert issues == [
        "11: transform.steps.orders[0].trimm: unknown step `trimm`; did you mean `trim`? (steps:"
        " trim, lowercase, uppercase, titlecase, parse_dates, cast, fill_null, drop_null, dedupe,"
        " rename, drop, sql, pandas, polars)",
        "12: transform.steps.orders[1].cast: unknown type `bigint`; did you mean `int64`?"
        " (types: integer, int8, int16, int32, int64, decimal(p,s), float, double, string, text,"
        " boolean, date, timestamp, timestamptz, json, bytes)",
        "13: transform.steps.orders[2].sql: the SQL does not parse: Parser Error: syntax error at"
        ' or near "SELEC"',
        "14: transform.steps.orders[3].pandas: no such file `steps/missing.py` (relative paths"
        " start at the pipeline file)",
        "15: transform.steps.orders[4].dedupe.newest: unknown key `newest`; did you mean"
        " `newest_by`? (valid: key, newest_by)",
        "16: transform.steps.orders[5]: a step is a mapping with one key, its kind, e.g."
        " `- trim: [customer]`; found keys `trim`, `drop`",
        "17: transform.steps.orders[6].fill_null.status: expected a single value (text, number,"
        " true/false or a date), got a list",
        "18: transform.steps.orders[7].rename: two columns would be called `x`",
        "19: transform.steps.orders[8].parse_dates: format 'dd/mm' of `a` has no % directive;"
        " write it as strftime does, e.g. `%d/%m/%Y` or `%Y-%m-%d %H:%M:%S`",
        "20: transform.steps.orders[9].sql: expected a SELECT statement, found DELETE",
    ]


def test_reference_errors_are_located(tmp_path: Path) -> None:
    issues = load(
        tmp_path,
        """\
  references:
    batch: {csv: a.csv}
    both: {table: customers, parquet: r.parquet}
    keyed: {csv: k.csv, key: id}
""",
    )
    assert issues == [
        "10: transform.references.batch.csv: no such file (relative paths start at the pipeline"
        " file), got 'a.csv'",
        "11: transform.references.both.parquet: no such file (relative paths start at the"
        " pipeline file), got 'r.parquet'",
        "12: transform.references.keyed.csv: no such file (relative paths start at the pipeline"
        " file), got 'k.csv'",
    ]


def test_reference_names(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("a\n1\n")
    issues = load(tmp_path, "  references:\n    batch: {csv: a.csv}\n    1x: {csv: a.csv}\n")
    assert issues == [
        "10: transform.references.batch: `batch` is the name SQL steps see the incoming rows"
        " as; name the reference otherwise",
        "11: transform.references.1x: reference name `1x` is not a SQL name: use letters,"
        " digits and `_`, not starting with a digit",
    ]


def test_reference_needs_one_kind(tmp_path: Path) -> None:
    (tmp_path / "r.parquet").write_bytes(b"")
    issues = load(tmp_path, "  references:\n    both: {table: customers, parquet: r.parquet}\n")
    assert issues == [
        "10: transform.references.both.parquet: a reference needs exactly one of `table`, `csv`,"
        " `parquet`, `delta` (found `table`, `parquet`), e.g. `customers: {table: customers}`"
    ]


def test_check_steps_runs_steps_on_an_empty_contract_batch(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text(
        "def ok(df): return df\ndef bad(df): return 1\ndef fails(df): raise ValueError('x')\n"
    )
    config = pipeline(
        tmp_path,
        [
            {"trim": "status"},
            {"lowercase": "staus"},
        ],
    )
    assert [str(p) for p in check_steps(config, "orders")] == [
        "transform.steps.orders[1].lowercase: no column `staus` in the batch; did you mean"
        " `status`? (columns: id, customer_id, status, amount)"
    ]
    config = pipeline(
        tmp_path,
        [
            {"pandas": "f.py:ok"},
            {"sql": "SELECT id, cust FROM batch"},
        ],
    )
    [problem] = check_steps(config, "orders")
    assert problem.key == "transform.steps.orders[1].sql"
    assert problem.message.startswith('Binder Error: Referenced column "cust" not found')
    config = pipeline(tmp_path, [{"pandas": "f.py:bad"}, {"polars": "f.py:nope"}])
    assert [str(p) for p in check_steps(config, "orders")] == [
        "transform.steps.orders[1].polars: cannot import `f.py:nope`: no function `nope` in"
        " `f.py`; (functions: ok, bad, fails)",
        "transform.steps.orders[0].pandas: returned an int, not a pandas.DataFrame",
    ]
    config = pipeline(tmp_path, [{"pandas": "f.py:fails"}, {"sql": "SELECT nope FROM batch"}])
    assert check_steps(config, "orders") == []  # raising on zero rows is not reported


def test_check_steps_reports_a_reference_that_cannot_load(tmp_path: Path) -> None:
    config = pipeline(
        tmp_path,
        [{"sql": "SELECT * FROM batch"}],
        references={"customers": {"table": "customers", "key": "id"}},
    )
    [problem] = check_steps(config, "orders")
    assert problem.key == "transform.references.customers"
    assert "reference `customers`: " in problem.message


def test_unknown_table(tmp_path: Path) -> None:
    config = pipeline(tmp_path, [])
    with pytest.raises(StepConfigError, match="no table `order` in the config; did you mean"):
        TableTransform.from_config(config, "order")
    assert TableTransform.from_config(config, "orders").describe() == []


def test_check_steps_with_the_spark_engine_refuses_sql_spark_cannot_run(tmp_path: Path) -> None:
    file = tmp_path / "dataplump.yaml"
    steps = """\
  engine: spark
  steps:
    orders:
      - trim: status
      - sql: SELECT * FROM batch QUALIFY row_number() OVER (ORDER BY id) = 1
      - sql: SELECT * FROM batch WHERE amount <> ''
"""
    file.write_text(HEAD + steps)
    config = load_config(file, env={})
    [problem] = check_steps(config, "orders")
    assert problem.key == "transform.steps.orders[1].sql"
    assert problem.message.startswith("`QUALIFY` with `SELECT *` cannot run on Spark")
    file.write_text(HEAD + steps.replace("engine: spark", "engine: duckdb"))
    assert check_steps(load_config(file, env={}), "orders") == []
