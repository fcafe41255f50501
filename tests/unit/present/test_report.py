"""Reports over a snapshot built in the test: every figure against an independent count
of the same frames (polars filters), the period arithmetic, the three formats, secrets."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest

from dataplump.config import PipelineConfig
from dataplump.present import report_render
from dataplump.present.data import Snapshot
from dataplump.present.report import (
    Figure,
    Period,
    ReportInputError,
    build_report,
    output_path,
    parse_time,
    resolve_period,
    scrub,
    secret_values,
    write_report,
)

NOW = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
DAY = Period(NOW - timedelta(days=1), NOW)
SECRET = "pl4nted-s3cret-Tok3n"
HOUR = timedelta(hours=1)


def _lineage(table: str, times: list[datetime], start: int = 0) -> dict[str, Any]:
    n = len(times)
    return {
        "_dp_source": [table] * n,
        "_dp_pk": [orjson.dumps({"id": start + i}).decode() for i in range(n)],
        "_dp_extracted_at": times,
        "_dp_run": ["r"] * n,
        "_dp_topic": [f"shop.{table}.processed"] * n,
        "_dp_partition": [0] * n,
        "_dp_offset": list(range(start, start + n)),
    }


def _rejects(table: str, rows: list[tuple[datetime, str]], stage: str) -> pl.DataFrame:
    n = len(rows)
    return pl.DataFrame(
        {
            "key": [orjson.dumps({"id": 1000 + i}).decode() for i in range(n)],
            "value": ["{}"] * n,
            "kafka_timestamp": [at for at, _ in rows],
            "stage": [stage] * n,
            "step": [None] * n,
            "rules": [rules for _, rules in rows],
            "message": ["broken"] * n,
            "reasons": ["[]"] * n,
            "contract": ["1"] * n,
            "table": [table] * n,
            **_lineage(table, [at for at, _ in rows], 1000),
        },
        schema_overrides={"kafka_timestamp": pl.Datetime("ms", "UTC"), "step": pl.String},
    )


def _run(ended: datetime, counts: dict[str, dict[str, int]], run_id: str) -> dict[str, Any]:
    return {
        "pipeline": "shop",
        "stage": "extract",
        "run_id": run_id,
        "started_at": ended - timedelta(minutes=1),
        "ended_at": ended,
        "seconds": 60.0,
        "rows": sum(c["read"] for c in counts.values()),
        "rows_per_second": 1.0,
        "counts": orjson.dumps(counts).decode(),
        "status": "ok",
        "error": None,
    }


def _alert(table: str, first: datetime, last: datetime, count: int, fp: str) -> dict[str, Any]:
    return {
        "kafka_timestamp": last, "table": table, "stage": "extract", "kind": "invalid_records",
        "rule": None, "fingerprint": fp, "count": count, "owner": "@team",
        "first_seen": first, "last_seen": last, "run_id": "r", "kept_in": f"shop.{table}.dlq",
        "message": None,
    }  # fmt: skip


def shop_snapshot() -> Snapshot:
    """Two days of a small shop: orders every hour, rejects and runs on both days."""
    order_times = [NOW - timedelta(minutes=30 + 45 * i) for i in range(70)]  # ~52 h back
    orders = pl.DataFrame(
        {
            "id": list(range(70)),
            "status": (["paid", "new", "shipped"] * 24)[:70],
            "amount": [float(i) for i in range(70)],
            **_lineage("orders", order_times),
        }
    )
    customers = pl.DataFrame(
        {"id": [1, 2, 3], **_lineage("customers", [NOW - HOUR * 30, NOW - HOUR * 2, NOW])}
    )
    dlq = pl.concat(
        [
            _rejects(
                "orders",
                [(NOW - HOUR * h, "min(amount)") for h in (1, 2, 3, 5, 8)]
                + [(NOW - HOUR * h, "min(amount),not_null(status)") for h in (4, 30)]
                + [(NOW - HOUR * 26, "not_null(status)")],
                "extract",
            ),
            _rejects("customers", [(NOW - HOUR * 3, "pattern(email)"), (NOW, "x(y)")], "extract"),
        ]
    )
    failed = _rejects(
        "orders", [(NOW - HOUR * 6, "relationships(customer_id)")] * 2, "transform"
    ).with_columns(pl.Series("key", ['{"id":7}', '{"id":8}']))
    runs = pl.DataFrame(
        [
            _run(NOW - HOUR * 2, {"orders": {"read": 12_345, "valid": 12_340, "invalid": 5}}, "a"),
            _run(NOW - HOUR * 20, {"orders": {"read": 7, "valid": 7, "invalid": 0},
                                   "customers": {"read": 2, "valid": 1, "invalid": 1}}, "b"),
            _run(NOW - HOUR * 30, {"orders": {"read": 1_000, "valid": 998, "invalid": 2}}, "c"),
            _run(NOW, {"orders": {"read": 99, "valid": 99, "invalid": 0}}, "d"),  # next period
        ]
    )  # fmt: skip
    alerts = pl.DataFrame(
        [
            _alert("orders", NOW - HOUR * 30, NOW - HOUR * 30, 1, "old"),  # resolved before
            _alert("orders", NOW - HOUR * 8, NOW - HOUR * 5, 4, "day"),  # opened+resolved in
            _alert("customers", NOW - HOUR * 3, NOW - timedelta(minutes=10), 1, "open"),
        ]
    )
    return Snapshot(
        curated={"orders": orders, "customers": customers},
        ops={"_dlq": dlq, "_failed": failed, "_alerts": alerts, "_runs": runs},
        loaded_at=NOW,
    )


def shop_config(**present: Any) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "pipeline": {"name": "shop"},
            "source": {"url": f"postgresql+psycopg://shop:{SECRET}-db@127.0.0.1/shop"},
            "tables": {"orders": {"primary_key": "id"}, "customers": {"primary_key": "id"}},
            "notify": {"channels": [{"kind": "webhook", "url": f"https://hooks.example/{SECRET}"}]},
            "present": {
                "auth_token": SECRET + "-dash",
                "charts": [
                    {"name": "by_status", "sql": "SELECT status, count(*) AS n FROM orders"
                     " GROUP BY status", "kind": "bar", "x": "status", "y": "n"},
                    {"name": "customers", "sql": "SELECT count(*) AS n FROM customers",
                     "kind": "kpi", "y": "n"},
                ],
                **present,
            },
            "sinks": {"lake": {"kind": "delta", "path": "s3://bucket/lake",
                               "s3": {"access_key_id": "AKIAEXAMPLE",
                                      "secret_access_key": SECRET + "-s3"}}},
        }
    )  # fmt: skip


def _between(frame: pl.DataFrame, column: str, period: Period) -> int:
    return frame.filter((pl.col(column) >= period.since) & (pl.col(column) < period.until)).height


def _rejected(frame: pl.DataFrame, table: str, period: Period) -> int:
    return _between(frame.filter(pl.col("table") == table), "kafka_timestamp", period)


def _extracted(runs: pl.DataFrame, table: str, period: Period) -> int:
    total = 0
    for row in runs.filter(pl.col("stage") == "extract").iter_rows(named=True):
        if period.since <= row["ended_at"] < period.until:
            total += orjson.loads(row["counts"]).get(table, {}).get("read", 0)
    return total


# --- the period ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("90m", NOW - timedelta(minutes=90)),
        ("2w", NOW - timedelta(days=14)),
        ("2026-11-20", datetime(2026, 11, 20, tzinfo=UTC)),
        ("2026-11-20T08:30", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
        ("2026-11-20 08:30:00+01:00", datetime(2026, 11, 20, 7, 30, tzinfo=UTC)),
        ("2026-11-20T08:30:00Z", datetime(2026, 11, 20, 8, 30, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, NOW) == expected


def test_parse_time_refuses_nonsense_with_the_forms() -> None:
    with pytest.raises(ReportInputError, match=r"`yesterday` is not a time: use an ISO date"):
        parse_time("yesterday", NOW)


def test_default_period_is_the_last_24_hours_and_the_previous_one_before_it() -> None:
    period = resolve_period(None, None, NOW)
    assert period == Period(NOW - timedelta(hours=24), NOW)
    assert period.previous == Period(NOW - timedelta(hours=48), NOW - timedelta(hours=24))
    assert resolve_period("7d", None, NOW).previous.since == NOW - timedelta(days=14)
    with pytest.raises(ReportInputError, match="the period is empty"):
        resolve_period("1h", "2h", NOW)


def test_period_labels_for_file_names() -> None:
    assert DAY.label == "2026-11-27"
    assert Period(NOW - timedelta(days=7), NOW).label == "2026-11-21--2026-11-27"
    assert Period(NOW - HOUR, NOW).label == "2026-11-27T2300Z--2026-11-28T0000Z"
    assert DAY.describe() == "2026-11-27 00:00 to 2026-11-28 00:00 UTC (1 day)"


def test_figure_change() -> None:
    assert Figure(1_500, 1_000).describe_change() == "+500 (+50.0%)"
    assert Figure(3, 6).describe_change() == "-3 (-50.0%)"
    assert Figure(20, 0).describe_change() == "+20 (was 0)"
    assert Figure(5, 5).describe_change() == "±0"
    assert Figure(12_345, 1_000).describe_change(short=True) == "+11,345, +1134.5%"


# --- the model -------------------------------------------------------------------------


def test_key_figures_equal_independent_counts_for_both_periods() -> None:
    shot = shop_snapshot()
    report = build_report(shop_config(), shot, DAY, now=NOW)
    dlq, failed, runs = shot.ops["_dlq"], shot.ops["_failed"], shot.ops["_runs"]
    for figures in report.figures:
        table = figures.table
        for name, period in (("value", DAY), ("previous", DAY.previous)):
            expected = {
                "extracted": _extracted(runs, table, period),
                "loaded": _between(shot.curated[table], "_dp_extracted_at", period),
                "invalid": _rejected(dlq, table, period),
                "failed": _rejected(failed, table, period),
            }
            found = {f: getattr(figures.figure(f), name) for f in expected}
            assert found == expected, (table, name)
    orders = report.figures[0]
    assert (orders.extracted.value, orders.extracted.previous) == (12_352, 1_000)
    assert (orders.invalid.value, orders.invalid.previous) == (6, 2)
    assert orders.quarantined_share == pytest.approx((6 + 2) / 12_352)
    totals = report.totals
    assert totals.extracted.value == sum(f.extracted.value for f in report.figures)
    assert totals.invalid.value == 6 + 1  # orders 6, customers 1 (the one at NOW is outside)
    assert report.figures[1].invalid.value == 1  # the reject at NOW belongs to tomorrow


def test_freshness_is_at_the_end_of_the_period() -> None:
    report = build_report(shop_config(), shop_snapshot(), DAY.previous, now=NOW)
    orders = report.figures[0]
    newest = NOW - timedelta(days=1, minutes=0)
    assert orders.newest is not None
    assert datetime.fromisoformat(orders.newest) < newest
    assert orders.age_seconds == (newest - datetime.fromisoformat(orders.newest)).total_seconds()


def test_top_reasons_with_share_of_the_tables_rejects_and_the_previous_period() -> None:
    report = build_report(shop_config(), shop_snapshot(), DAY, now=NOW)
    first = report.reasons[0]
    # orders in the day: 5 x min(amount), 1 x min+not_null (4h), 2 failed -> 8 rejected
    assert (first["rule"], first["table"], first["records"]) == ("min(amount)", "orders", 6)
    assert first["share"] == pytest.approx(6 / 8)
    assert first["previous"] == 1  # the min+not_null record 30 h back
    by_rule = {(r["rule"], r["table"]): r for r in report.reasons}
    assert by_rule[("relationships(customer_id)", "orders")]["store"] == "failed"
    assert by_rule[("not_null(status)", "orders")]["records"] == 1
    assert "Most frequent reason: `min(amount)` on orders (6 records, 75%" in report.headline[3]


def test_incidents_opened_resolved_and_open_in_the_period() -> None:
    report = build_report(shop_config(), shop_snapshot(), DAY, now=NOW)
    assert report.incident_counts == {"opened": 2, "resolved": 1, "open": 1}
    assert [(i["table"], i["status"], i["opened_in"]) for i in report.incidents] == [
        ("customers", "open", True),
        ("orders", "resolved", True),
    ]
    # no notifier state in the snapshot
    assert report.incidents[0]["delivery"] == "unknown (the notifier was not read)"
    snapshot = shop_snapshot()
    snapshot.delivery = {
        ("customers", "extract", "invalid_records", None, "open"): "email: delivered"
    }
    again = build_report(shop_config(), snapshot, DAY, now=NOW)
    assert again.incidents[0]["delivery"] == "email: delivered"
    assert again.incidents[1]["delivery"] == "done (resolved)"


def test_a_table_limits_figures_reasons_incidents_and_charts() -> None:
    report = build_report(shop_config(), shop_snapshot(), DAY, tables=["customers"], now=NOW)
    assert [f.table for f in report.figures] == ["customers"]
    assert {r["table"] for r in report.reasons} == {"customers"}
    assert [i["table"] for i in report.incidents] == ["customers"]
    assert [c["name"] for c in report.charts] == ["customers"]
    assert report.limited
    with pytest.raises(ReportInputError, match=r"no table `ordrs`.*did you mean `orders`"):
        build_report(shop_config(), shop_snapshot(), DAY, tables=["ordrs"], now=NOW)


def test_charts_carry_the_dashboards_warnings() -> None:
    report = build_report(shop_config(), shop_snapshot(), DAY, now=NOW)
    customers = next(c for c in report.charts if c["name"] == "customers")
    assert customers["error"] is None
    assert any("open incident" in w for w in customers["warnings"])
    assert any("quarantined" in w for w in customers["warnings"])  # 3 of 6 rows rejected


def test_ledger_missing_is_said_and_a_gap_is_named() -> None:
    shot = shop_snapshot()
    shot.ledger_error = "Kafka at 127.0.0.1:9 does not answer; this report is from the lake alone"
    report = build_report(shop_config(), shot, DAY, now=NOW)
    assert report.ledger_ok is None
    assert report.headline[1].startswith("Ledger missing: Kafka at 127.0.0.1:9 does not answer")
    shot = shop_snapshot()
    entry = {"read": 10, "valid": 9, "invalid": 1, "failed": 1, "loaded": 7, "in_dlq": 1,
             "in_failed": 1, "filtered_total": 0, "in_flight_total": 0, "gap": 0}  # fmt: skip
    shot.ledger = {"orders": entry | {"gap": 1}, "customers": entry}
    report = build_report(shop_config(), shot, DAY, now=NOW)
    assert report.ledger_ok is False
    assert report.totals.ledger is not None
    assert report.totals.ledger["read"] == 20
    assert "rows unaccounted for in orders +1" in report.headline[1]


# --- rendering -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report of DAY in every format (rendering charts takes a second or two)."""
    folder = tmp_path_factory.mktemp("report")
    config, shot = shop_config(), shop_snapshot()
    shot.ledger_error = f"could not reach https://hooks.example/{SECRET}"  # a planted secret
    shot.errors = {"orders_archive": f"postgresql://shop:{SECRET}-db@db/x: refused"}
    paths = {
        fmt: write_report(config, folder / f"r.{fmt}", None, DAY.since, DAY.until, None, shot)
        for fmt in ("html", "pdf", "md")
    }
    return {"paths": paths, "folder": folder}


