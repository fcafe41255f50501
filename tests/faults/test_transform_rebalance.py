"""Workers joining and leaving the group mid-stream: no record lost or doubled.

Two ``dataplump transform`` processes of one pipeline (``--slot 0`` and ``--slot 1``)
share an active topic of 4 partitions. The second joins while the first is busy (a
rebalance that takes partitions away from it), then the first leaves: killed with
SIGKILL (its open transaction is aborted by the broker after ``transaction.timeout.ms``,
set to 10 s here, and the group drops it after the session timeout), or stopped with
SIGTERM or SIGINT (it finishes its batch and leaves the group). The survivor must take
over its partitions from the last committed offsets and drain everything. And one
``--workers 2 --once`` command drains the topic and exits 0.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from dataplump.config import PipelineConfig, load_config
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from tests.support.transformation import (
    Expected,
    OutputWatcher,
    Transformation,
    check_exactly_once,
    run_transform,
    write_pipeline,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 20_000
POLL = "500"
"""Records per poll: many small transactions, so each worker is mid-stream for a while."""
DRAIN_WITHIN = 60.0


def extracted(tmp_path: Path, bootstrap: str) -> tuple[Path, PipelineConfig]:
    path, _ = write_pipeline(
        tmp_path,
        bootstrap,
        rows=ROWS,
        batch_size=1000,
        partitions=4,
        transaction_timeout_ms=10_000,
    )
    config = load_config(path)
    Extractor(config, bootstrap).run_once()
    Transformer(config, bootstrap).prepare()
    return path, config


@pytest.mark.parametrize(
    "leave",
    [
        pytest.param(signal.SIGKILL, id="sigkill"),
        pytest.param(signal.SIGTERM, id="sigterm"),
        pytest.param(signal.SIGINT, id="sigint"),
    ],
)
def test_a_worker_joins_then_one_leaves_mid_stream(
    tmp_path: Path, kafka_bootstrap: str, leave: signal.Signals
) -> None:
    path, config = extracted(tmp_path, kafka_bootstrap)
    expected = Expected.of(ROWS)
    logs = tmp_path / "logs"
    watcher = OutputWatcher.of(kafka_bootstrap, config)
    first = Transformation(path, "--slot", "0", "--max-records", POLL, logs=logs, label="slot0")
    second: Transformation | None = None
    try:
        assert watcher.wait_for(2_000, 40), first.result().describe()
        second = Transformation(path, "--slot", "1", "--max-records", POLL, logs=logs, label="s1")
        # Joined: the group rebalanced and the first worker went on with fewer partitions.
        assert watcher.wait_for(watcher.total + 3_000, 40)
        assert watcher.total < expected.total * 0.8, "too late to leave mid-stream"
        if leave == signal.SIGKILL:
            assert first.kill().returncode == -9
        else:
            result = first.stop(leave, timeout=30)
            code = 143 if leave == signal.SIGTERM else 130
            assert result.returncode == code, result.describe()
            assert "Traceback" not in result.stderr, result.describe()
        left_at = watcher.total
        drained = watcher.wait_for(expected.total, DRAIN_WITHIN)
        assert second.running(), second.result().describe()
        stopped = second.stop(signal.SIGINT, timeout=30)
        assert drained, f"{watcher.total} of {expected.total} out\n{stopped.describe()}"
        assert stopped.returncode == 130, stopped.describe()
        print(f"first left at {left_at} of {expected.total} records out")
        check_exactly_once(kafka_bootstrap, config, expected, f"left at {left_at}")
    finally:
        watcher.close()
        for run in (first, second):
            if run is not None and run.running():
                run.kill()


def test_two_workers_once_drain_and_exit_0(tmp_path: Path, kafka_bootstrap: str) -> None:
    path, config = extracted(tmp_path, kafka_bootstrap)
    expected = Expected.of(ROWS)
    result = run_transform(path, "--once", "--workers", "2", logs=tmp_path / "logs", timeout=90)
    assert result.returncode == 0, result.describe()
    assert f"{ROWS:,}" in result.stdout, result.describe()  # consumed, both workers added up
    check_exactly_once(kafka_bootstrap, config, expected, "--workers 2 --once")
