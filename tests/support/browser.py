"""A real browser for tests: Debian's Chromium driven by Playwright (a browser download
is not possible here), every request off the page's origin refused and every problem
collected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def browser_page(allowed: str) -> Iterator[tuple[Page, list[str]]]:
    """A page in Debian's headless Chromium whose requests to anything not starting with
    ``allowed`` are refused; the list collects every problem: such requests, console
    errors, page errors, failed requests, answers of 400 and above."""
    from playwright.sync_api import Route, sync_playwright

    problems: list[str] = []

    def only_local(route: Route) -> None:
        if route.request.url.startswith(allowed):
            route.continue_()
        else:
            problems.append(f"request off the app: {route.request.url}")
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page()
            page.route("**/*", only_local)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
            )
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on(
                "response",
                lambda r: problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None,
            )
            yield page, problems
        finally:
            browser.close()
