"""The worked examples of the docs run as written (on a free port instead of 39092)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dataplump.services.kafka import free_port
from tests.support.docs import DOCS, kafka_down, run_script, worked_example

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


def test_extract_transform_load_examples(tmp_path: Path) -> None:
    port = free_port()
    try:
        extract = run_script(worked_example("extract.md"), tmp_path, port)
        assert extract.returncode == 0, extract.stderr
        assert re.search(r"orders\s+3\s+1\s+2\s+1", extract.stdout), extract.stdout

        transform = run_script(worked_example("transform.md"), tmp_path, port)
        assert transform.returncode == 0, transform.stderr
        assert re.search(r"orders\s+1\s+1\s+0\s+0\s+1", transform.stdout), transform.stdout
        assert '"country":"NO"' in transform.stdout

        load = run_script(worked_example("load.md"), tmp_path, port)
        assert load.returncode == 0, load.stderr
        assert re.search(r"orders\s+1\s+lake 1\s+0", load.stdout), load.stdout
        assert re.search(r"_dlq\s+2\s+lake 2", load.stdout), load.stdout
        assert re.search(r"│ 1\s+┆ NO\s+┆", load.stdout), load.stdout
        assert "WRITE" in load.stdout
    finally:
        kafka_down("dataplump.yaml", tmp_path, port)


def test_run_status_trace_replay_example(tmp_path: Path) -> None:
    """docs/run.md: run --once on the sample, then status, trace and a dry replay."""
    shutil.copytree(DOCS.parent / "examples" / "shop", tmp_path / "examples" / "shop")
    port = free_port()
    try:
        done = run_script(worked_example("run.md"), tmp_path, port)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"started the managed Kafka broker at 127.0.0.1:{port}" in done.stdout
        assert "ledger (this run, the first: every run)" in done.stdout, done.stdout
        assert "gaps: {'customers': 0, 'products': 0, 'orders': 0, 'order_items': 0}" in done.stdout
        assert re.search(r"orders id=1: in the source now", done.stdout), done.stdout
        assert re.search(r"customers: 0 of \d+ would now pass; \d+ still fail", done.stdout)
    finally:
        kafka_down("examples/shop/dataplump.yaml", tmp_path, port)


@pytest.mark.timeout(900)
def test_spark_example_gives_the_duckdb_engines_ledger(tmp_path: Path) -> None:
    """docs/spark.md: the shop on Spark; its ledger is docs/run.md's, line for line."""
    pytest.importorskip("pyspark")
    shutil.copytree(DOCS.parent / "examples" / "shop", tmp_path / "examples" / "shop")
    port = free_port()
    try:
        done = run_script(worked_example("spark.md"), tmp_path, port, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    finally:
        kafka_down("examples/shop/dataplump.yaml", tmp_path, port)
    for page in ("spark.md", "run.md"):
        text = (DOCS / page).read_text()
        ledger = text[text.index("ledger (this run, the first") :].split("```")[0]
        for line in ledger.strip().splitlines():
            assert line.split() in [seen.split() for seen in done.stdout.splitlines()], line
