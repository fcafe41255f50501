"""``examples/shop`` fits the sample: its input contracts reject exactly the rows the
manifest sends to the dead-letter topics, and ``config check`` passes with the steps."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dataplump.cli import app
from dataplump.config import load_config
from dataplump.sample import FAULTS, create_sample
from dataplump.sample.create import build_tables
from dataplump.sample.schema import TABLES

EXAMPLE = Path(__file__).parents[3] / "examples" / "shop" / "dataplump.yaml"


@pytest.mark.parametrize("seed", [1, 2])
def test_input_contracts_reject_what_the_manifest_says(seed: int) -> None:
    now = datetime.now(UTC)
    tables, counts = build_tables(3000, 0.1, seed, now)
    config = load_config(EXAMPLE, env={"SHOP_DB_URL": "sqlite:///unused.db"})
    for name in TABLES:
        contract = config.contract(name)
        assert contract is not None
        result = contract.check(tables[name], now=now)
        expected = {
            f.catch.rule: counts[name][f.kind]
            for f in FAULTS[name]
            if f.catch.outcome == "dlq" and counts[name][f.kind]
        }
        assert result.counts_by_rule == expected, name
        assert result.num_invalid == sum(expected.values()), name  # one reason per row
        assert result.schema_issues == (), name


def test_config_check_with_steps_passes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shop.db'}"
    create_sample(url, orders=300, seed=1)
    result = CliRunner().invoke(
        app, ["config", "check", "-c", str(EXAMPLE), "--steps"], env={"SHOP_DB_URL": url}
    )
    assert result.exit_code == 0, result.output
    assert "is valid" in result.output


def test_config_check_names_a_missing_reference_once(tmp_path: Path) -> None:
    """Two tables join `customers`: its problem is one line, not one per table."""
    url = f"sqlite:///{tmp_path / 'missing.db'}"
    result = CliRunner().invoke(
        app, ["config", "check", "-c", str(EXAMPLE), "--steps"], env={"SHOP_DB_URL": url}
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if "reference `" in line]
    assert len(lines) == len(set(lines)) == 2, result.output
    assert "2 problems in" in result.output
