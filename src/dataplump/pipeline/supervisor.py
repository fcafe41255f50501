"""Supervision of the stage processes of ``dataplump run``.

Every stage runs in a child process of its own (:func:`dataplump.pipeline.stages.run_stage`).
A child that ends with an error, or dies (killed, crashed), is reported and started again
after a backoff that doubles up to :data:`MAX_BACKOFF` (and starts over once the stage
has run :data:`HEALTHY_AFTER` seconds): a stage is never silently gone. Every stage
commits its progress with its output, so a restart resumes without loss or duplicates.

Two modes:

- :meth:`Supervisor.run_forever`: all stages at once until :meth:`stop`;
- :meth:`Supervisor.run_once`: the stages one after the other, each draining its input
  (extract to the source's current end, then transform, load, notify, and the reports due
  when ``present.reports`` is set); a stage that fails is restarted up to
  :data:`ONCE_ATTEMPTS` times, then the run stops with its error (at once for an error a
  retry cannot fix, such as a wrong config).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dataplump.errors import DataPlumpError
from dataplump.pipeline.stages import STAGES, run_stage, stages_for

MAX_BACKOFF = 60.0
FIRST_BACKOFF = 1.0
HEALTHY_AFTER = 60.0
ONCE_ATTEMPTS = 3
STOP_GRACE = 60.0
"""Seconds a stage has to finish its batch after :meth:`Supervisor.stop` before it is killed."""


class StageFailedError(DataPlumpError):
    """A stage of ``run --once`` failed every attempt."""


@dataclass
class StageState:
    """What the supervisor knows of one stage."""

    name: str
    status: str = "waiting"
    """`waiting`, `running`, `restarting`, `done`, `failed` or `stopped`."""
    restarts: int = 0
    """Restarts in a row (reset once the stage has run :data:`HEALTHY_AFTER` seconds)."""
    restarts_total: int = 0
    last_error: str | None = None
    started_at: float | None = None
    next_start: float | None = None
    process: Any = field(default=None, repr=False)
    reported: bool = False
    """The running child sent its final event (done, error or fatal)."""
    fatal: bool = False
    """Its last error was one a retry cannot fix."""
    stop_seen: float | None = None
    """When the supervisor first saw the child still running after :meth:`Supervisor.stop`."""


Event = tuple[str, str, Any]
"""(kind, stage, payload): what the children report, and ``restart`` / ``crash`` from here."""


class Supervisor:
    """Starts, watches and restarts the stage processes of one pipeline file."""

    def __init__(
        self,
        config: Path,
        bootstrap: str,
        *,
        stages: Sequence[str] | None = None,
        on_event: Callable[[Event], None] = lambda _event: None,
    ) -> None:
        """``stages``: default :data:`STAGES`, and ``report`` when the pipeline file
        schedules reports (``present.reports``)."""
        if stages is None:
            from dataplump.config import load_config

            stages = stages_for(load_config(config))
        self.config = config
        self.bootstrap = bootstrap
        self.on_event = on_event
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._events: Any = self._context.Queue()
        self.states = {name: StageState(name) for name in stages}

    # -- control ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask every stage to finish its current batch and exit (first Ctrl-C)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def kill(self) -> None:
        """Kill every stage at once (second Ctrl-C); a restart resumes from the commits."""
        for state in self.states.values():
            if state.process is not None and state.process.is_alive():
                state.process.kill()
        for state in self.states.values():
            if state.process is not None:
                state.process.join(5)

    # -- modes --------------------------------------------------------------------------

    def run_forever(self, tick: Callable[[], None] = lambda: None) -> None:
        """Run every stage until :meth:`stop`, restarting those that end; ``tick`` is
        called about twice a second (to refresh a view)."""
        for state in self.states.values():
            self._start(state, once=False)
        while True:
            self._drain_events(0.5)
            now = time.monotonic()
            for state in self.states.values():
                self._check(state, once=False, now=now)
            tick()
            if self.stopping and not any(s.status == "running" for s in self.states.values()):
                return

    def run_once(self, tick: Callable[[], None] = lambda: None) -> None:
        """Run the stages one after the other, each to the end of its input."""
        for state in self.states.values():
            attempts = 0
            while True:
                attempts += 1
                self._start(state, once=True)
                while state.status == "running":
                    self._drain_events(0.5)
                    self._check(state, once=True, now=time.monotonic())
                    tick()
                if state.status == "done" or self.stopping:
                    break
                if attempts >= ONCE_ATTEMPTS or state.fatal:
                    state.status = "failed"
                    if state.fatal:
                        raise StageFailedError(f"{state.name}: {state.last_error}")
                    raise StageFailedError(
                        f"{state.name} failed {attempts} times; last error: {state.last_error}"
                    )
                delay = _backoff(attempts - 1)
                state.restarts_total += 1
                self.on_event(("restart", state.name, (state.last_error, delay)))
                if self._stop.wait(delay):
                    break
            if self.stopping:
                state.status = "stopped" if state.status != "done" else "done"
                return

    # -- internals ----------------------------------------------------------------------

    def _start(self, state: StageState, *, once: bool) -> None:
        process = self._context.Process(
            target=run_stage,
            args=(state.name, self.config, self.bootstrap, once, self._stop, self._events),
            name=f"dataplump-{state.name}",
            daemon=True,
        )
        process.start()
        state.process = process
        state.status = "running"
        state.reported = False
        state.started_at = time.monotonic()
        state.next_start = None

    def _drain_events(self, timeout: float, limit: int = 500) -> None:
        """Handle the events waiting (at most ``limit``, so a view keeps refreshing)."""
        try:
            event: Event = self._events.get(timeout=timeout)
        except queue.Empty:
            return
        for _ in range(limit):
            kind, stage, payload = event
            state = self.states.get(stage)
            if state is not None and kind in ("done", "error", "fatal"):
                state.reported = True
                state.fatal = kind == "fatal"
                if kind != "done":
                    state.last_error = str(payload)
            self.on_event(event)
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return

    def _check(self, state: StageState, *, once: bool, now: float) -> None:
        """Notice a child that ended; in forever mode, schedule and make its restart."""
        if state.status == "restarting" and state.next_start is not None:
            if self.stopping:
                state.status = "stopped"
            elif now >= state.next_start:
                self._start(state, once=once)
            return
        if state.status != "running" or state.process is None or state.process.is_alive():
            if self.stopping and state.status == "running" and state.started_at is not None:
                self._kill_if_overdue(state, now)
            return
        state.process.join()
        self._drain_events(0.05)  # its last event may still be in the pipe
        code = state.process.exitcode
        if not state.reported:
            state.last_error = f"the process died (exit code {code})"
            self.on_event(("crash", state.name, state.last_error))
        clean = state.reported and state.last_error is None
        if clean or (self.stopping and state.reported):
            state.status = "done" if clean else "stopped"
            if once or self.stopping:
                return
        if once:
            state.status = "failed"
            return
        if self.stopping:
            state.status = "stopped"
            return
        healthy = state.started_at is not None and now - state.started_at > HEALTHY_AFTER
        state.restarts = 0 if healthy else state.restarts
        delay = _backoff(state.restarts)
        state.restarts += 1
        state.restarts_total += 1
        state.status = "restarting"
        state.next_start = now + delay
        self.on_event(("restart", state.name, (state.last_error, delay)))
        state.last_error = None

    def _kill_if_overdue(self, state: StageState, now: float) -> None:
        if state.stop_seen is None:
            state.stop_seen = now
        elif now - state.stop_seen > STOP_GRACE:
            state.process.kill()


def _backoff(restarts: int) -> float:
    """Seconds before the restart after ``restarts`` restarts in a row: 1, 2, 4, ... 60."""
    return float(min(MAX_BACKOFF, FIRST_BACKOFF * 2**restarts))


__all__ = ["STAGES", "StageFailedError", "StageState", "Supervisor"]
