"""pandas and polars steps: zero-copy in, lineage through the index or column, errors."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from dataplump.engine import StepConfigError, StepFailed, TableTransform
from tests.unit.engine.helpers import pipeline

CODE = """
import pandas as pd
import polars as pl

def bucket(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["amount"] > 1].assign(big=df["amount"] > 2)
    return out.sort_values("id", ascending=False)

def reset(df: pd.DataFrame) -> pd.DataFrame:
    return df.reset_index(drop=True)

def not_a_frame(df: pd.DataFrame) -> list[int]:
    return [1]

def nothing(df: pd.DataFrame) -> None:
    df["x"] = 1

def boom(df: pd.DataFrame) -> pd.DataFrame:
    return helper(df)

def helper(df: pd.DataFrame) -> pd.DataFrame:
    raise KeyError("missing_column")

def flag(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("id") > 1).with_columns(tag=pl.lit("x"))

def lazy(df: pl.DataFrame) -> pl.LazyFrame:
    return df.lazy().select("id", "__dp_row")

def pandas_in_polars(df: pl.DataFrame) -> object:
    return df.to_pandas()
"""

BATCH = pa.table(
    {
        "id": [1, 2, 3],
        "customer_id": [10, 20, 30],
        "status": ["a", "b", None],
        "amount": pa.array(
            [Decimal("1.00"), Decimal("2.50"), Decimal("3.10")], pa.decimal128(10, 2)
        ),
        "at": pa.array(
            [datetime(2020, 1, 1, 1, 2, 3, 456789, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")
        ),
    }
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "fns.py").write_text(textwrap.dedent(CODE))
    return tmp_path


def make(folder: Path, kind: str, name: str) -> TableTransform:
    return TableTransform.from_config(pipeline(folder, [{kind: f"steps/fns.py:{name}"}]), "orders")


def test_pandas_keeps_types_and_lineage_through_the_index(folder: Path) -> None:
    result = make(folder, "pandas", "bucket").apply(BATCH)
    assert result.output.schema.field("amount").type == pa.decimal128(10, 2)
    assert result.output.schema.field("at").type == pa.timestamp("us", tz="UTC")
    assert result.output["at"][0].as_py() == datetime(2020, 1, 1, 1, 2, 3, 456789, tzinfo=UTC)
    assert result.output["big"].to_pylist() == [True, True]
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [2, 1]
    assert "__dp_row" not in result.output.column_names
    assert result.output.schema.metadata is None


def test_pandas_reset_index_loses_lineage(folder: Path) -> None:
    assert make(folder, "pandas", "reset").apply(BATCH).source_rows is None


def test_polars_keeps_lineage_and_collects_lazy_frames(folder: Path) -> None:
    result = make(folder, "polars", "flag").apply(BATCH)
    assert result.output.schema.field("status").type == pa.string()  # not large_string
    assert result.output.schema.field("amount").type == pa.decimal128(10, 2)
    assert result.source_rows is not None
    assert result.source_rows.to_pylist() == [1, 2]
    lazy = make(folder, "polars", "lazy").apply(BATCH)
    assert lazy.output.column_names == ["id"]
    assert lazy.source_rows is not None


@pytest.mark.parametrize(
    ("kind", "name", "message"),
    [
        ("pandas", "not_a_frame", "step 1 (pandas): returned a list, not a pandas.DataFrame"),
        ("pandas", "nothing", "returned None (did it forget to `return df`?), not a pandas"),
        ("polars", "pandas_in_polars", "returned a pandas.DataFrame, not a polars.DataFrame"),
    ],
)
def test_result_that_is_no_dataframe(folder: Path, kind: str, name: str, message: str) -> None:
    with pytest.raises(StepFailed) as caught:
        make(folder, kind, name).apply(BATCH)
    assert message in str(caught.value)
    assert caught.value.kind == kind


def test_function_that_raises(folder: Path) -> None:
    with pytest.raises(StepFailed) as caught:
        make(folder, "pandas", "boom").apply(BATCH)
    assert str(caught.value) == (
        "table `orders`, step 1 (pandas): raised KeyError: 'missing_column'"
    )
    summary = caught.value.traceback_summary.splitlines()
    assert "fns.py" in summary[-3]
    assert "in boom" in summary[-3]
    assert "in helper" in summary[-2]
    assert summary[-1] == "KeyError: 'missing_column'"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("steps/fns.py:bucketz", "no function `bucketz` in `steps/fns.py`; did you mean `bucket`?"),
        ("no_such_module_dp:f", "no module `no_such_module_dp` (is it installed"),
        ("json:nope", "no function `nope` in module `json`"),
    ],
)
def test_function_that_cannot_be_imported(folder: Path, ref: str, message: str) -> None:
    config = pipeline(folder, [{"trim": "status"}, {"pandas": ref}])
    with pytest.raises(StepConfigError) as caught:
        TableTransform.from_config(config, "orders")
    assert str(caught.value).startswith(f"table `orders`, step 2 (pandas): cannot import `{ref}`: ")
    assert message in str(caught.value)


def test_file_that_raises_on_import(folder: Path) -> None:
    (folder / "steps" / "broken.py").write_text("import nothing_here_dp\n")
    config = pipeline(folder, [{"polars": "steps/broken.py:f"}])
    with pytest.raises(
        StepConfigError, match=r"importing `steps/broken\.py` raised ModuleNotFound"
    ):
        TableTransform.from_config(config, "orders")
