"""The `present` section: declared charts are checked when the pipeline file loads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dataplump.config.models import ChartConfig, PresentConfig


def test_defaults_bind_locally_without_token() -> None:
    present = PresentConfig()
    assert (present.host, present.port, present.auth_token) == ("127.0.0.1", 8050, None)
    assert present.refresh_seconds == 30.0


def test_token_is_masked() -> None:
    present = PresentConfig(auth_token="s3cret")
    assert "s3cret" not in repr(present)
    assert "s3cret" not in str(present.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("chart", "message"),
    [
        ({"name": "a", "sql": "DELETE FROM orders", "kind": "table"}, "one `SELECT`"),
        ({"name": "a", "sql": "SELECT 1; DROP TABLE x", "kind": "table"}, "one statement"),
        ({"name": "a", "sql": "SELECT 1 AS n", "kind": "bar", "y": "n"}, "needs `x`"),
        ({"name": "a", "sql": "SELECT 1 AS n", "kind": "pie", "x": "n"}, "needs `y`"),
        ({"name": "a", "sql": "SELECT 1 AS n", "kind": "kpi"}, "needs `y`"),
        ({"name": "a", "sql": "SELECT 1", "kind": "bar", "x": "a", "y": "b", "columns": ["a"]},
         "`columns` is for `table`"),
        ({"name": "a b", "sql": "SELECT 1", "kind": "table"}, "letters, digits"),
        ({"name": "a", "sql": "SELECT 1", "kind": "gauge"}, "literal_error"),
    ],
)  # fmt: skip
def test_bad_charts_are_refused(chart: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChartConfig.model_validate(chart)
    assert message in str(info.value) or message in str(info.value.errors())


def test_chart_names_are_unique() -> None:
    chart = {"name": "a", "sql": "SELECT 1", "kind": "table"}
    with pytest.raises(ValidationError, match="two charts are named `a`"):
        PresentConfig.model_validate({"charts": [chart, chart]})


def test_trailing_semicolon_is_dropped() -> None:
    chart = ChartConfig(
        name="n", sql="  WITH t AS (SELECT 1 AS n) SELECT n FROM t; ", kind="kpi", y="n"
    )
    assert chart.sql == "WITH t AS (SELECT 1 AS n) SELECT n FROM t"
