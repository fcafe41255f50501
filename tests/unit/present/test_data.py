"""Dashboard queries over a snapshot built in memory."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from dataplump.config.models import ChartConfig
from dataplump.present import data
from dataplump.present.data import DashboardData, DashboardError
from tests.unit.present.frames import NOW, alert, config, snapshot


def test_rejected_counts_per_table_and_store() -> None:
    assert data.rejected_counts(snapshot()) == {
        "orders": {"invalid": 2, "failed": 1},
        "customers": {"invalid": 1},
    }


def test_overview_without_ledger_counts_from_the_lake() -> None:
    over = data.overview(snapshot(), config(), NOW)
    orders = over["tables"]["orders"]
    assert orders["curated_rows"] == 10
    assert (orders["in_dlq"], orders["in_failed"]) == (2, 1)
    assert orders["extracted"] is None
    assert orders["gap"] is None
    assert orders["quarantined_share"] == round(3 / 13, 4)
    assert orders["age_seconds"] == 600.0  # the newest _dp_extracted_at is 10 minutes old
    assert orders["open_incidents"] == 1
    assert over["tables"]["products"]["curated_rows"] == 0
    assert over["tables"]["products"]["age_seconds"] is None
    assert over["ledger_ok"] is None
    assert over["last_runs"]["extract"]["status"] == "failed"  # the newest extract run
    assert over["last_runs"]["extract"]["runs"] == 2


def test_overview_with_ledger_flags_a_gap() -> None:
    shot = snapshot()
    figures = {
        "read": 14, "valid": 12, "invalid": 2, "failed": 1, "filtered_total": 0, "loaded": 10,
        "in_flight_total": 0, "gap": 1, "in_dlq": 2, "in_failed": 1,
        "lag": {"transform": 0, "load": 3},
    }  # fmt: skip
    shot.ledger = {"orders": figures}
    over = data.overview(shot, config(), NOW)
    assert over["ledger_ok"] is False
    assert over["tables"]["orders"]["gap"] == 1
    assert over["tables"]["orders"]["lag"] == {"transform": 0, "load": 3}


def test_incidents_split_on_silence_and_resolve() -> None:
    events = [
        alert("orders", NOW - timedelta(hours=5), NOW - timedelta(hours=5), 3),
        alert(
            "orders", NOW - timedelta(hours=4, minutes=50), NOW - timedelta(hours=4, minutes=50), 2
        ),
        alert("orders", NOW - timedelta(minutes=10), NOW - timedelta(minutes=5), 7),
        alert("customers", NOW - timedelta(minutes=1), NOW, 1, fp="f2"),
    ]
    found = data.incidents(snapshot(events), resolve_after=3600, now=NOW)
    assert [(i["table"], i["status"], i["count"], i["events"]) for i in found] == [
        ("customers", "open", 1, 1),
        ("orders", "open", 7, 1),
        ("orders", "resolved", 5, 2),
    ]
    assert found[2]["resolved_at"] is not None


def test_no_alerts_no_incidents() -> None:
    assert data.incidents(snapshot([]), resolve_after=3600, now=NOW) == []


def test_rejects_by_rule_counts_each_broken_rule() -> None:
    by_rule = {
        (r["rule"], r["table"], r["store"]): r["records"] for r in data.rejects_by_rule(snapshot())
    }
    assert by_rule == {
        ("min(amount)", "orders", "dlq"): 2,
        ("not_null(status)", "orders", "dlq"): 1,
        ("pattern(email)", "customers", "dlq"): 1,
        ("relationships(customer_id)", "orders", "failed"): 1,
    }


def test_rejects_by_column_from_reasons() -> None:
    by_column = {
        (r["table"], r["column"]): r["records"] for r in data.rejects_by_column(snapshot())
    }
    assert by_column[("orders", "amount")] == 2
    assert by_column[("orders", "status")] == 1
    assert by_column[("customers", "email")] == 1


def test_rejects_over_time_buckets() -> None:
    shot = snapshot()
    assert data.time_bucket(shot) == "1 minute"
    rows = data.rejects_over_time(shot, "1 hour")
    assert sum(r["records"] for r in rows) == 4
    with pytest.raises(DashboardError, match="unknown bucket"):
        data.rejects_over_time(shot, "1 fortnight'; DROP")


def test_rejected_records_filter_and_lineage() -> None:
    shot = snapshot()
    everything = data.rejected_records(shot)
    assert everything["total"] == 4
    newest = everything["records"][0]
    assert newest["_dp_topic"]
    assert newest["_dp_pk"]
    assert isinstance(newest["reasons"], list)
    only = data.rejected_records(shot, table="orders", store="dlq", rule="not_null(status)")
    assert only["total"] == 1
    assert only["records"][0]["rules"] == "min(amount),not_null(status)"
    assert data.rejected_records(shot, search="'; select")["total"] == 0
    page = data.rejected_records(shot, limit=1, offset=1)
    assert page["total"] == 4
    assert len(page["records"]) == 1


def test_profile_counts_nulls_distinct_and_distributions() -> None:
    found = data.profile(snapshot(), "orders")
    assert found["rows"] == 10
    columns = {c["column"]: c for c in found["columns"]}
    assert columns["status"]["nulls"] == 1
    assert columns["status"]["distinct"] == 2  # paid, new (null is not a value)
    assert columns["id"]["distinct"] == 10
    assert columns["_dp_offset"]["lineage"] is True
    dists = found["distributions"]
    assert "_dp_offset" not in dists
    assert dists["amount"]["kind"] == "histogram"
    assert sum(b["rows"] for b in dists["amount"]["bins"]) == 10
    assert dists["ordered_at"]["kind"] == "timeline"
    assert dists["status"]["values"][0] == {"value": "paid", "rows": 6}
    assert data.profile(snapshot(), "products")["rows"] == 0
    with pytest.raises(DashboardError):
        data.profile(snapshot(), "nope")


def test_chart_rows_and_errors() -> None:
    chart = ChartConfig(
        name="by_status",
        sql="SELECT status, count(*) AS n FROM orders GROUP BY ALL ORDER BY n DESC",
        kind="bar",
        x="status",
        y="n",
    )
    rows = data.chart_rows(snapshot(), chart)
    assert rows[0] == {"status": "paid", "n": 6}
    wrong = chart.model_copy(update={"y": "count"})
    with pytest.raises(DashboardError, match="not a column of its query"):
        data.chart_rows(snapshot(), wrong)
    broken = chart.model_copy(update={"sql": "SELECT nope FROM orders"})
    with pytest.raises(DashboardError, match="its SQL failed"):
        data.chart_rows(snapshot(), broken)
    assert data.chart_tables(chart, ["orders", "customers"]) == ["orders"]


def test_the_tables_of_a_chart_are_the_ones_its_sql_reads() -> None:
    def tables(sql: str) -> list[str]:
        chart = ChartConfig(name="c", sql=sql, kind="table")
        return data.chart_tables(chart, ["orders", "customers", "status"])

    assert tables("SELECT status, count(*) AS orders FROM orders GROUP BY status") == ["orders"]
    joined = "SELECT c.country, sum(o.amount) FROM orders o JOIN customers c ON c.id = o.cid"
    assert tables(joined) == ["orders", "customers"]
    assert tables("WITH s AS (SELECT * FROM customers) SELECT * FROM s") == ["customers"]
    assert tables("SELECT 'orders' AS label") == []


def test_chart_sql_cannot_read_files_or_change_settings() -> None:
    for sql in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM (SET enable_external_access = true)",
    ):
        chart = ChartConfig(name="evil", sql=sql, kind="table")
        with pytest.raises(DashboardError):
            data.chart_rows(snapshot(), chart)


def test_warnings_for_open_incidents_and_quarantine() -> None:
    over = data.overview(snapshot(), config(), NOW)
    warnings = data.warnings_for(["orders"], over, 0.05)
    assert any("open incident" in w for w in warnings)
    assert any("quarantined" in w for w in warnings)
    assert data.warnings_for(["orders"], over, 0.5) == ["`orders` has 1 open incident"]


def test_dashboard_data_reads_without_ledger_first_then_refreshes() -> None:
    reads: list[bool] = []

    def reader(ledger: bool) -> data.Snapshot:
        reads.append(ledger)
        return snapshot()

    source = DashboardData(config(), None, refresh_seconds=3600, reader=reader)
    first = source.snapshot()
    assert reads[0] is False
    deadline = time.monotonic() + 10
    while source.snapshot() is first and time.monotonic() < deadline:  # the background read
        time.sleep(0.01)
    assert reads == [False, True]
    assert source.snapshot() is not first
    source.snapshot()
    assert len(reads) == 2  # fresh now: no more reads


def test_snapshot_memo_computes_once() -> None:
    shot = snapshot()
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return 40 + len(calls)

    assert shot.memo("k", compute) == 41
    assert shot.memo("k", compute) == 41
    assert calls == [1]
