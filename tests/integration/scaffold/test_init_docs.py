"""The worked example of docs/init.md runs as written (on a free port instead of 39092)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dataplump.services.kafka import free_port
from tests.support.docs import DOCS, kafka_down, run_script, worked_example

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

PAGE = DOCS / "init.md"


def test_worked_example(tmp_path: Path) -> None:
    port = free_port()
    try:
        result = run_script(worked_example("init.md"), tmp_path, port)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert "wrote pipeline `shop` in shop:" in out
        assert "table orders: incremental by updated_at" in out
        assert "shop/dataplump.yaml is valid" in out
        assert re.search(r"customers\s+30\s+30\s+0", out), out
        assert re.search(r"orders\s+100\s+100\s+0", out), out
        assert re.search(r"orders\s+100\s+lake 100\s+0", out), out
        assert re.search(r"customers\s+30\s+lake 30\s+0", out), out
        page = PAGE.read_text()
        contract = (tmp_path / "shop" / "contracts" / "orders.yaml").read_text()
        for line in contract.splitlines():
            if line.startswith("  ") and ":" in line and not line.startswith("  #"):
                assert line.rstrip() in page, f"docs/init.md shows another contract: {line}"
    finally:
        kafka_down("shop/dataplump.yaml", tmp_path, port)
