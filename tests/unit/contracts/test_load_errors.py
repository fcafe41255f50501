"""Load-time errors: every file in tests/cases/contracts/bad fails with the expected problem.

Each ``bad/NAME.yaml`` has a sibling ``NAME.expected`` (YAML) with the problem's key
``path`` in the contract, its ``line`` in the file and a ``message`` fragment. Each
case is loaded as a contract file, and inline in a pipeline file through
``load_config`` (where the problem is located in the pipeline file).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from dataplump.config import InvalidConfigError, load_config
from dataplump.contracts import Contract, ContractError
from dataplump.errors import ConfigError
from tests.unit.contracts.helpers import CASES

BAD = sorted((CASES / "bad").glob("*.yaml"))
# Cases about the file itself, not a contract a pipeline file can hold inline.
FILE_ONLY = {"yaml_syntax_error", "not_a_mapping", "version_as_float"}


def _expected(case: Path) -> dict[str, Any]:
    expected: dict[str, Any] = YAML(typ="safe").load(case.with_suffix(".expected"))
    return expected


def test_enough_cases() -> None:
    assert len(BAD) >= 25
    assert all(case.with_suffix(".expected").is_file() for case in BAD)


@pytest.mark.parametrize("case", BAD, ids=lambda p: p.stem)
def test_contract_file(case: Path) -> None:
    expected = _expected(case)
    with pytest.raises(ContractError) as caught:
        Contract.from_config("orders", case)
    error = caught.value
    assert isinstance(error, ConfigError)
    matching = [
        p for p in error.problems if p.key == expected["path"] and expected["message"] in p.message
    ]
    assert matching, f"no problem like {expected} in:\n{error}"
    assert matching[0].line == expected["line"], error
    line = str(error).splitlines()[error.problems.index(matching[0])]
    assert line.startswith(f"{case}:{expected['line']}:")
    assert "contract of table `orders`" in line


@pytest.mark.parametrize("case", [c for c in BAD if c.stem not in FILE_ONLY], ids=lambda p: p.stem)
def test_inline_in_the_pipeline_file(case: Path, tmp_path: Path) -> None:
    """The same problem, inline: located in the pipeline file (contract starts on line 7)."""
    expected = _expected(case)
    contract = textwrap.indent(case.read_text(encoding="utf-8"), "      ")
    pipeline = tmp_path / "dataplump.yaml"
    pipeline.write_text(
        "pipeline: {name: shop}\n"
        'source: {url: "sqlite:///demo.db"}\n'
        "tables:\n"
        "  orders:\n"
        "    primary_key: id\n"
        "    contract:\n" + contract,
        encoding="utf-8",
    )
    with pytest.raises(InvalidConfigError) as caught:
        load_config(pipeline, env={})
    path = "tables.orders.contract" + (f".{expected['path']}" if expected["path"] else "")
    path = path.replace(".[", "[")
    matching = [
        i for i in caught.value.issues if i.path == path and expected["message"] in i.message
    ]
    assert matching, f"no issue like {path}: {expected['message']} in:\n{caught.value}"
    assert matching[0].line == expected["line"] + 6


def test_contract_file_problems_name_the_file_in_the_pipeline(tmp_path: Path) -> None:
    (tmp_path / "contracts").mkdir()
    (tmp_path / "contracts" / "orders.yaml").write_text(
        "columns:\n  id: {type: int64}\n  email: {type: string, pattern: '(('}\n"
    )
    pipeline = tmp_path / "dataplump.yaml"
    pipeline.write_text(
        "pipeline: {name: shop}\n"
        'source: {url: "sqlite:///demo.db"}\n'
        "tables:\n"
        "  orders: {primary_key: id, contract: contracts/orders.yaml}\n"
    )
    with pytest.raises(InvalidConfigError) as caught:
        load_config(pipeline, env={})
    (issue,) = caught.value.issues
    assert (issue.path, issue.line) == ("tables.orders.contract", 4)
    assert issue.message.startswith("contracts/orders.yaml:3:25: columns.email.pattern: invalid")


def test_every_problem_is_reported_at_once() -> None:
    contract = {
        "columns": {
            "a": {"type": "int64", "min": 5, "max": 1},
            "b": {"type": "string", "pattern": "(("},
            "c": {"type": "date", "expression_is_true": "c >"},
        },
        "rules": [{"unique": ["a", "zz"]}],
    }
    with pytest.raises(ContractError) as caught:
        Contract.from_config("orders", contract)
    assert [p.key for p in caught.value.problems] == [
        "columns.a.max",
        "rules[0].unique[1]",
        "columns.b.pattern",
        "columns.c.expression_is_true",
    ]
    assert len(str(caught.value).splitlines()) == 4


def test_long_problem_lists_end_with_a_count() -> None:
    columns = {f"c{i}": {"type": "int64", "min": 2, "max": 1} for i in range(12)}
    with pytest.raises(ContractError) as caught:
        Contract.from_config("orders", {"columns": columns})
    lines = str(caught.value).splitlines()
    assert len(lines) == 11
    assert lines[-1] == "... and 2 more"
