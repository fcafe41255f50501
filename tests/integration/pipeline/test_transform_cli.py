"""``dataplump transform`` as a user meets it: a real process on real SQLite and Kafka.

A run prints a summary table whose numbers are what the topics hold; every bad input
(an unknown table, a step whose file or function is missing, a Kafka that does not
answer) ends the command with exit 1 and one ``error:`` line on stderr, no traceback;
Ctrl-C stops after the current batch with exit 130 and the summary, and the next
``--once`` run finishes the rest exactly once.
"""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from dataplump.config import PipelineConfig, load_config
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from tests.support.cli import CliResult
from tests.support.topics import read_committed
from tests.support.transformation import (
    Expected,
    OutputWatcher,
    Transformation,
    check_exactly_once,
    run_transform,
    write_pipeline,
)

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

UNREACHABLE_BOUND = 45.0
"""Seconds within which an unreachable Kafka must be reported (measured: 37-39 s, the
30 s timeout of creating the topics plus start-up on a loaded machine)."""
COLUMNS = ["table", "consumed", "processed", "failed", "filtered", "batches", "rows/s"]


def one_error_line(result: CliResult) -> str:
    """The single ``error:`` line of a failed run (and nothing else on stderr)."""
    assert result.returncode == 1, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert len(result.stderr_lines) == 1, result.describe()
    [line] = result.stderr_lines
    assert line.startswith("error: "), result.describe()
    return line[len("error: ") :]


def summary(result: CliResult, table: str = "orders") -> dict[str, int]:
    """The numbers of ``table`` in the printed ``transformed`` table."""
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    header = lines.index(["transformed"])
    assert lines[header + 1] == COLUMNS, result.describe()
    [row] = [line for line in lines[header + 2 :] if line[0] == table]
    return {
        name: int(value.replace(",", "")) for name, value in zip(COLUMNS[1:], row[1:], strict=True)
    }


def extracted(
    folder: Path, bootstrap: str, rows: int, *, partitions: int = 1
) -> tuple[Path, PipelineConfig]:
    """A pipeline whose ``orders`` were extracted to ``.active`` (in this process)."""
    path, _ = write_pipeline(folder, bootstrap, rows=rows, batch_size=1000, partitions=partitions)
    config = load_config(path)
    Extractor(config, bootstrap).run_once()
    return path, config


def counted(bootstrap: str, config: PipelineConfig) -> dict[str, int]:
    """What the topics hold: active records in, processed and failed records out."""
    return {
        "active": len(read_committed(bootstrap, topics.active(config.name, "orders"))),
        "processed": len(read_committed(bootstrap, topics.processed(config.name, "orders"))),
        "failed": len(read_committed(bootstrap, topics.failed(config.name))),
    }


def test_once_prints_the_counts_the_topics_hold(tmp_path: Path, kafka_bootstrap: str) -> None:
    rows = 2_000
    path, config = extracted(tmp_path, kafka_bootstrap, rows)
    result = run_transform(path, "--once", logs=tmp_path / "logs")
    assert result.returncode == 0, result.describe()
    assert result.stderr == "", result.describe()
    shown = summary(result)
    held = counted(kafka_bootstrap, config)
    expected = Expected.of(rows)
    assert shown["consumed"] == held["active"] == rows, result.describe()
    assert shown["processed"] == held["processed"] == len(expected.processed), result.describe()
    assert shown["failed"] == held["failed"] == len(expected.failed), result.describe()
    # dropped on purpose by `drop_null`: written nowhere, counted as filtered
    assert shown["filtered"] == rows - held["processed"] - held["failed"] == len(expected.dropped)
    assert shown["batches"] >= 1


@pytest.mark.parametrize(
    ("name", "hint"),
    [("nosuch", ""), ("ordrs", "did you mean `orders`? ")],
    ids=["far", "close"],
)
def test_unknown_table_is_one_line_with_the_tables(
    tmp_path: Path, kafka_bootstrap: str, name: str, hint: str
) -> None:
    path, _ = write_pipeline(tmp_path, kafka_bootstrap, rows=10)
    message = one_error_line(run_transform(path, "--table", name, logs=tmp_path / "logs"))
    assert message == f"no table `{name}` in {path}; {hint}(tables: orders)"


