"""A real standalone Spark cluster on 127.0.0.1: a master and workers from PySpark's own
``spark-class`` (the jars PySpark ships), each a process the test can kill."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from dataplump.services.kafka import find_java, free_port

START_TIMEOUT = 90.0


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


class SparkCluster:
    """``workers`` workers of ``cores`` cores and ``memory`` each, logs under ``folder``."""

    def __init__(self, folder: Path, *, workers: int = 2, cores: int = 1, memory: str = "2g"):
        self.folder = folder
        self.port, self.ui_port = free_port(), free_port()
        self.master_url = f"spark://127.0.0.1:{self.port}"
        self._worker_count, self._cores, self._memory = workers, cores, memory
        self.master: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        home = spark_home()
        java = find_java()
        env = {
            **os.environ,
            "SPARK_HOME": str(home),
            "JAVA_HOME": str(Path(java).resolve().parent.parent),
            "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_WORKER_DIR": str(self.folder / "work"),
        }
        log = (self.folder / f"{name}.log").open("wb")
        return subprocess.Popen(
            [str(home / "bin" / "spark-class"), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def start(self) -> SparkCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.master = self._spawn(
            "master", "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port),
        )  # fmt: skip
        for i in range(self._worker_count):
            self.workers.append(
                self._spawn(
                    f"worker{i}",
                    "org.apache.spark.deploy.worker.Worker",
                    self.master_url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    str(self._cores),
                    "--memory",
                    self._memory,
                    "--webui-port",
                    str(free_port()),
                )
            )
        deadline = time.monotonic() + START_TIMEOUT
        while self.alive_workers() < self._worker_count:
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Spark cluster did not start; logs in {self.folder}")
            time.sleep(1)
        return self

    def alive_workers(self) -> int:
        """Workers the master counts as ALIVE (from its JSON page)."""
        import json

        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.ui_port}/json/", timeout=2
            ) as answer:
                state = json.load(answer)
        except OSError:
            return 0
        return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")

    def kill_worker(self, index: int) -> None:
        """``kill -9`` a worker and the executors it started."""
        worker = self.workers[index]
        _kill_tree(worker.pid)
        worker.wait(10)

    def stop(self) -> None:
        for process in [*self.workers, *([self.master] if self.master else [])]:
            if process.poll() is None:
                _kill_tree(process.pid, signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    _kill_tree(process.pid)
                    process.wait(5)


def _kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    try:
        root = psutil.Process(pid)
        victims = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for victim in victims:
        with contextlib.suppress(psutil.NoSuchProcess):
            victim.send_signal(sig)
