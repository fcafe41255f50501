"""Any ``dataplump`` command as a process of its own, its output in files (no pipe to fill)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]


def clean_env() -> dict[str, str]:
    """This environment without DataPlump's overrides, plain output, wide lines."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DATAPLUMP__") and k != "DATAPLUMP_CONFIG"
    }
    env.update({"NO_COLOR": "1", "COLUMNS": "200", "PYTHONUNBUFFERED": "1"})
    return env


@dataclass
class CliResult:
    """How one ``dataplump`` process ended."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def describe(self) -> str:
        return (
            f"exit {self.returncode} after {self.seconds:.1f}s\n--- stdout\n{self.stdout}"
            f"--- stderr\n{self.stderr}"
        )


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
                env={**clean_env(), **(env or {})},
                text=True,
            )

    @property
    def output(self) -> str:
        """What it printed so far (stdout, then stderr)."""
        return self._out.read_text() + self._err.read_text()

    def running(self) -> bool:
        return self.process.poll() is None

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

    def stop(self, sig: signal.Signals = signal.SIGINT, timeout: float = 60.0) -> CliResult:
        """Send ``sig`` and wait for the end."""
        self.process.send_signal(sig)
        return self.wait(timeout)

    def kill(self) -> CliResult:
        """SIGKILL to the process (not its children): no cleanup of any kind runs in it."""
        self.process.kill()
        self.process.wait()
        return self.result()

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
