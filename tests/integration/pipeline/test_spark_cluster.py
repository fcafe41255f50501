"""The Spark engine on a real standalone cluster (a master and two workers started from
PySpark's own ``spark-class`` on 127.0.0.1): the job runs on the workers, and a worker
killed with ``kill -9`` mid-stream costs nothing at the curated table."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from deltalake import DeltaTable

from dataplump.pipeline.transform import Transformer
from tests.integration.pipeline.test_spark_transform import SPARK_TIMEOUT, use_spark
from tests.integration.pipeline.test_transform_cli import extracted
from tests.support.cli import Command
from tests.support.spark_cluster import SparkCluster
from tests.support.transformation import (
    Expected,
    OutputWatcher,
    Transformation,
    check_exactly_once,
)

pytest.importorskip("pyspark")
pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SparkCluster]:
    running = SparkCluster(tmp_path / "spark-cluster", workers=2).start()
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.timeout(900)
def test_a_worker_killed_mid_stream_costs_nothing(
    tmp_path: Path, kafka_bootstrap: str, cluster: SparkCluster
) -> None:
    rows = 4_000
    path, config = extracted(tmp_path, kafka_bootstrap, rows)
    use_spark(
        path,
        master=cluster.master_url,
        batch_records=1000,
        trigger_seconds=0.2,
        conf={"spark.executor.memory": "512m", "spark.task.maxFailures": "8"},
    )
    Transformer(config, kafka_bootstrap).prepare()
    expected = Expected.of(rows)
    logs = tmp_path / "logs"
    watcher = OutputWatcher.of(kafka_bootstrap, config)
    running = Transformation(path, "--once", logs=logs, label="on-cluster")
    try:
        assert watcher.wait_for(1, SPARK_TIMEOUT), running.result().describe()
        executors = list((tmp_path / "spark-cluster" / "work").glob("app-*/*"))
        assert len(executors) == 2, f"the job should run on both workers: {executors}"
        cluster.kill_worker(0)
        killed_at = watcher.total
        result = running.wait(SPARK_TIMEOUT)
        watcher.poll(1.0)
    finally:
        watcher.close()
    assert result.returncode == 0, result.describe()
    assert 0 < killed_at < expected.total, f"not killed mid-stream: {killed_at}"
    assert cluster.alive_workers() == 1
    check_exactly_once(kafka_bootstrap, config, expected, "a worker killed mid-stream")
    started = time.monotonic()
    loaded = Command("load", "-c", str(path), "--once", logs=logs, cwd=path.parent).wait(300)
    assert loaded.returncode == 0, loaded.describe()
    lake = DeltaTable(str(path.parent / "lake" / "orders")).to_pyarrow_table(columns=["id"])
    assert sorted(lake["id"].to_pylist()) == sorted(expected.processed)
    print(f"killed after {killed_at} records; loaded in {time.monotonic() - started:.1f}s")
