"""`dataplump report` as a command over the lake the real pipeline wrote (the sample shop,
`run --once` on the session's Kafka): HTML, PDF and Markdown of one chosen period, every
key figure equal to the manifest's and the ops tables' counts, the PDF paginated with the
HTML's figures and reasons in its text, the HTML drawn by Chromium with nothing fetched,
no planted secret anywhere, and Kafka down said in one line."""

from __future__ import annotations

import html as html_lib
import re
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dataplump.services.kafka import free_port
from dataplump.sinks.read import read_table
from tests.integration.present.conftest import ShopLake
from tests.support.browser import CHROMIUM, browser_page
from tests.support.cli import run_command

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

SECRET = "planted-S3cret-4-report"
FIGURE = re.compile(r'data-figure="([^"]+)\.(\w+)">([\d,]+)')
NAMES = ("extracted", "loaded", "invalid", "failed")


def _text(fragment: str) -> str:
    """The text of an HTML fragment, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


@pytest.fixture(scope="module")
def reports(shop_lake: ShopLake, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The report of [start of the run - 1 h, now + 1 min) in each format, made by the CLI
    with a secret planted as the dashboard token and in a chart's description."""
    folder = tmp_path_factory.mktemp("reports")
    text = shop_lake.config_file.read_text()
    text = text.replace("present:\n", "present:\n  auth_token: ${DASH_TOKEN}\n", 1)
    text = text.replace(
        "      kind: donut\n", "      kind: donut\n      description: 'token ${DASH_TOKEN}'\n", 1
    )
    config_file = shop_lake.config_file.with_name("report.yaml")
    config_file.write_text(text)
    config = shop_lake.config()
    runs = read_table(config.ops_sink[1], "_runs")
    started = runs["started_at"].min()
    assert isinstance(started, datetime)
    since = (started - timedelta(hours=1)).replace(microsecond=0)
    until = (datetime.now(UTC) + timedelta(minutes=1)).replace(microsecond=0)
    env = {**shop_lake.env, "DASH_TOKEN": SECRET}
    made: dict[str, Any] = {"since": since, "until": until, "seconds": {}, "output": {}}
    for fmt in ("html", "pdf", "md"):
        target = folder / f"shop.{fmt}"
        done = run_command(
            "report", "-c", str(config_file), "--since", since.isoformat(),
            "--until", until.isoformat(), "-o", str(target),
            logs=folder / "logs", cwd=folder, env=env, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.describe()
        assert f"wrote {target}" in done.stdout
        made[fmt] = target
        made["seconds"][fmt] = done.seconds
        made["output"][fmt] = done.stdout + done.stderr
    print("\nreport seconds (process, lake + ledger + render):", made["seconds"])
    return made


def _expected(shop_lake: ShopLake, since: datetime, until: datetime) -> dict[str, dict[str, int]]:
    """Each table's figures counted here: the manifest, and the ops and curated tables."""
    config = shop_lake.config()
    _, ops = config.ops_sink
    dlq, failed = read_table(ops, "_dlq"), read_table(ops, "_failed")

    def between(frame: pl.DataFrame, column: str) -> pl.DataFrame:
        return frame.filter((pl.col(column) >= since) & (pl.col(column) < until))

    found = {}
    for name, table in shop_lake.manifest.tables.items():
        curated = read_table(next(iter(config.sinks_of(name).values())), name)
        found[name] = {
            "extracted": table.rows,
            "loaded": between(curated, "_dp_extracted_at").height,
            "invalid": between(dlq.filter(pl.col("table") == name), "kafka_timestamp").height,
            "failed": between(failed.filter(pl.col("table") == name), "kafka_timestamp").height,
        }
        assert found[name]["loaded"] == table.curated, name
        assert found[name]["invalid"] == table.rows_to("dlq"), name
        assert found[name]["failed"] == table.rows_to("failed"), name
    return found


def test_html_figures_equal_the_tables_counts(reports: dict[str, Any], shop_lake: ShopLake) -> None:
    expected = _expected(shop_lake, reports["since"], reports["until"])
    html = reports["html"].read_text()
    found: dict[str, dict[str, int]] = {}
    for table, figure, value in FIGURE.findall(html):
        found.setdefault(table, {})[figure] = int(value.replace(",", ""))
    totals = found.pop("all tables")
    assert found == expected
    total: Counter[str] = Counter()
    for figures in expected.values():
        total.update(figures)
    assert totals == dict(total)
    assert "Ledger balanced" in html


def test_markdown_figures_and_chart_files(reports: dict[str, Any], shop_lake: ShopLake) -> None:
    expected = _expected(shop_lake, reports["since"], reports["until"])
    md = reports["md"].read_text()
    for table, figures in expected.items():
        row = re.search(rf"^\| {table} \| (.*)$", md, re.M)
        assert row is not None, table
        values = [cell.strip().split(" ")[0] for cell in row.group(1).split("|")[:4]]
        assert values == [f"{figures[f]:,}" for f in NAMES], table
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (reports["md"].parent / link).read_bytes().startswith(b"\x89PNG"), link
    assert md.count("![") == 3  # the three declared charts


def test_pdf_is_paginated_and_holds_the_htmls_figures_and_reasons(
    reports: dict[str, Any],
) -> None:
    from pypdf import PdfReader

    reader = PdfReader(reports["pdf"])
    pages = [page.extract_text() for page in reader.pages]
    assert len(pages) >= 2
    for number, text in enumerate(pages, 1):
        assert f"page {number} of {len(pages)}" in text
    pdf = " ".join(" ".join(pages).split())
    html = reports["html"].read_text()
    for section in ("figures", "reasons"):
        table = re.search(rf'<table class="{section}">(.*?)</table>', html, re.S)
        assert table is not None, section
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table.group(1), re.S)
        assert len(rows) > 2, section
        for row in rows[1:]:  # the header row is repeated on a page break: skip it
            if section == "figures":  # without the freshness: the PDF was made later
                row = row.rsplit("<td", 1)[0]
            assert _text(row) in pdf, _text(row)
    # poppler's pdftotext, another reader, sees the same pages (form feed between pages)
    poppler = subprocess.run(
        ["pdftotext", str(reports["pdf"]), "-"], capture_output=True, text=True, check=True
    ).stdout
    other = poppler.rstrip("\f").split("\f")
    assert len(other) == len(pages)
    for number, text in enumerate(other, 1):
        assert f"page {number} of {len(pages)}" in text


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_html_is_self_contained_and_opens_in_chromium(reports: dict[str, Any]) -> None:
    html = reports["html"].read_text()
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", html, re.I)
    assert not re.search(r"""url\(\s*["']?(?:https?:|//)|@import|<script|<link""", html, re.I)
    with browser_page(reports["html"].as_uri()) as (page, problems):
        started = time.monotonic()
        page.goto(reports["html"].as_uri(), wait_until="load")
        print(f"\nreport page loaded in {time.monotonic() - started:.2f}s")
        assert page.locator("figure.chart svg").count() == 3
        assert page.locator("table.figures tbody tr").count() == 5  # 4 tables + total
        box = page.locator("figure.chart svg").first.bounding_box()
        assert box is not None
        assert box["width"] > 200
    assert problems == []  # nothing fetched but the file itself, no console error


