"""The run lock: one ``dataplump run`` per pipeline and Kafka cluster on a host."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataplump.pipeline.runlock import LOCK_DIR_ENV, RunLock, RunLockedError, lock_path


@pytest.fixture(autouse=True)
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path / "locks"))
    return tmp_path / "locks"


def test_a_second_run_of_a_pipeline_is_refused_naming_the_first(tmp_path: Path) -> None:
    config = tmp_path / "dataplump.yaml"
    with RunLock("shop", "127.0.0.1:9092", config):
        with pytest.raises(RunLockedError) as caught:
            RunLock("shop", "127.0.0.1:9092", config).acquire()
        message = str(caught.value)
        assert message.startswith("another `dataplump run` of pipeline `shop` is running (pid ")
        assert str(config) in message
        RunLock("shop", "10.0.0.1:9092", config).acquire()  # another cluster: another pipeline
        RunLock("shop2", "127.0.0.1:9092", config).acquire()
    RunLock("shop", "127.0.0.1:9092", config).acquire()  # released: free again


def test_lock_names_are_safe_file_names(lock_dir: Path) -> None:
    path = lock_path("../a b/c", "h:1")
    assert path.parent == lock_dir
    assert "/" not in path.name
    assert path.name.startswith("run-.._a_b_c-")
