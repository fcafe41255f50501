"""The worked example of docs/sample.md runs as written: in a folder holding a copy of
``examples/shop``, with the managed broker on a free port instead of 39092."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dataplump.services.kafka import free_port
from tests.support.docs import kafka_down, run_script, worked_example

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).parents[3]


def test_worked_example_runs(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "examples" / "shop", tmp_path / "examples" / "shop")
    port = free_port()
    try:
        result = run_script(worked_example("sample.md"), tmp_path, port)
    finally:
        kafka_down("examples/shop/dataplump.yaml", tmp_path, port)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "every fault where the manifest says" in result.stdout
    assert re.search(r"customers\s+1,000\s+50", result.stdout), result.stdout
