"""Any ``dataplump`` command as a process of its own, its output in files (no pipe to fill)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil  # type: ignore[import-untyped]

from tests.support.extraction import CliResult, _env


class Command:
    """One running ``python -m dataplump ARGS`` process."""

    def __init__(
        self,
        *args: str,
        logs: Path,
        cwd: Path,
        label: str = "dataplump",
        env: dict[str, str] | None = None,
    ) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        stamp = time.monotonic_ns()
        self._out = logs / f"{label}-{stamp}.out"
        self._err = logs / f"{label}-{stamp}.err"
        self.started = time.monotonic()
        with self._out.open("w") as out, self._err.open("w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dataplump", *args],
                stdout=out,
                stderr=err,
                cwd=cwd,
                env={**_env(), **(env or {})},
                text=True,
            )

    @property
    def output(self) -> str:
        """What it printed so far (stdout, then stderr)."""
        return self._out.read_text() + self._err.read_text()

    def children(self) -> list[psutil.Process]:
        """Its child processes, oldest first."""
        kids = psutil.Process(self.process.pid).children(recursive=True)
        return sorted(kids, key=lambda p: p.create_time())

    def wait(self, timeout: float = 300.0) -> CliResult:
        """Wait for the end (killing the whole tree if it outlives ``timeout``)."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_tree()
            raise AssertionError(f"dataplump hung: {self.result().describe()}") from None
        return self.result()

    def interrupt(self) -> None:
        """Ctrl-C."""
        self.process.send_signal(signal.SIGINT)

    def kill_tree(self) -> CliResult:
        """SIGKILL to the process and every child: nothing cleans up."""
        try:
            victims = [psutil.Process(self.process.pid), *self.children()]
        except psutil.NoSuchProcess:
            victims = []
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        psutil.wait_procs(victims, timeout=10)
        self.process.wait()
        return self.result()

    def result(self) -> CliResult:
        code = self.process.poll()
        return CliResult(
            -1 if code is None else code,
            self._out.read_text(),
            self._err.read_text(),
            time.monotonic() - self.started,
        )


def run_command(
    *args: str,
    logs: Path,
    cwd: Path,
    timeout: float = 300.0,
    env: dict[str, str] | None = None,
) -> CliResult:
    """Run ``dataplump ARGS`` to its end (``env``: variables on top of a clean environment)."""
    return Command(*args, logs=logs, cwd=cwd, env=env).wait(timeout)