def test_pandas_step_with_a_missing_file_is_a_config_error(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    path, _ = write_pipeline(tmp_path, kafka_bootstrap, rows=10, pandas_step="nofile.py:add_size")
    result = run_transform(path, "--once", logs=tmp_path / "logs")
    message = one_error_line(result)
    assert re.match(
        rf"{re.escape(str(path))}:\d+:\d+: transform\.steps\.orders\[5\]\.pandas: ", message
    )
    assert "no such file `nofile.py`" in message
    assert message.endswith(f"(run `dataplump config check -c {path}`)")
    assert result.stdout == "", result.describe()


def test_pandas_step_with_a_missing_function_names_the_step_and_the_function(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    path, _ = write_pipeline(tmp_path, kafka_bootstrap, rows=10, pandas_step="steps.py:nosuch")
    result = run_transform(path, "--once", logs=tmp_path / "logs")
    message = one_error_line(result)
    assert message.startswith("table `orders`, step 6 (pandas): cannot import `steps.py:nosuch`")
    assert "no function `nosuch` in `steps.py`" in message
    assert "(functions: add_size)" in message
    assert message.endswith(f"(run `dataplump config check -c {path}`)")
    assert result.stdout == "", result.describe()  # no empty summary above the error


def test_unreachable_kafka_is_one_line_within_a_bounded_time(tmp_path: Path) -> None:
    closed = "127.0.0.1:1"
    path, _ = write_pipeline(tmp_path, closed, rows=10)
    result = run_transform(path, "--once", logs=tmp_path / "logs", timeout=120)
    print(f"unreachable Kafka: exit {result.returncode} after {result.seconds:.1f}s")
    message = one_error_line(result)
    assert message.startswith(f"Kafka at {closed} did not answer"), message
    assert result.seconds < UNREACHABLE_BOUND, result.describe()


def test_help_lists_every_option_with_its_text(tmp_path: Path) -> None:
    result = run_transform(tmp_path / "unused.yaml", "--help", logs=tmp_path / "logs")
    assert result.returncode == 0, result.describe()
    text = " ".join(result.stdout.replace("│", " ").split())
    for option, words in [
        ("--config", "The pipeline file."),
        ("--table", "Only this table (repeat for several)."),
        ("--once", "Drain the active topics to their current end, then exit."),
        ("--workers", "Worker processes (one consumer each)."),
        ("--slot", "First worker slot."),
        ("--max-records", "Records per poll, and so per transaction"),
    ]:
        assert option in text, result.stdout
        assert words in text, f"{option}: {words!r} not in\n{result.stdout}"


def test_two_workers_once_add_up_to_the_active_records(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    rows = 4_000
    path, config = extracted(tmp_path, kafka_bootstrap, rows, partitions=4)
    result = run_transform(
        path, "--once", "--workers", "2", "--max-records", "500", logs=tmp_path / "logs"
    )
    assert result.returncode == 0, result.describe()  # not -6 (SIGABRT at exit)
    assert "Traceback" not in result.stderr, result.describe()
    shown = summary(result)
    held = counted(kafka_bootstrap, config)
    assert shown["consumed"] == held["active"] == rows, result.describe()
    assert (shown["processed"], shown["failed"]) == (held["processed"], held["failed"])
    check_exactly_once(kafka_bootstrap, config, Expected.of(rows), "--workers 2 --once")


def test_ctrl_c_stops_after_the_batch_and_once_finishes_the_rest(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    rows = 6_000
    path, config = extracted(tmp_path, kafka_bootstrap, rows)
    Transformer(config, kafka_bootstrap).prepare()
    expected = Expected.of(rows)
    logs = tmp_path / "logs"
    watcher = OutputWatcher.of(kafka_bootstrap, config)
    running = Transformation(path, "--max-records", "200", logs=logs, label="long")
    try:
        assert watcher.wait_for(1, 60), running.result().describe()
        first = running.stop(signal.SIGINT, timeout=60)
    finally:
        watcher.close()
        if running.running():
            running.kill()
    assert first.returncode == 130, first.describe()
    assert "Traceback" not in first.stderr, first.describe()
    assert "stopping after the current batch" in first.stdout, first.describe()
    before = summary(first)
    assert 0 < before["consumed"] < rows, f"not stopped mid-stream: {first.describe()}"

    rest = run_transform(path, "--once", logs=logs)
    assert rest.returncode == 0, rest.describe()
    after = summary(rest)
    for column in ("consumed", "processed", "failed", "filtered"):
        total = before[column] + after[column]
        print(f"{column}: {before[column]} + {after[column]} = {total}")
    assert before["consumed"] + after["consumed"] == rows
    assert before["processed"] + after["processed"] == len(expected.processed)
    assert before["failed"] + after["failed"] == len(expected.failed)
    assert before["filtered"] + after["filtered"] == len(expected.dropped)
    check_exactly_once(kafka_bootstrap, config, expected, "Ctrl-C, then --once")
