"""`dataplump serve` is registered, refuses a broken pipeline file or a taken port with one
line, and listens before it prints its address."""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataplump.cli import app
from tests.support.cli import Command


def test_serve_is_a_command() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    for option in ("--port", "--host", "--refresh", "--config"):
        assert option in result.output


def test_serve_refuses_a_bad_chart(tmp_path: Path) -> None:
    config = tmp_path / "dataplump.yaml"
    config.write_text(
        "pipeline: {name: shop}\n"
        "source: {url: 'sqlite:///shop.db'}\n"
        "tables: {orders: {primary_key: id}}\n"
        "present:\n"
        "  charts:\n"
        "    - {name: c, sql: 'SELECT 1 AS n', kind: bar, y: n}\n"
    )
    result = CliRunner().invoke(app, ["serve", "-c", str(config)], env={"COLUMNS": "200"})
    assert result.exit_code != 0
    assert "present.charts" in result.output
    assert "needs `x`" in result.output


def _pipeline(tmp_path: Path) -> Path:
    config = tmp_path / "dataplump.yaml"
    config.write_text(
        "pipeline: {name: shop}\n"
        "source: {url: 'sqlite:///shop.db'}\n"
        "tables: {orders: {primary_key: id}}\n"
        "kafka: {bootstrap_servers: '127.0.0.1:1'}\n"  # nothing there: the pages do without
    )
    return config


def test_a_taken_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["serve", "-c", str(_pipeline(tmp_path)), "--port", str(port)]
        )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use);"
        " choose another --port or --host"
    ]


@pytest.mark.slow
def test_the_printed_address_answers_at_once(tmp_path: Path) -> None:
    """Whoever reads the address connects on the first try (it was printed before binding)."""
    serve = Command(
        "serve", "-c", str(_pipeline(tmp_path)), "--port", "0", logs=tmp_path / "logs",
        cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"on (http://127\.0\.0\.1:\d+/)", serve.output)):
            assert serve.running(), serve.result().describe()
            assert time.monotonic() < deadline, serve.result().describe()
            time.sleep(0.05)
        health = found.group(1) + "api/health"
        with urllib.request.urlopen(health, timeout=30) as answer:  # noqa: S310 - ours
            assert answer.status == 200
    finally:
        serve.interrupt()
    stopped = serve.wait(60)
    assert stopped.returncode == 0, stopped.describe()
    assert stopped.stderr_lines == []
