"""``dataplump demo`` as a user runs it: from no config to a report and a dashboard, the
batch part within the issue's 3 minutes, Ctrl-C stopping the dashboard and the broker."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest

from dataplump.sample.demo import kafka_data_dir
from dataplump.services.kafka import KafkaManager, free_port
from tests.support.cli import Command, run_command

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

BATCH_BUDGET = 180.0
"""Seconds the issue allows the demo's batch part on this 2-core machine."""


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - the demo's http
        return json.load(response)


def _wait_for(command: Command, pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := re.search(pattern, command.output):
            return found
        if command.process.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r}: {command.result().describe()}")


def _overview(base: str) -> dict[str, Any]:
    refresh = urllib.request.Request(base + "api/refresh", method="POST")  # noqa: S310
    urllib.request.urlopen(refresh, timeout=60)  # noqa: S310
    tables: dict[str, Any] = _get(base + "api/overview")["tables"]
    return tables


@pytest.mark.timeout(600)
def test_demo_batch_report_dashboard_then_ctrl_c(tmp_path: Path) -> None:
    web = free_port()
    demo = Command(
        "demo", "--dir", "demo", "--port", str(web), logs=tmp_path / "logs", cwd=tmp_path
    )
    try:
        url = _wait_for(demo, r"dashboard of pipeline `shop` on (http://\S+/)", BATCH_BUDGET + 60)
        batch = float(_wait_for(demo, r"batch part done in (\d+)s", 1).group(1))
        assert batch <= BATCH_BUDGET, demo.output
        folder = tmp_path / "demo"
        # the whole pipeline ran once and every row is accounted for
        manifest = json.loads((folder / "shop.manifest.json").read_text())
        assert manifest["orders"] == 10_000
        assert re.search(r"^\s*orders\s+10,000\s+.*\s0\s*$", demo.output, re.M), demo.output
        html = (folder / "report.html").read_text()
        assert "order_items" in html
        assert "<svg" in html
        assert (folder / "report.pdf").read_bytes().startswith(b"%PDF")
        base = url.group(1)
        deadline = time.monotonic() + 60
        while (health := _get(base + "api/health"))["ok"] is not True:
            assert time.monotonic() < deadline
        tables = _overview(base)
        assert tables["orders"]["extracted"] == 10_000
        assert all(t["gap"] == 0 for t in tables.values()), tables
        charts = _get(base + "api/charts")["charts"]
        assert {c["name"] for c in charts} >= {"revenue", "orders_by_status"}
        assert health["ok"]
    finally:
        demo.interrupt()
    result = demo.wait(120)
    assert result.returncode == 0, result.describe()
    assert not KafkaManager(kafka_data_dir(tmp_path / "demo")).status().running


@pytest.mark.timeout(600)
def test_demo_live_keeps_the_dashboard_moving(tmp_path: Path) -> None:
    web = free_port()
    demo = Command(
        "demo", "--dir", "live", "--orders", "300", "--port", str(web), "--live",
        logs=tmp_path / "logs", cwd=tmp_path,
    )  # fmt: skip
    try:
        base = _wait_for(demo, r"dashboard of pipeline `shop` on (http://\S+/)", 300).group(1)
        children = demo.children()
        assert any("grow" in " ".join(c.cmdline()) for c in children), children
        deadline = time.monotonic() + 120
        while (extracted := _overview(base)["orders"]["extracted"] or 0) <= 300:
            assert time.monotonic() < deadline, f"orders stay at {extracted}: {demo.output}"
            time.sleep(3)
    finally:
        demo.interrupt()
    result = demo.wait(180)
    assert result.returncode == 0, result.describe()
    # what it started ends with it (multiprocessing's resource tracker a moment after it,
    # when it reads the end of its pipe)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not [c for c in alive if c.status() != psutil.STATUS_ZOMBIE]
    assert not KafkaManager(kafka_data_dir(tmp_path / "live")).status().running


def test_demo_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = run_command(
        "demo", "--dir", "mine", "--no-serve", logs=tmp_path / "logs", cwd=tmp_path
    )
    assert result.returncode == 1
    assert result.stderr_lines == [
        f"error: {tmp_path / 'mine'} is not empty and not a demo folder; choose another with --dir"
    ]
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