def test_html_is_one_self_contained_file(rendered: dict[str, Any]) -> None:
    html = rendered["paths"]["html"].read_text()
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?(?:https?:)?//|@import""", html, re.I)
    assert "<script" not in html.lower()
    assert html.count("<svg") == 2  # both declared charts, inline
    assert 'data-figure="orders.extracted">12,352' in html  # thousands separators
    assert "+11,352 (+1135.2%)" in html
    assert "min(amount)" in html
    assert "75.0%" in html


def test_pdf_is_paginated_and_holds_the_same_figures(rendered: dict[str, Any]) -> None:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(rendered["paths"]["pdf"].read_bytes()))
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 2  # the charts start on a page of their own
    assert all(f"page {i} of {len(pages)}" in text for i, text in enumerate(pages, 1))
    text = " ".join(" ".join(pages).split())
    for expected in ("12,352", "+11,352 (+1135.2%)", "min(amount)", "75.0%", "Key figures",
                     "relationships(customer_id)", "Charts", "Ledger missing"):  # fmt: skip
        assert expected in text, expected
    assert reader.pages[0].mediabox.width == pytest.approx(595.28, abs=1)  # A4


def test_markdown_links_its_charts_as_png_files_beside_it(rendered: dict[str, Any]) -> None:
    md = rendered["paths"]["md"].read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links == ["r_files/by_status.png", "r_files/customers.png"]
    for link in links:
        assert (rendered["folder"] / link).read_bytes().startswith(b"\x89PNG")
    assert "| orders | 12,352 (+11,352, +1135.2%) |" in md
    assert "| `min(amount)` | orders | dead-letter | 6 | 75.0% | 1 |" in md
    assert "> ⚠ `customers` has 1 open incident" in md


