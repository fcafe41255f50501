"""`dataplump serve` is registered and refuses a broken pipeline file with one line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from dataplump.cli import app


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
