"""``kill -9`` of a ``dataplump`` command at seeded random moments, for the kill tests.

A :class:`Killer` starts a command (``run``, ``extract --once``, ``load --once``,
``transform --once``) and waits for a random moment of its work. Most kills are
targeted: they wait until the command's progress moved on a random number of steps,
then a random extra delay, so the process dies anywhere in a step's life. Some land
blind, a random time after the start, but never later than a few steps in (a fast start
must not drain the input before the kills are made). What a step is, is the test's
:class:`Progress`: commits of the curated Delta table (:class:`DeltaCommits`), records
out of a transformation, batches an extraction committed, ...

Every choice comes from ``random.Random(seed)``; the tests print the seed, and
``DATAPLUMP_KILL_SEED=<seed>`` replays it (:func:`tests.support.running.kill_seed`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from tests.support.cli import CliResult, Command
from tests.support.loading import delta_commits

C = TypeVar("C", bound=Command)


class Progress(Protocol):
    """How far the killed command's work got: a count that only grows."""

    def count(self) -> int:
        """The steps seen so far."""
        ...

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` pass (a probe that has to poll for news polls meanwhile)."""
        ...

    def at(self, mark: int) -> str:
        """Where a blind kill landed, the count having reached ``mark``."""
        ...

    def after(self, mark: int) -> str:
        """What a targeted kill came after, the count having reached ``mark``."""
        ...


@dataclass(frozen=True)
class DeltaCommits:
    """Progress as the commits of a Delta table (the curated one)."""

    table: Path

    def count(self) -> int:
        return delta_commits(self.table)

    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    def at(self, mark: int) -> str:
        return f"at commit {mark - 1} of the curated table"

    def after(self, mark: int) -> str:
        return f"commit {mark - 1} of the curated table"


@dataclass(frozen=True)
class Pace:
    """When a :class:`Killer` strikes."""

    blind: float
    """The chance that a kill lands blind."""
    blind_within: float
    """A blind kill lands 0.3 s to this many seconds after the start ..."""
    early: int
    """... or once the progress moved this far, if that comes first."""
    steps: int
    """A targeted kill waits until the progress moved 1 to this many steps on ..."""
    extra: float
    """... then 0 to this many seconds more."""
    tick: float
    """Seconds between two looks at the progress while a targeted kill waits."""
    patience: float
    """Seconds a targeted kill waits for its step before the test fails."""
    show_output: int = 0
    """Characters of the command's output (its end) that such a failure shows."""


@dataclass
class Killer(Generic[C]):
    """Starts a command and SIGKILLs it at seeded random moments; :meth:`report` says how."""

    launch: Callable[[str], C]
    """Starts the command, given the label of its log files."""
    progress: Progress
    pace: Pace
    seed: int
    budget: float
    """Seconds the kills may take before the test is failed as hung."""
    events: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.deadline = time.monotonic() + self.budget

    def report(self) -> str:
        return f"seed {self.seed}; " + "; ".join(self.events)

    def start(self, label: str | None = None) -> C:
        """Start the command (labelled ``run<events so far>`` unless ``label`` is given)."""
        if time.monotonic() > self.deadline:
            raise AssertionError(f"over {self.budget:.0f}s: {self.report()}")
        return self.launch(label or f"run{len(self.events)}")

    def moment(self, run: C, *, blind_ok: bool = True) -> str:
        """Wait for a random moment of ``run``'s work (blind ones only if ``blind_ok``);
        say which."""
        moment = self._moment(run, blind_ok=blind_ok, last_step=None)
        assert moment is not None  # only a last step stops the wait
        return moment

    def _moment(self, run: C, *, blind_ok: bool, last_step: int | None) -> str | None:
        """:meth:`moment`, or None at once when the drawn step is past ``last_step`` (a
        count the test must not kill after)."""
        progress, pace = self.progress, self.pace
        progress.wait(0.0)  # take in what happened before
        if blind_ok and self.rng.random() < pace.blind:  # blind: start-up or the first steps
            delay = self.rng.uniform(0.3, pace.blind_within)
            moment = f"{delay:.2f}s after start"
            end = time.monotonic() + delay
            early = progress.count() + pace.early  # a fast start must not drain the input
            if last_step is not None:
                early = min(early, last_step)
            while run.running() and time.monotonic() < end:
                if progress.count() >= early:
                    return f"{progress.at(early)}, {moment} at most"
                progress.wait(0.02)
            return moment
        target = progress.count() + self.rng.randint(1, pace.steps)
        if last_step is not None and target > last_step:
            return None
        end = time.monotonic() + pace.patience
        while run.running() and progress.count() < target:
            if time.monotonic() > end:
                stalled = f"no progress in {pace.patience:.0f}s: {self.report()}"
                if pace.show_output:
                    stalled += f"\n{run.output[-pace.show_output :]}"
                raise AssertionError(stalled)
            progress.wait(pace.tick)
        extra = self.rng.uniform(0.0, pace.extra)
        moment = f"{extra * 1000:.0f}ms after {progress.after(target)}"
        time.sleep(extra)
        return moment

    def kill_at_random(self, run: C, *, last_step: int | None = None) -> bool:
        """Kill ``run`` at a random moment, not after ``last_step``; False if it ended by
        itself first (exit 0), or was left to end because the moment drawn came later."""
        moment = self._moment(run, blind_ok=True, last_step=last_step)
        if moment is None:
            return self._finish(run, f"left to finish (past step {last_step})")
        if not run.running():
            return self._finish(run, f"ended by itself before the kill ({moment})")
        result = run.kill()
        if result.returncode == 0:  # it exited between the check and the signal
            self.events.append(f"run ended by itself at the kill ({moment})")
            return False
        assert result.returncode == -9, result.describe()
        self.events.append(f"SIGKILL {moment}")
        return True

    def _finish(self, run: C, what: str) -> bool:
        result = run.wait(max(5.0, self.deadline - time.monotonic()))
        assert result.returncode == 0, f"{self.report()}\n{result.describe()}"
        self.events.append(f"run {what}: exit 0 after {result.seconds:.1f}s")
        return False

    def final(self, done: str) -> CliResult:
        """Run the command to its end, unkilled: it must exit 0 and say ``done``."""
        final = self.start().wait(max(10.0, self.deadline - time.monotonic()))
        assert final.returncode == 0, f"{self.report()}\n{final.describe()}"
        assert done in final.stdout, final.describe()
        self.events.append(f"final run: exit 0 after {final.seconds:.1f}s")
        return final
