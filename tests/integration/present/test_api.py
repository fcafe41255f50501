"""The JSON API over a lake the real pipeline wrote: every figure is the manifest's."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from fastapi.testclient import TestClient

from dataplump.present.app import create_app
from dataplump.present.data import DashboardData
from tests.integration.present.conftest import ShopLake

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def api(shop_lake: ShopLake) -> TestClient:
    config = shop_lake.config()
    source = DashboardData(config, shop_lake.bootstrap, refresh_seconds=3600)
    started = time.monotonic()
    shot = source.refresh()  # with the ledger, read from Kafka
    print(
        f"\nlake and ledger read in {time.monotonic() - started:.2f}s (lake {shot.read_seconds}s)"
    )
    assert shot.ledger_error is None
    return TestClient(create_app(config, source))


def timed(api: TestClient, path: str, **params: str) -> dict:  # type: ignore[type-arg]
    started = time.monotonic()
    response = api.get(path, params=params)
    print(f"{path}: {(time.monotonic() - started) * 1000:.0f} ms, {len(response.content):,} B")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_overview_accounts_for_every_row(api: TestClient, shop_lake: ShopLake) -> None:
    over = timed(api, "/api/overview")
    assert over["ledger_ok"] is True
    for name, table in shop_lake.manifest.tables.items():
        row = over["tables"][name]
        assert row["extracted"] == table.rows, name
        assert row["in_dlq"] == table.rows_to("dlq"), name
        assert row["in_failed"] == table.rows_to("failed"), name
        assert row["loaded"] == row["curated_rows"] == table.curated, name
        assert row["gap"] == 0, name
        assert row["lag"] == {"transform": 0, "load": 0}, name
        assert row["age_seconds"] is not None
        assert 0 <= row["age_seconds"] < 3600
    assert {"extract", "transform"} <= set(over["last_runs"])
    assert over["open_incidents"] > 0


def test_quality_counts_every_fault_under_its_rule(api: TestClient, shop_lake: ShopLake) -> None:
    quality = timed(api, "/api/quality")
    found = Counter()  # type: ignore[var-annotated]
    for row in quality["by_rule"]:
        found[(row["table"], row["store"], row["rule"])] += row["records"]
    expected = Counter()  # type: ignore[var-annotated]
    for name, table in shop_lake.manifest.tables.items():
        for store in ("dlq", "failed"):
            for rule, n in table.by_rule(store).items():
                expected[(name, store, rule)] += n
    assert found == expected
    assert sum(r["records"] for r in quality["over_time"]) == sum(expected.values())
    assert quality["by_column"]


def test_rejected_records_carry_reasons_and_lineage(api: TestClient, shop_lake: ShopLake) -> None:
    orders = shop_lake.manifest.tables["orders"]
    body = timed(api, "/api/rejected", table="orders", rule="not_null(customer_id)", limit="5")
    assert body["total"] == orders.by_rule("dlq")["not_null(customer_id)"]
    record = body["records"][0]
    assert record["reasons"][0]["rule"] == "not_null"
    assert record["reasons"][0]["column"] == "customer_id"
    assert record["_dp_source"] == "orders"
    assert record["_dp_topic"].endswith(".orders.dlq")
    assert record["_dp_pk"] == record["key"]


def test_incidents_from_alerts(api: TestClient) -> None:
    incidents = timed(api, "/api/incidents", status="open")["incidents"]
    assert {i["table"] for i in incidents} == {"customers", "products", "orders", "order_items"}
    assert all(i["count"] > 0 for i in incidents)
    # the notifier's own state, read from Kafka: its log channel told each open incident
    assert {i["delivery"] for i in incidents} == {"log: delivered"}, incidents
    by_table = {i["table"]: i for i in incidents}
    assert by_table["orders"]["charts"] == ["orders_by_status"]
    assert by_table["customers"]["charts"] == ["customers"]


def test_declared_charts_and_warnings(api: TestClient, shop_lake: ShopLake) -> None:
    charts = {c["name"]: c for c in timed(api, "/api/charts")["charts"]}
    assert set(charts) == {"orders_by_status", "revenue_by_category", "customers"}
    for chart in charts.values():
        assert chart["error"] is None, chart
        assert chart["spec"]["data"]["values"]
    statuses = {r["status"] for r in charts["orders_by_status"]["rows"]}
    assert statuses <= {"new", "paid", "shipped", "delivered", "cancelled", "returned"}
    expected = shop_lake.manifest.tables["customers"].curated
    assert charts["customers"]["rows"] == [{"customers": expected}]
    assert any("open incident" in w for w in charts["orders_by_status"]["warnings"])
    # order_items sends about 5% of its rows away: above the 4% of this pipeline file
    assert any("quarantined" in w for w in charts["revenue_by_category"]["warnings"])


def test_profile_of_each_table(api: TestClient, shop_lake: ShopLake) -> None:
    for name, table in shop_lake.manifest.tables.items():
        profile = timed(api, f"/api/profile/{name}")
        assert profile["rows"] == table.curated
        columns = {c["column"]: c for c in profile["columns"]}
        assert columns["id"]["nulls"] == 0
        assert "_dp_extracted_at" in columns
        assert profile["distributions"]


def test_pages(api: TestClient) -> None:
    for path in ("/", "/quality", "/data", "/alerts", "/data?table=order_items"):
        started = time.monotonic()
        response = api.get(path)
        print(f"page {path}: {(time.monotonic() - started) * 1000:.0f} ms")
        assert response.status_code == 200
        assert "vega.js" in response.text
