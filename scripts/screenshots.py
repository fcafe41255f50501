"""The README's pictures: every dashboard page and the PDF report's first page, of a demo.

    .venv/bin/python scripts/screenshots.py [--demo-dir DIR] [--out docs/img]

Runs `dataplump demo --no-serve` in DIR (unless DIR holds a finished demo), starts the
demo's broker and `dataplump serve`, photographs each page in Debian's headless Chromium
(Playwright), renders the report's first page with `pdftoppm` (poppler-utils), and stops
what it started.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
MAX_HEIGHT = 1600
"""Pixels of a page photographed at most (the quality page's table runs long)."""
PAGES = {"overview": "/", "quality": "/quality", "data": "/data", "alerts": "/alerts"}


def dataplump(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "dataplump", *args], cwd=cwd, check=True)


def wait_healthy(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(base + "/api/health", timeout=5) as answer:  # noqa: S310
                if json.load(answer).get("ok"):
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.5)


def photograph(base: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, path in PAGES.items():
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                if page.locator(".chart").count():
                    page.wait_for_selector(".chart[data-rendered=true] svg", timeout=60_000)
                target = out / f"dashboard-{name}.png"
                height = min(page.evaluate("document.body.scrollHeight"), MAX_HEIGHT)
                clip = {"x": 0, "y": 0, "width": 1280, "height": height}
                page.screenshot(path=str(target), full_page=True, clip=clip)
                print(f"wrote {target}")
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, default=ROOT / ".dataplump" / "screenshots")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--port", type=int, default=8057)
    args = parser.parse_args()
    demo: Path = args.demo_dir.resolve()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not (demo / "report.pdf").is_file():
        demo.parent.mkdir(parents=True, exist_ok=True)
        dataplump("demo", "--no-serve", "--dir", str(demo), cwd=demo.parent)
    config = str(demo / "dataplump.yaml")
    dataplump("kafka", "up", "-c", config, cwd=demo)
    server = subprocess.Popen(
        [sys.executable, "-m", "dataplump", "serve", "-c", config, "--port", str(args.port)],
        cwd=demo,
    )
    base = f"http://127.0.0.1:{args.port}"
    try:
        wait_healthy(base)
        refresh = urllib.request.Request(base + "/api/refresh", method="POST")  # noqa: S310
        urllib.request.urlopen(refresh, timeout=120).close()  # noqa: S310 - the ledger too
        photograph(base, out)
    finally:
        server.terminate()
        server.wait(30)
        dataplump("kafka", "down", "-c", config, cwd=demo)
    first_page = out / "report-page1"
    subprocess.run(
        ["pdftoppm", "-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile",
         str(demo / "report.pdf"), str(first_page)],
        check=True,
    )  # fmt: skip
    print(f"wrote {first_page}.png")


if __name__ == "__main__":
    main()
