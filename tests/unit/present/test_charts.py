"""Chart specs: valid Vega-Lite (Altair validates), drawn offline by vl-convert."""

from __future__ import annotations

import pytest

from dataplump.config.models import ChartConfig
from dataplump.present import charts, data
from tests.unit.present.frames import NOW, config, snapshot


def page_specs() -> list[charts.Spec]:
    shot = snapshot()
    over = data.overview(shot, config(), NOW)
    found = data.quality(shot)
    profile = data.profile(shot, "orders")
    return [
        charts.ledger_chart(list(over["tables"].values())),
        charts.throughput_chart(data.throughput(shot)),
        charts.rejects_over_time_chart(found["over_time"], found["bucket"]),
        charts.by_rule_chart(found["by_rule"]),
        charts.by_column_chart(found["by_column"]),
        *(charts.distribution_chart(c, d) for c, d in profile["distributions"].items()),
    ]


def test_page_specs_are_vega_lite_with_inline_data() -> None:
    for spec in page_specs():
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
        assert "values" in spec["data"]


def test_ledger_chart_without_ledger_uses_curated_rows() -> None:
    spec = charts.ledger_chart([{"table": "t", "curated_rows": 5, "in_dlq": 1, "in_failed": 0}])
    assert spec["data"]["values"] == [
        {"table": "t", "bucket": "loaded", "rows": 5},
        {"table": "t", "bucket": "dead-letter", "rows": 1},
    ]


@pytest.mark.parametrize("kind", ["bar", "line", "area", "scatter", "pie", "donut", "table", "kpi"])
def test_declared_chart_of_every_kind_renders_to_svg(kind: str) -> None:
    axis = kind not in ("table", "kpi")
    chart = ChartConfig(
        name=f"c_{kind}",
        sql="SELECT status, count(*) AS n, min(ordered_at) AS first FROM orders GROUP BY ALL",
        kind=kind,
        x="status" if axis else None,
        y=None if kind == "table" else "n",
        color="status" if kind in ("bar", "scatter") else None,
    )
    rows = data.chart_rows(snapshot(), chart)
    spec = charts.declared_chart(chart, rows)
    assert spec["title"] == f"c_{kind}"
    svg = charts.to_svg(spec)
    assert svg.startswith("<svg")
    assert "</svg>" in svg


def test_kpi_shows_the_first_rows_value() -> None:
    chart = ChartConfig(name="n", sql="SELECT count(*) AS n FROM orders", kind="kpi", y="n")
    spec = charts.declared_chart(chart, data.chart_rows(snapshot(), chart))
    assert spec["data"]["values"] == [{"text": "10"}]


def test_time_column_becomes_a_temporal_axis() -> None:
    chart = ChartConfig(
        name="per_day",
        sql="SELECT ordered_at AS day, amount FROM orders",
        kind="line",
        x="day",
        y="amount",
    )
    spec = charts.declared_chart(chart, data.chart_rows(snapshot(), chart))
    assert spec["encoding"]["x"]["type"] == "temporal"
    assert spec["encoding"]["y"]["type"] == "quantitative"


def test_png_for_reports() -> None:
    png = charts.to_png(page_specs()[0], width=400, scale=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_description_becomes_a_subtitle() -> None:
    chart = ChartConfig(
        name="n",
        sql="SELECT count(*) AS n FROM orders",
        kind="kpi",
        y="n",
        description="all of them",
    )
    spec = charts.declared_chart(chart, data.chart_rows(snapshot(), chart))
    assert spec["title"] == {"text": "n", "subtitle": "all of them"}


@pytest.mark.parametrize(
    ("sql", "sort"),
    [
        ("SELECT month, sum(x) AS v FROM t GROUP BY 1 ORDER BY 1", None),
        ("SELECT month, sum(x) AS v FROM t GROUP BY 1", "-y"),
    ],
)
def test_a_bar_chart_keeps_the_querys_order_when_it_has_one(sql: str, sort: str | None) -> None:
    chart = ChartConfig(name="c", sql=sql, kind="bar", x="month", y="v")
    rows = [{"month": "2026-01", "v": 1}, {"month": "2026-02", "v": 3}]
    spec = charts.declared_chart(chart, rows)
    assert spec["encoding"]["x"]["sort"] == sort
