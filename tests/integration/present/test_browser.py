"""The dashboard in a real browser (Debian's Chromium through Playwright) with every
request off 127.0.0.1 blocked: each page loads clean and draws its charts from the app's
own scripts, the figures equal DuckDB's count over the lake, filters narrow the rejected
records, and a token keeps strangers out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import uvicorn
from deltalake import DeltaTable
from pydantic import SecretStr

from dataplump.config import PipelineConfig
from dataplump.present.app import create_app
from dataplump.present.data import DashboardData
from dataplump.services.kafka import free_port
from dataplump.sinks.delta import read_delta
from tests.integration.present.conftest import ShopLake
from tests.support.browser import CHROMIUM, browser_page

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


TOKEN = "browser-token-5150"


def serve(config: PipelineConfig, bootstrap: str) -> Iterator[str]:
    source = DashboardData(config, bootstrap, refresh_seconds=3600)
    source.refresh()  # with the ledger
    app = create_app(config, source)
    port = free_port()
    serving = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=serving.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not serving.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert serving.started
    yield f"http://127.0.0.1:{port}"
    serving.should_exit = True
    thread.join(10)


@pytest.fixture
def server(shop_lake: ShopLake) -> Iterator[str]:
    yield from serve(shop_lake.config(), shop_lake.bootstrap)


@pytest.fixture
def guarded(shop_lake: ShopLake) -> Iterator[str]:
    config = shop_lake.config()
    present = config.present.model_copy(update={"auth_token": SecretStr(TOKEN)})
    yield from serve(config.model_copy(update={"present": present}), shop_lake.bootstrap)


def lake_counts(shop_lake: ShopLake) -> dict[str, dict[str, int]]:
    """Per table: rows curated, dead-lettered and failed — DuckDB's count over the lake."""
    config = shop_lake.config()
    lake = Path(str(config.sinks["lake"].path))
    counts: dict[str, dict[str, int]] = {t: {} for t in config.tables}
    with duckdb.connect() as db:
        for name in (*config.tables, "_dlq", "_failed"):
            db.register(f"lake_{name}", read_delta(DeltaTable(str(lake / name))))
        for table in config.tables:
            found = db.execute(f"SELECT count(*) FROM lake_{table}").fetchone()  # noqa: S608
            assert found is not None
            counts[table]["curated"] = found[0]
        for store in ("_dlq", "_failed"):
            query = f'SELECT "table", count(*) FROM lake_{store} GROUP BY 1'  # noqa: S608
            for table, n in db.execute(query).fetchall():
                counts[table][store] = n
    return counts


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_overview_draws_its_charts_offline(server: str) -> None:
    with browser_page(server + "/") as (page, problems):
        started = time.monotonic()
        page.goto(server + "/")
        page.wait_for_selector("#chart-ledger[data-rendered=true] svg", timeout=60_000)
        page.wait_for_selector("#chart-throughput[data-rendered=true] svg", timeout=60_000)
        print(f"\noverview drawn in {time.monotonic() - started:.2f}s")
        assert page.locator(".vega-embed svg").count() >= 2
        assert "balanced" in page.locator(".cards").inner_text()
        assert page.locator("#tables tbody tr").count() == 4
        page.goto(server + "/data")
        page.wait_for_selector(".chart[data-rendered=true] svg", timeout=60_000)
        assert page.locator(".warning").count() > 0  # charts over tables with incidents
    assert problems == []


PAGES = ["/", "/quality", "/quality?store=failed", "/data", "/data?table=customers", "/alerts"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_every_page_loads_clean_and_draws_its_charts(server: str) -> None:
    with browser_page(server + "/") as (page, problems):
        for path in PAGES:
            page.goto(server + path)
            page.wait_for_load_state("networkidle")
            charts = page.locator(".chart")
            for i in range(charts.count()):
                charts.nth(i).locator("svg").first.wait_for(timeout=60_000)
            assert page.locator(".chart-error").count() == 0, path
            assert page.locator(".chart[data-rendered=true]").count() == charts.count(), path
            assert charts.count() > 0 or path == "/alerts", path
    assert problems == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_overview_shows_what_duckdb_counts_in_the_lake(
    server: str, shop_lake: ShopLake
) -> None:
    expected = lake_counts(shop_lake)
    with browser_page(server + "/") as (page, problems):
        page.goto(server + "/")
        rows = page.locator("#tables tbody tr")
        shown = {}
        for i in range(rows.count()):
            cells = [c.replace(",", "") for c in rows.nth(i).locator("td").all_inner_texts()]
            dlq, failed, curated = int(cells[3]), int(cells[4]), int(cells[6])
            shown[cells[0]] = {"_dlq": dlq, "_failed": failed, "curated": curated}
    assert problems == []
    assert shown == {
        t: {"_dlq": c.get("_dlq", 0), "_failed": c.get("_failed", 0), "curated": c["curated"]}
        for t, c in expected.items()
    }


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_quality_filters_narrow_the_rejected_records(server: str, shop_lake: ShopLake) -> None:
    expected = lake_counts(shop_lake)
    with browser_page(server + "/") as (page, problems):
        page.goto(server + "/quality")
        every = sum(c.get("_dlq", 0) + c.get("_failed", 0) for c in expected.values())
        assert f"({every:,} match)" in page.locator("h2").first.inner_text()
        page.select_option("select[name=table]", "orders")
        page.select_option("select[name=store]", "dlq")
        page.click("button[type=submit]")
        page.wait_for_url("**/quality?*table=orders*")
        assert f"({expected['orders']['_dlq']:,} match)" in page.locator("h2").first.inner_text()
        tables = set(page.locator("#rejected tbody tr td:nth-child(2)").all_inner_texts())
        stores = set(page.locator("#rejected tbody tr td:nth-child(3)").all_inner_texts())
        assert (tables, stores) == ({"orders"}, {"dlq"})
        key = page.locator("#rejected tbody tr td:nth-child(4)").first.inner_text()
        page.fill("input[name=q]", key)
        page.click("button[type=submit]")
        page.wait_for_url("**q=*")
        assert page.locator("#rejected tbody tr").count() >= 1
        assert key in page.locator("#rejected tbody tr td:nth-child(4)").first.inner_text()
    assert every > 0
    assert problems == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_the_token_keeps_every_page_and_the_api_closed(guarded: str) -> None:
    with browser_page(guarded + "/") as (page, problems):
        for path in ("/", "/quality", "/data", "/alerts"):
            page.goto(guarded + path)
            assert "/login" in page.url, path
        answer = page.request.get(guarded + "/api/overview")
        assert answer.status == 401
        page.fill("#token", "not-the-token")
        page.click("button[type=submit]")
        assert "That token is not right." in page.content()
        page.goto(guarded + "/login?next=/quality")
        page.fill("#token", TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(guarded + "/quality")
        assert page.request.get(guarded + "/api/overview").status == 200
        assert TOKEN not in "".join(c["value"] for c in page.context.cookies())
    # the refusals above (the API's, the wrong token's page) are the only problems
    assert [p for p in problems if "401" not in p] == []