def test_no_secret_in_any_format(rendered: dict[str, Any]) -> None:
    from pypdf import PdfReader

    texts = [rendered["paths"][f].read_text() for f in ("html", "md")]
    texts.append(" ".join(p.extract_text() for p in PdfReader(rendered["paths"]["pdf"]).pages))
    for text in texts:
        assert SECRET not in text
        assert "***" in text  # where the planted secret was
    assert SECRET not in rendered["paths"]["pdf"].read_bytes().decode("latin-1")


def test_secret_values_of_the_config() -> None:
    found = secret_values(shop_config())
    assert f"{SECRET}-dash" in found  # present.auth_token
    assert f"{SECRET}-db" in found  # the source URL's password
    assert f"{SECRET}-s3" in found  # S3 secret key
    assert f"https://hooks.example/{SECRET}" in found
    assert SECRET in found
    assert (
        scrub(f"token {SECRET}-dash and https://u:pw@h/x", found)
        == "token *** and https://u:***@h/x"
    )


def test_output_path_and_format() -> None:
    assert output_path(None, "md") == (Path("report.md"), "md")
    assert output_path(None, None) == (Path("report.pdf"), "pdf")
    assert output_path("out/week.HTML", None) == (Path("out/week.HTML"), "html")
    with pytest.raises(ReportInputError, match=r"cannot tell the format from `x\.txt`"):
        output_path("x.txt", None)
    with pytest.raises(ReportInputError, match="unknown format `doc`"):
        output_path("x.txt", "doc")


def test_unwritable_paths_fail_with_one_line(tmp_path: Path) -> None:
    config, shot = shop_config(), shop_snapshot()
    with pytest.raises(ReportInputError, match="no folder"):
        write_report(config, tmp_path / "missing" / "r.html", snapshot=shot, now=NOW)
    with pytest.raises(ReportInputError, match="it is a folder"):
        write_report(config, tmp_path, "html", snapshot=shot, now=NOW)


def test_a_chart_that_cannot_be_drawn_shows_its_error() -> None:
    report = build_report(shop_config(), shop_snapshot(), DAY, now=NOW)
    report.charts[0]["spec"] = {"mark": "nonsense"}
    html = report_render.render_html(report)
    assert "chart `by_status` could not be drawn" in html
