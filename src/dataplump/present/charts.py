"""Every chart of the dashboard, declared once as a Vega-Lite spec (built with Altair).

Each function takes the rows a query of :mod:`dataplump.present.data` returned and gives
a plain Vega-Lite dict with the data inline: the page draws it with vega-embed, a report
renders the same dict to SVG or PNG with :func:`to_svg` / :func:`to_png` (vl-convert).

    >>> spec = by_rule_chart([{"rule": "not_null(id)", "table": "orders",
    ...                        "store": "dlq", "records": 3}])
    >>> spec["mark"]["type"], spec["encoding"]["y"]["field"]
    ('bar', 'rule')
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import altair as alt

if TYPE_CHECKING:
    from dataplump.config.models import ChartConfig

Spec = dict[str, Any]
WIDTH = "container"
HEIGHT = 220
STORE_COLORS = alt.Scale(domain=["dlq", "failed"], range=["#d62728", "#ff7f0e"])


def _data(rows: list[dict[str, Any]]) -> alt.Data:
    return alt.Data(values=rows)  # type: ignore[no-untyped-call]


def _spec(chart: alt.TopLevelMixin, title: Any = None) -> Spec:
    if title is not None:
        chart = chart.properties(title=title)
    spec: Spec = chart.to_dict(validate=True)
    spec.pop("config", None)
    spec["config"] = {"view": {"stroke": None}, "axis": {"labelLimit": 240}}
    return spec


def ledger_chart(tables: list[dict[str, Any]]) -> Spec:
    """Per table, where its rows went: loaded, dead-letter, failed, filtered, in flight
    (a stacked horizontal bar; rows of the overview's ``tables``)."""
    rows = []
    for t in tables:
        for bucket, key in (
            ("loaded", "loaded"),
            ("dead-letter", "in_dlq"),
            ("failed", "in_failed"),
            ("filtered", "filtered"),
            ("in flight", "in_flight"),
        ):
            value = t.get(key)
            if value is None and key == "loaded":  # no ledger (Kafka down): the table's rows
                value = t.get("curated_rows")
            if value:
                rows.append({"table": t["table"], "bucket": bucket, "rows": value})
    chart = (
        alt.Chart(_data(rows))
        .mark_bar()
        .encode(
            y=alt.Y("table:N", title=None),
            x=alt.X("rows:Q", stack="normalize", title="share of rows", axis=alt.Axis(format="%")),
            color=alt.Color(
                "bucket:N",
                title=None,
                sort=["loaded", "dead-letter", "failed", "filtered", "in flight"],
                scale=alt.Scale(
                    domain=["loaded", "dead-letter", "failed", "filtered", "in flight"],
                    range=["#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#7f7f7f"],
                ),
            ),
            order=alt.Order("bucket:N"),
            tooltip=["table:N", "bucket:N", alt.Tooltip("rows:Q", format=",")],
        )
        .properties(width=WIDTH, height=alt.Step(28))
    )
    return _spec(chart, "Where each table's rows went")


def throughput_chart(runs: list[dict[str, Any]]) -> Spec:
    """Rows per second of each stage run over time (rows of ``_runs``)."""
    chart = (
        alt.Chart(_data(runs))
        .mark_line(point=True)
        .encode(
            x=alt.X("ended_at:T", title="run ended"),
            y=alt.Y("rows_per_second:Q", title="rows/s"),
            color=alt.Color("stage:N", title="stage"),
            tooltip=[
                "stage:N",
                "run_id:N",
                alt.Tooltip("rows:Q", format=","),
                alt.Tooltip("rows_per_second:Q", format=",.0f"),
                alt.Tooltip("seconds:Q", format=".1f"),
                "status:N",
            ],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    return _spec(chart, "Throughput per stage run")


_TIME_UNITS: dict[str, Any] = {
    "1 minute": "yearmonthdatehoursminutes",
    "1 hour": "yearmonthdatehours",
    "1 day": "yearmonthdate",
    "7 days": "yearweek",
}
"""The Vega-Lite time unit of each bucket width: a bar spans its whole bucket."""


def rejects_over_time_chart(rows: list[dict[str, Any]], bucket: str = "1 hour") -> Spec:
    """Rejected records per time bucket, stacked by table (dead-letter and failed)."""
    chart = (
        alt.Chart(_data(rows))
        .mark_bar()
        .encode(
            x=alt.X(
                "time:T",
                timeUnit=_TIME_UNITS.get(bucket, "yearmonthdatehours"),
                title=f"per {bucket}",
            ),
            y=alt.Y("sum(records):Q", title="rejected records"),
            color=alt.Color("table:N"),
            tooltip=["time:T", "table:N", "store:N", alt.Tooltip("sum(records):Q", format=",")],
        )
        .properties(width=WIDTH, height=HEIGHT)
    )
    return _spec(chart, "Invalid and failed records over time")


def by_rule_chart(rows: list[dict[str, Any]], limit: int = 20) -> Spec:
    """The rules that fire most (records per rule, by store)."""
    chart = (
        alt.Chart(_data(rows))
        .transform_joinaggregate(total="sum(records)", groupby=["rule"])
        .transform_window(rank="dense_rank()", sort=[alt.SortField("total", order="descending")])
        .transform_filter(alt.datum.rank <= limit)
        .mark_bar()
        .encode(
            y=alt.Y("rule:N", sort="-x", title=None),
            x=alt.X("sum(records):Q", title="records"),
            color=alt.Color("store:N", scale=STORE_COLORS, title="kept in"),
            tooltip=["rule:N", "table:N", "store:N", alt.Tooltip("sum(records):Q", format=",")],
        )
        .properties(width=WIDTH)
    )
    return _spec(chart, "Rules that fire most")


def by_column_chart(rows: list[dict[str, Any]], limit: int = 20) -> Spec:
    """Broken rules per table column."""
    chart = (
        alt.Chart(_data(rows))
        .transform_calculate(where="datum.table + '.' + datum.column")
        .mark_bar()
        .encode(
            y=alt.Y("where:N", sort="-x", title=None),
            x=alt.X("sum(records):Q", title="broken rules"),
            color=alt.Color("store:N", scale=STORE_COLORS, title="kept in"),
            tooltip=["where:N", "store:N", alt.Tooltip("sum(records):Q", format=",")],
        )
        .properties(width=WIDTH)
    )
    return _spec(chart, "Broken rules by column")


def distribution_chart(column: str, dist: dict[str, Any]) -> Spec:
    """A profiled column: a histogram, a timeline per day, or its top values."""
    if dist["kind"] == "histogram":
        chart = (
            alt.Chart(_data(dist["bins"]))
            .mark_bar()
            .encode(
                x=alt.X("start:Q", bin="binned", title=column),
                x2="stop:Q",
                y=alt.Y("rows:Q", title="rows"),
                tooltip=["start:Q", "stop:Q", alt.Tooltip("rows:Q", format=",")],
            )
        )
    elif dist["kind"] == "timeline":
        chart = (
            alt.Chart(_data(dist["bins"]))
            .mark_area(line=True)
            .encode(
                x=alt.X("start:T", title=f"{column} (per day)"),
                y=alt.Y("rows:Q", title="rows"),
                tooltip=["start:T", alt.Tooltip("rows:Q", format=",")],
            )
        )
    else:
        chart = (
            alt.Chart(_data(dist["values"]))
            .mark_bar()
            .encode(
                y=alt.Y("value:N", sort="-x", title=column),
                x=alt.X("rows:Q", title="rows"),
                tooltip=["value:N", alt.Tooltip("rows:Q", format=",")],
            )
        )
    return _spec(chart.properties(width=WIDTH, height=140))


def _kind_of(rows: list[dict[str, Any]], column: str) -> str:
    """The Vega-Lite type of a column from its first non-null value."""
    for row in rows:
        value = row.get(column)
        if value is None:
            continue
        if isinstance(value, bool):
            return "N"
        if isinstance(value, int | float):
            return "Q"
        if isinstance(value, str) and len(value) >= 10 and value[4:5] == "-" and value[7:8] == "-":
            return "T"
        return "N"
    return "N"


def declared_chart(chart: ChartConfig, rows: list[dict[str, Any]]) -> Spec:
    """A chart of ``present.charts`` over its query's rows."""
    title: Any = chart.title or chart.name
    if chart.description:
        title = alt.TitleParams(title, subtitle=chart.description)
    base = alt.Chart(_data(rows))
    if chart.kind == "kpi":
        assert chart.y is not None
        value = rows[0].get(chart.y) if rows else None
        text = "-" if value is None else f"{value:,}" if isinstance(value, int | float) else value
        spec = (
            alt.Chart(_data([{"text": str(text)}]))
            .mark_text(fontSize=42, fontWeight="bold")
            .encode(text="text:N")
            .properties(width=WIDTH, height=80)
        )
        return _spec(spec, title)
    if chart.kind == "table":
        columns = list(chart.columns or (rows[0].keys() if rows else ()))
        shown = [{"_row": i, **{c: r.get(c) for c in columns}} for i, r in enumerate(rows[:50])]
        spec = (
            alt.Chart(_data(shown))
            .transform_fold(list[Any](columns), as_=["column", "cell"])
            .mark_text(align="left")
            .encode(
                x=alt.X(
                    "column:N", sort=columns, axis=alt.Axis(orient="top", labelAngle=0), title=None
                ),
                y=alt.Y("_row:O", axis=None),
                text="cell:N",
            )
            .properties(width=WIDTH)
        )
        return _spec(spec, title)
    assert chart.x is not None
    assert chart.y is not None
    x_type, y_type = _kind_of(rows, chart.x), _kind_of(rows, chart.y)
    tooltip: list[Any] = [f"{chart.x}:{x_type}", f"{chart.y}:{y_type}"]
    color: Any = alt.Undefined
    if chart.color is not None:
        color = alt.Color(f"{chart.color}:{_kind_of(rows, chart.color)}")
        tooltip.append(f"{chart.color}:N")
    if chart.kind in ("pie", "donut"):
        spec = base.mark_arc(innerRadius=50 if chart.kind == "donut" else 0).encode(
            theta=alt.Theta(f"{chart.y}:Q", stack=True),
            color=alt.Color(f"{chart.x}:N", title=chart.x),
            tooltip=tooltip,
        )
        return _spec(spec.properties(width=WIDTH, height=HEIGHT), title)
    marks = {
        "bar": base.mark_bar(),
        "line": base.mark_line(point=True),
        "area": base.mark_area(opacity=0.8),
        "scatter": base.mark_point(filled=True),
    }
    x = alt.X(f"{chart.x}:{x_type}", title=chart.x)
    if chart.kind == "bar" and x_type == "N":
        # the query's own order when it has one (months, ranks), else the tallest first
        ordered = re.search(r"\border\s+by\b", chart.sql, re.IGNORECASE) is not None
        x = alt.X(f"{chart.x}:N", title=chart.x, sort=None if ordered else "-y")
    spec = marks[chart.kind].encode(
        x=x, y=alt.Y(f"{chart.y}:{y_type}", title=chart.y), color=color, tooltip=tooltip
    )
    return _spec(spec.properties(width=WIDTH, height=HEIGHT), title)


def to_svg(spec: Spec, width: int = 720) -> str:
    """The chart as SVG (vl-convert, no browser); ``width`` replaces a container width."""
    import vl_convert as vlc

    return str(vlc.vegalite_to_svg(_fixed_width(spec, width)))


def to_png(spec: Spec, width: int = 720, scale: float = 2.0) -> bytes:
    """The chart as PNG (vl-convert, no browser)."""
    import vl_convert as vlc

    return bytes(vlc.vegalite_to_png(_fixed_width(spec, width), scale=scale))


def _fixed_width(spec: Spec, width: int) -> Spec:
    if spec.get("width") == "container":
        return {**spec, "width": width}
    return spec


__all__ = [
    "by_column_chart",
    "by_rule_chart",
    "declared_chart",
    "distribution_chart",
    "ledger_chart",
    "rejects_over_time_chart",
    "throughput_chart",
    "to_png",
    "to_svg",
]
