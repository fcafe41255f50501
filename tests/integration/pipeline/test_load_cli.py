"""``dataplump load`` as a user runs it: the summary, and one clear line for each mistake."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.loading import Loadable, check_lake, loadable, run_load

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 600


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Loadable:
    return loadable(tmp_path_factory.mktemp("orders"), kafka_bootstrap, ROWS, partitions=1)


def one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def test_once_prints_the_summary_and_exits_0(tmp_path: Path, data: Loadable) -> None:
    lake = tmp_path / "lake"
    path = data.pipeline(tmp_path, {"lake": {"kind": "delta", "path": str(lake)}})
    result = run_load(path, "--once", "--max-records", "100", logs=tmp_path / "logs")
    assert result.returncode == 0, result.describe()
    out = result.stdout
    assert "loaded (run " in out, result.describe()
    for column in ("table", "consumed", "loaded", "skipped", "batches", "rows/s"):
        assert column in out, result.describe()
    orders = next(line.split() for line in out.splitlines() if line.split()[:1] == ["orders"])
    processed = f"{len(data.processed):,}"
    assert orders[1:4] == [processed, "lake", processed], out  # consumed, loaded per sink
    assert orders[4] == "0", out  # skipped
    assert any(line.split()[:1] == ["_dlq"] for line in out.splitlines()), out
    check_lake(lake, data)

    again = run_load(path, "--once", logs=tmp_path / "logs")
    assert again.returncode == 0, again.describe()
    orders = next(
        line.split() for line in again.stdout.splitlines() if line.split()[:1] == ["orders"]
    )
    assert orders[1:3] == ["0", "0"], again.stdout  # nothing new to load


def test_unknown_table_is_one_line_and_exit_1(tmp_path: Path, data: Loadable) -> None:
    path = data.pipeline(tmp_path, {"lake": {"kind": "delta", "path": str(tmp_path / "lake")}})
    result = run_load(path, "--once", "--table", "nosuch", logs=tmp_path / "logs", timeout=60)
    assert result.returncode == 1, result.describe()
    line = one_error(result.stderr)
    assert "nosuch" in line, line
    assert "orders" in line, line  # the valid choice


def test_unreachable_kafka_is_one_line(tmp_path: Path, data: Loadable) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = data.pipeline(tmp_path, {"lake": {"kind": "delta", "path": str(tmp_path / "lake")}})
    path.write_text(
        path.read_text().replace(data.config["kafka"]["bootstrap_servers"], f"127.0.0.1:{port}")
    )
    result = run_load(path, "--once", logs=tmp_path / "logs", timeout=90)
    assert result.returncode == 1, result.describe()
    line = one_error(result.stderr)
    assert f"127.0.0.1:{port}" in line, line


def test_parquet_sink_in_merge_mode_is_a_config_error(tmp_path: Path, data: Loadable) -> None:
    sinks = {"lake": {"kind": "parquet", "path": str(tmp_path / "lake"), "mode": "merge"}}
    path = data.pipeline(tmp_path, sinks)
    result = run_load(path, "--once", logs=tmp_path / "logs", timeout=60)
    assert result.returncode == 1, result.describe()
    line = one_error(result.stderr)
    assert "mode" in line, line
    assert "parquet" in line, line
    assert not (tmp_path / "lake").exists()


def test_help_names_every_option(tmp_path: Path) -> None:
    result = run_load(tmp_path / "none.yaml", "--help", logs=tmp_path / "logs", timeout=60)
    assert result.returncode == 0, result.describe()
    for option in ("--config", "--table", "--once", "--ops", "--no-ops", "--max-records"):
        assert option in result.stdout, result.stdout
    assert "exactly once" in result.stdout, result.stdout
