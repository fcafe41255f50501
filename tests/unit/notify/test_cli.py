"""``dataplump notify`` without Kafka: options, durations, config errors, registration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dataplump.cli import notify_cmd
from dataplump.cli.notify_cmd import app, parse_duration

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("DATAPLUMP"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("5min", 300.0),
        ("4h", 14400.0),
        ("1d", 86400.0),
        ("250ms", 0.25),
        (" 1.5 H ", 5400.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "-5s", "5 weeks", "5s5"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="expected a duration such as 30s, 5m, 4h or 1d"):
        parse_duration(text)


def test_registers_as_a_subcommand_of_the_root_app() -> None:
    root = typer.Typer()
    root.add_typer(app, name="notify")

    @root.command()
    def other() -> None:  # a second command, so `notify` is a real subcommand
        """Unused."""

    result = runner.invoke(root, ["notify", "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: root notify [OPTIONS]" in result.stdout
    for option in ("--once", "--bootstrap", "--group-wait", "--retry-for", "--config"):
        assert option in result.stdout


def test_missing_config_fails_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(app, ["-c", str(missing), "--once"])
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert f"dataplump config check -c {missing}" in result.stderr


def test_bad_duration_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["-c", str(tmp_path / "x.yaml"), "--group-wait", "soon"])
    assert result.exit_code == 2
    assert "expected a duration" in result.stderr


def test_undelivered_exit_code_is_documented() -> None:
    assert notify_cmd.UNDELIVERED_EXIT == 3
    assert "3 some channel still owes" in (app.info.help or "")
