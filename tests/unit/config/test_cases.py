"""Data-driven cases: every file in tests/cases/config/bad fails with the expected issue.

Each ``bad/NAME.yaml`` has a sibling ``NAME.expected`` (YAML) with the issue's key
``path``, its ``line`` (or the ``env_var`` to blame), a ``message`` fragment, and
optionally the ``env`` the case runs with. Each case runs through ``load_config``
and through ``dataplump config check``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from dataplump.cli.config_cmd import app
from dataplump.config import ConfigError, InvalidConfigError, load_config
from tests.unit.config.helpers import CASES

BAD = sorted((CASES / "bad").glob("*.yaml"))
GOOD = sorted((CASES / "good").glob("*.yaml"))


def _expected(case: Path) -> dict[str, Any]:
    expected: dict[str, Any] = YAML(typ="safe").load(case.with_suffix(".expected"))
    return expected


def test_enough_cases() -> None:
    assert len(BAD) >= 12
    assert all(case.with_suffix(".expected").is_file() for case in BAD)


@pytest.mark.parametrize("case", BAD, ids=lambda p: p.stem)
def test_bad_case_with_load_config(case: Path) -> None:
    expected = _expected(case)
    with pytest.raises(InvalidConfigError) as caught:
        load_config(case, env=expected.get("env", {}))
    assert isinstance(caught.value, ConfigError)
    matching = [
        issue
        for issue in caught.value.issues
        if issue.path == expected["path"] and expected["message"] in issue.message
    ]
    assert matching, f"no issue like {expected} in:\n{caught.value}"
    issue = matching[0]
    assert issue.file == case
    if "env_var" in expected:
        assert issue.env_var == expected["env_var"]
        assert issue.line is None
    else:
        assert issue.env_var is None
        assert issue.line == expected["line"]  # null where YAML gives no position


@pytest.mark.parametrize("case", BAD, ids=lambda p: p.stem)
def test_bad_case_with_cli(case: Path) -> None:
    expected = _expected(case)
    result = CliRunner().invoke(app, ["check", "-c", str(case)], env=expected.get("env", {}))
    assert result.exit_code == 1, result.output
    if "env_var" in expected:
        where = f"env {expected['env_var']}"
    else:
        where = f"{case}:{expected['line']}:" if expected["line"] else f"{case}:"
    path = f"{expected['path']}: " if expected["path"] else ""
    lines = [line for line in result.stderr.splitlines() if line.startswith(where)]
    assert any(path in line and expected["message"] in line for line in lines), result.stderr
    assert "problem" in result.stderr.splitlines()[-1]
    assert result.stdout == ""


@pytest.mark.parametrize("case", GOOD, ids=lambda p: p.stem)
def test_good_case_loads(case: Path) -> None:
    config = load_config(case, env={})
    assert config.tables
    result = CliRunner().invoke(app, ["check", "-c", str(case)], env={})
    assert result.exit_code == 0, result.output
    assert "is valid" in result.stdout
