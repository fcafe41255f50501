"""The overview in a real browser (Debian's Chromium through Playwright) with every
request off 127.0.0.1 blocked: the charts are drawn from the app's own scripts."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from dataplump.present.app import create_app
from dataplump.present.data import DashboardData
from dataplump.services.kafka import free_port
from tests.integration.present.conftest import ShopLake

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def server(shop_lake: ShopLake) -> Iterator[str]:
    config = shop_lake.config()
    source = DashboardData(config, shop_lake.bootstrap, refresh_seconds=3600)
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


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_overview_draws_its_charts_offline(server: str) -> None:
    from playwright.sync_api import Route, sync_playwright

    blocked: list[str] = []
    problems: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(server + "/"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_local)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on(
                "console",
                lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
            )
            started = time.monotonic()
            page.goto(server + "/")
            page.wait_for_selector("#chart-ledger[data-rendered=true] svg", timeout=60_000)
            page.wait_for_selector("#chart-throughput[data-rendered=true] svg", timeout=60_000)
            print(f"\noverview drawn in {time.monotonic() - started:.2f}s")
            assert page.locator(".vega-embed svg").count() >= 2
            assert page.locator(".chart-error").count() == 0
            assert "balanced" in page.locator(".cards").inner_text()
            assert page.locator("#tables tbody tr").count() == 4
            page.goto(server + "/data")
            page.wait_for_selector(".chart[data-rendered=true] svg", timeout=60_000)
            assert page.locator(".warning").count() > 0  # charts over tables with incidents
        finally:
            browser.close()
    assert problems == []
    assert blocked == []
