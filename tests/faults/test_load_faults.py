"""The loading stage under faults of its stores, with real processes.

- The warehouse goes down mid-load (a PostgreSQL server of the test's own, on a free
  port, stopped and started again): the loader retries the batch, nothing partial is
  visible, and the run ends with every order once in both sinks.
- The lake table becomes read-only mid-run: the loader stops with one clear line, the
  table holds whole commits only, and a rerun after the fix loads exactly the rest.
- Two loaders of one pipeline started at once: the lake table's writer lock lets one
  load; the other stops at once with one line naming the lock (a supervisor sees exit 1
  and no duplicate lands).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dataplump.testing.databases import PostgresServer
from tests.support.loading import (
    Loadable,
    Loading,
    check_lake,
    check_warehouse,
    delta_commits,
    delta_rows,
    loadable,
    run_load,
)
from tests.support.private_postgres import private_postgres

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

ROWS = 5_000
POLL = "200"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str) -> Loadable:
    return loadable(tmp_path_factory.mktemp("orders"), kafka_bootstrap, ROWS)


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test only (the shared one must stay up)."""
    with private_postgres("lfaults") as server:
        yield server


def wait_for_commits(table: Path, run: Loading, commits: int, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while delta_commits(table) < commits:
        assert run.running(), run.result().describe()
        assert time.monotonic() < end, f"no {commits} commits in {timeout}s"
        time.sleep(0.02)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.postgres
def test_warehouse_down_mid_load_is_retried_and_ends_exact(
    tmp_path: Path, data: Loadable, own_postgres: PostgresServer
) -> None:
    url = own_postgres.create_database()
    lake = tmp_path / "lake"
    sinks = {
        "lake": {"kind": "delta", "path": str(lake)},
        "warehouse": {"kind": "postgres", "url": url},
    }
    path = data.pipeline(tmp_path, sinks, table_sinks=["lake", "warehouse"])
    run = Loading(path, "--once", "--max-records", POLL, logs=tmp_path / "logs")
    try:
        wait_for_commits(lake / "orders", run, 3)
        own_postgres.stop()
        time.sleep(2.5)  # the loader meets the dead warehouse and backs off
        assert run.running(), run.result().describe()
        own_postgres.ensure_running()
        result = run.wait(90)
    finally:
        if run.running():
            run.kill()
    assert result.returncode == 0, result.describe()
    assert "unreachable" in result.stderr, result.describe()  # the retry said why
    assert "Traceback" not in result.stderr, result.describe()
    check_lake(lake, data)
    check_warehouse(url, data)


def set_read_only(folder: Path, read_only: bool) -> None:
    """Make ``folder`` and its Delta log unwritable (root ignores modes: chattr +i too)."""
    for place in (folder, folder / "_delta_log"):
        if read_only:
            place.chmod(0o555)
        if os.geteuid() == 0:
            flag = "+i" if read_only else "-i"
            subprocess.run(["chattr", flag, str(place)], check=True)
        if not read_only:
            place.chmod(0o755)


def test_read_only_lake_stops_with_one_line_and_rerun_ends_exact(
    tmp_path: Path, data: Loadable
) -> None:
    lake = tmp_path / "lake"
    path = data.pipeline(tmp_path, {"lake": {"kind": "delta", "path": str(lake)}})
    logs = tmp_path / "logs"
    run = Loading(path, "--once", "--max-records", POLL, logs=logs)
    orders = lake / "orders"
    try:
        wait_for_commits(orders, run, 2)
        set_read_only(orders, True)
        result = run.wait(60)
        assert result.returncode == 1, result.describe()
        assert len(errors(result.stderr)) == 1, result.describe()
        assert "Traceback" not in result.stderr, result.describe()
        assert "permission" in result.stderr.lower(), result.describe()
        # only whole commits are visible: no row beyond the offsets stored with them
        held = delta_rows(orders, ["_dp_partition", "_dp_offset"])
        assert held["_dp_offset"], "nothing committed before the fault"
    finally:
        if run.running():
            run.kill()
        set_read_only(orders, False)
    again = run_load(path, "--once", logs=logs)
    assert again.returncode == 0, again.describe()
    check_lake(lake, data)


def test_two_loaders_at_once_load_each_order_once(tmp_path: Path, data: Loadable) -> None:
    lake = tmp_path / "lake"
    path = data.pipeline(tmp_path, {"lake": {"kind": "delta", "path": str(lake)}})
    logs = tmp_path / "logs"
    runs = [
        Loading(path, "--once", "--max-records", POLL, logs=logs, label=f"l{i}") for i in (0, 1)
    ]
    results = [run.wait(90) for run in runs]
    codes = sorted(r.returncode for r in results)
    described = "\n".join(r.describe() for r in results)
    assert codes == [0, 1], described
    loser = next(r for r in results if r.returncode == 1)
    assert len(errors(loser.stderr)) == 1, described
    assert "locked by another loader" in loser.stderr, described
    check_lake(lake, data)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 160 KiB tmpfs: the lake's disk, to fill up (needs root, as CI here has)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_full_disk_stops_with_one_line_and_rerun_ends_exact(
    tmp_path: Path, data: Loadable, small_disk: Path
) -> None:
    lake = small_disk / "lake"
    path = data.pipeline(tmp_path, {"lake": {"kind": "delta", "path": str(lake)}})
    logs = tmp_path / "logs"
    result = run_load(path, "--once", "--max-records", POLL, logs=logs, timeout=180)
    assert result.returncode == 1, result.describe()
    assert len(errors(result.stderr)) == 1, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert "space" in result.stderr.lower(), result.describe()
    held = (
        delta_rows(lake / "orders", ["_dp_offset"])
        if (lake / "orders" / "_delta_log").exists()
        else {}
    )
    assert len(held.get("_dp_offset", [])) < len(data.processed)  # it did stop short
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = run_load(path, "--once", logs=logs)
    assert again.returncode == 0, again.describe()
    check_lake(lake, data)
