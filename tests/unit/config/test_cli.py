"""``dataplump config check``: the summary, --show, the default file and --help."""

from __future__ import annotations

from pathlib import Path

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from dataplump.cli.config_cmd import app
from tests.unit.config.helpers import EXAMPLE, MINIMAL, write

runner = CliRunner()


def test_summary(tmp_path: Path) -> None:
    text = MINIMAL + "  events: {primary_key: [day, id], mode: incremental, cursor: ts}\n"
    path = write(tmp_path, text)
    result = runner.invoke(app, ["check", "-c", str(path)])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"{path} is valid" in out
    assert "shop" in out
    assert "sqlite:///demo.db" in out
    assert "managed broker on 127.0.0.1:9092" in out
    assert "day, id" in out
    assert "ts (lag 0s)" in out
    assert result.stderr == ""


def test_summary_with_external_kafka(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    env = {"DATAPLUMP__KAFKA__BOOTSTRAP_SERVERS": "k1:9092"}
    result = runner.invoke(app, ["check", "-c", str(path)], env=env)
    assert result.exit_code == 0, result.output
    assert "k1:9092 (PLAINTEXT)" in result.stdout


def test_show_prints_the_effective_config(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    result = runner.invoke(
        app,
        ["check", "-c", str(path), "--show"],
        env={"DATAPLUMP__TABLES__ORDERS__BATCH_SIZE": "5"},
    )
    assert result.exit_code == 0, result.output
    shown = YAML(typ="safe").load(result.stdout)
    assert shown["tables"]["orders"]["batch_size"] == 5
    assert shown["kafka"]["managed"]["data_dir"] == str(tmp_path / ".dataplump" / "kafka")
    assert shown["notify"]["channels"] == [{"kind": "log"}]


def test_default_file_and_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, MINIMAL)
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["check"]).exit_code == 0
    result = runner.invoke(app, ["check"], env={"DATAPLUMP_CONFIG": str(EXAMPLE)})
    assert result.exit_code == 0
    assert f"{EXAMPLE} is valid" in result.stdout
    monkeypatch.chdir(tmp_path.parent)
    result = runner.invoke(app, ["check"])
    assert result.exit_code == 1
    assert "dataplump.yaml: file not found" in result.stderr


def test_error_lines_and_count(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("id}", "id, mode: ful, cursor: 3}"))
    result = runner.invoke(app, ["check", "-c", str(path)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{path}:4:29: tables.orders.mode: invalid choice 'ful'; did you mean `full`?"
        " (valid: full, incremental)",
        f"1 problem in {path}; fix and run again.",
    ]


def test_help_has_an_example() -> None:
    result = runner.invoke(app, ["check", "--help"])
    assert result.exit_code == 0
    for text in ("Example", "--show", "DATAPLUMP_CONFIG"):
        assert text in result.stdout


STEPS = """\
pipeline: {name: shop}
source: {url: "sqlite:///shop.db"}
tables:
  orders:
    primary_key: id
    contract:
      columns:
        id: {type: int64}
        status: {type: string}
transform:
  steps:
    orders:
      - trim: [status]
      - sql: SELECT id, sttus FROM batch
"""


def test_steps_run_on_an_empty_batch_and_name_the_step_line(tmp_path: Path) -> None:
    path = write(tmp_path, STEPS)
    result = runner.invoke(app, ["check", "-c", str(path)])
    assert result.exit_code == 1
    assert f"{path}:14:9: transform.steps.orders[1].sql: " in result.stderr
    assert '"sttus" not found' in result.stderr
    skipped = runner.invoke(app, ["check", "-c", str(path), "--no-steps"])
    assert skipped.exit_code == 0, skipped.output
