"""``dataplump transform --engine spark`` on real Kafka and SQLite, Spark ``local[2]``.

The Spark engine writes the records the DuckDB engine writes (same keys, values, lineage,
reasons), a ``kill -9`` of the driver mid-stream loses and doubles nothing up to the
curated Delta table, and what stops Spark from starting is one line.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from dataplump.config import PipelineConfig
from dataplump.pipeline import topics
from dataplump.pipeline.transform import Transformer
from dataplump.services.kafka import free_port
from tests.integration.pipeline.test_transform_cli import extracted, one_error_line, summary
from tests.support.cli import Command
from tests.support.topics import headers_of, read_committed
from tests.support.transformation import (
    Expected,
    OutputWatcher,
    Transformation,
    check_exactly_once,
    run_transform,
)

pytest.importorskip("pyspark")
pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

SPARK_TIMEOUT = 360.0
"""Seconds a Spark ``--once`` run may take here (start-up alone is 15-30 s on 2 cores)."""
VOLATILE_HEADERS = {
    "dp.transformed_at",
    "dp.transform.run",
    "dp.schema",
    "dp.extracted_at",
    "dp.run",
}
"""Headers that differ between any two pipelines (times, run ids; the schema id follows
the output's Arrow types, which the loader reads either way)."""


def use_spark(path: Path, **settings: Any) -> None:
    """Switch the pipeline file to the Spark engine (``local[2]``, no UI unless asked) and
    give it a Delta sink beside it."""
    config = json.loads(path.read_text())
    config["transform"]["engine"] = "spark"
    config["transform"]["spark"] = {"master": "local[2]", "ui": False, **settings}
    config["sinks"] = {"lake": {"kind": "delta", "path": str(path.parent / "lake")}}
    path.write_text(json.dumps(config, indent=2))


def records(bootstrap: str, config: PipelineConfig) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The processed records by key (value and lasting headers) and the failed records by
    key (the envelope without its time and run, and the error headers)."""
    processed = {
        m.key(): (json.loads(m.value() or b""), _lasting(headers_of(m)))
        for m in read_committed(bootstrap, topics.processed(config.name, "orders"))
    }
    failed = {}
    for m in read_committed(bootstrap, topics.failed(config.name)):
        envelope = json.loads(m.value() or b"")
        for volatile in ("failed_at", "run"):
            envelope.pop(volatile)
        failed[m.key()] = (envelope, _lasting(headers_of(m)))
    return processed, failed


def _lasting(headers: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in headers.items() if k not in VOLATILE_HEADERS}


@pytest.mark.timeout(900)
def test_spark_writes_the_records_the_duckdb_engine_writes(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    rows = 500
    duck_path, duck = extracted(tmp_path / "duckdb", kafka_bootstrap, rows)
    spark_path, spark = extracted(tmp_path / "spark", kafka_bootstrap, rows)
    use_spark(spark_path)
    by_duckdb = run_transform(duck_path, "--once", logs=tmp_path / "logs")
    by_spark = run_transform(spark_path, "--once", logs=tmp_path / "logs", timeout=SPARK_TIMEOUT)
    assert by_duckdb.returncode == 0, by_duckdb.describe()
    assert by_spark.returncode == 0, by_spark.describe()
    assert summary(by_spark) == {**summary(by_duckdb), "rows/s": summary(by_spark)["rows/s"]}

    duck_processed, duck_failed = records(kafka_bootstrap, duck)
    spark_processed, spark_failed = records(kafka_bootstrap, spark)
    expected = Expected.of(rows)
    assert len(duck_processed) == len(expected.processed)
    assert len(duck_failed) == len(expected.failed)
    assert spark_processed == duck_processed
    assert spark_failed == duck_failed


@pytest.mark.timeout(900)
def test_kill_9_of_the_driver_mid_stream_loses_and_doubles_nothing(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    rows = 4_000
    path, config = extracted(tmp_path, kafka_bootstrap, rows)
    use_spark(path, batch_records=1000, trigger_seconds=0.2, ui=True)
    Transformer(config, kafka_bootstrap).prepare()
    expected = Expected.of(rows)
    logs = tmp_path / "logs"
    watcher = OutputWatcher.of(kafka_bootstrap, config)
    running = Transformation(path, logs=logs, label="killed")
    try:
        assert watcher.wait_for(1, SPARK_TIMEOUT), running.result().describe()
        time.sleep(random.Random(8).uniform(0.5, 3.0))  # seeded: the same moment each run
        killed = running.kill_tree()
        watcher.poll(1.0)
    finally:
        watcher.close()
    assert "Spark UI: http://127.0.0.1:" in killed.stdout, killed.describe()
    assert 0 < watcher.total < expected.total, f"not killed mid-stream: {watcher.total}"

    rest = run_transform(path, "--once", logs=logs, timeout=SPARK_TIMEOUT)
    assert rest.returncode == 0, rest.describe()
    check_exactly_once(kafka_bootstrap, config, expected, "kill -9 of the Spark driver")
    loaded = Command("load", "-c", str(path), "--once", logs=logs, cwd=path.parent).wait(300)
    assert loaded.returncode == 0, loaded.describe()
    lake = DeltaTable(str(path.parent / "lake" / "orders")).to_pyarrow_table(columns=["id"])
    assert sorted(lake["id"].to_pylist()) == sorted(expected.processed)


def test_an_unreachable_master_is_one_line(tmp_path: Path, kafka_bootstrap: str) -> None:
    path, _ = extracted(tmp_path, kafka_bootstrap, 10)
    master = f"spark://127.0.0.1:{free_port()}"
    use_spark(path, master=master)
    started = time.monotonic()
    result = run_transform(path, "--once", logs=tmp_path / "logs")
    line = one_error_line(result)
    assert line.startswith(f"Spark master {master} is unreachable"), line
    assert time.monotonic() - started < 60


def test_missing_java_is_one_line(tmp_path: Path, kafka_bootstrap: str) -> None:
    path, _ = extracted(tmp_path, kafka_bootstrap, 10)
    use_spark(path)
    (tmp_path / "bin").mkdir()
    missing = Command(
        "transform", "-c", str(path), "--once", logs=tmp_path / "logs", cwd=path.parent,
        env={"JAVA_HOME": str(tmp_path / "no-java"), "PATH": str(tmp_path / "bin")},
    ).wait(120)  # fmt: skip
    assert one_error_line(missing).startswith("Java not found: Spark needs Java 17")


def test_a_sql_step_spark_cannot_run_is_one_line_naming_it(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    path, _ = extracted(tmp_path, kafka_bootstrap, 10)
    use_spark(path)
    config = json.loads(path.read_text())
    config["transform"]["steps"]["orders"].append(
        {"sql": "SELECT o.* FROM batch o ASOF JOIN customers c ON o.id >= c.country"}
    )
    path.write_text(json.dumps(config))
    result = run_transform(path, "--once", logs=tmp_path / "logs", timeout=SPARK_TIMEOUT)
    line = one_error_line(result)  # the only stderr line: refused before Spark's JVM started
    assert line.startswith("table `orders`, step 7 (sql): "), line
    assert "ASOF JOIN" in line, line
    assert "cannot run on Spark" in line, line