def test_no_planted_secret_in_any_output(reports: dict[str, Any]) -> None:
    from pypdf import PdfReader

    texts = [reports["html"].read_text(), reports["md"].read_text()]
    texts.append(" ".join(page.extract_text() for page in PdfReader(reports["pdf"]).pages))
    texts += reports["output"].values()
    for text in texts:
        assert SECRET not in text
    assert "token ***" in reports["html"].read_text()  # the description, scrubbed
    assert "token ***" in reports["md"].read_text()


def test_one_table_and_an_empty_period(shop_lake: ShopLake, tmp_path: Path) -> None:
    target = tmp_path / "orders.md"
    done = run_command(
        "report", "-c", str(shop_lake.config_file), "-t", "orders", "--since", "2020-01-01",
        "--until", "2020-01-02", "-o", str(target),
        logs=tmp_path / "logs", cwd=tmp_path, env=shop_lake.env,
    )  # fmt: skip
    assert done.returncode == 0, done.describe()
    md = target.read_text()
    assert "| orders | 0 (±0) | 0 (±0) | 0 (±0) | 0 (±0) |" in md
    assert "| customers |" not in md
    assert "No record was rejected in the period." in md
    assert "2020-01-01 00:00 to 2020-01-02 00:00 UTC (1 day)" in md


def test_kafka_down_reports_from_the_lake_and_says_the_ledger_is_missing(
    shop_lake: ShopLake, tmp_path: Path
) -> None:
    down = f"127.0.0.1:{free_port()}"
    target = tmp_path / "r.html"
    env = {**shop_lake.env, "KAFKA_BOOTSTRAP_SERVERS": down}
    done = run_command(
        "report", "-c", str(shop_lake.config_file), "--since", "30d", "-o", str(target),
        logs=tmp_path / "logs", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.describe()
    warning = [line for line in done.stderr_lines if "ledger is missing" in line]
    assert warning == [
        f"warning: the ledger is missing: Kafka at {down} does not answer; this report is"
        " from the lake alone"
    ]
    html = target.read_text()
    assert "The ledger is missing: Kafka at" in html
    assert f"{shop_lake.manifest.tables['orders'].curated:,}" in html
    assert done.seconds < 60
