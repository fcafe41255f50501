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

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
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
    events: Any = field(default=None, repr=False)
    """The supervisor's end of the running child's own event pipe."""
    standby: Any = field(default=None, repr=False)
    """``run --once``: (process, event pipe, go flag) of this stage's next child, started
    while the stage before it works and waiting for its turn (:func:`run_stage`)."""
    finished: bool = False
    """The running child sent ``done``: all its work is committed (it may still be exiting)."""
    go: Any = field(default=None, repr=False)
    """The go flag of the running child, if it was a standby. Kept while it runs: the
    flag's shared memory is freed with it, and the next flag would take its place (seen:
    a started standby read False again and never began)."""


Event = tuple[str, str, Any]
"""(kind, stage, payload): what the children report, and ``restart`` / ``crash`` from here."""


class StopFlag:
    """The stop signal of every stage: one byte of shared memory, no lock.

    A ``multiprocessing.Event`` is a condition over a lock that every process shares: a
    stage killed with ``kill -9`` while inside ``is_set()`` or ``wait()`` left that lock taken
    for ever, and the supervisor and every other stage froze at their next look at it (a
    Ctrl-C then did nothing). Reading and writing one byte needs no lock; :meth:`wait`
    polls every 50 ms.
    """

    def __init__(self, context: Any) -> None:
        self._flag = context.RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._flag.value = True

    def is_set(self) -> bool:
        return bool(self._flag.value)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` seconds passed; True if set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._flag.value:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            time.sleep(0.05 if left is None else min(0.05, left))
        return True


class EventSender:
    """A stage's end of its own event pipe to the supervisor (``put`` like a queue's).

    One pipe per stage process, one writer each: a stage killed while reporting can only
    break its own pipe. (A shared ``multiprocessing.Queue`` has a writers' lock that a
    killed stage keeps for ever, silencing the others.)
    """

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def put(self, event: Event) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: nobody to tell
            self._connection.send(event)


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
        self._stop = StopFlag(self._context)
        self.states = {name: StageState(name) for name in stages}
        self._exiting: list[tuple[Any, Any]] = []
        """``run --once``: (process, event pipe) of stages that reported ``done`` and were
        still exiting when the next stage started (:meth:`reap` waits for them)."""

    # -- control ------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask every stage to finish its current batch and exit (first Ctrl-C)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def kill(self) -> None:
        """Kill every stage at once (second Ctrl-C); a restart resumes from the commits."""
        self._drop_standbys()
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

    def warm_up(self) -> None:
        """Start the first stage's process of :meth:`run_once` now, waiting for its turn:
        its interpreter start and imports overlap what the caller does before the run
        (``run --once`` reads the ledger meanwhile)."""
        first = next(iter(self.states.values()), None)
        if first is not None and first.standby is None:
            self._spawn_standby(first)

    def run_once(self, tick: Callable[[], None] = lambda: None, *, reap: bool = True) -> None:
        """Run the stages one after the other, each to the end of its input.

        While a stage works, the next one's process is already started and waits for its
        turn (:func:`run_stage` with ``go``): its interpreter start, imports and config
        read overlap the work before it. It touches nothing before its turn. A stage is
        done when its child reports ``done`` (sent after its last commit); the next one
        starts then, while that child exits (interpreter and client teardown took 2 to 3
        seconds per stage on a loaded machine). With ``reap`` (the default) this returns
        once every child has exited; without, call :meth:`reap`.
        """
        try:
            self._run_once(tick)
        finally:
            self._drop_standbys()
            if reap:
                self.reap()

    def reap(self, timeout: float = STOP_GRACE) -> None:
        """Wait for the children of :meth:`run_once` that reported ``done`` to exit (each
        has ``timeout`` seconds, then it is killed: its work is committed already)."""
        while self._exiting:
            process, reader = self._exiting.pop()
            process.join(timeout)
            if process.is_alive():
                process.kill()
                process.join(5)
            reader.close()

    def _run_once(self, tick: Callable[[], None]) -> None:
        order = list(self.states.values())
        for index, state in enumerate(order):
            attempts = 0
            while True:
                attempts += 1
                self._start(state, once=True)
                if index + 1 < len(order) and order[index + 1].standby is None:
                    self._spawn_standby(order[index + 1])
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

    def _spawn(self, name: str, *, once: bool, go: StopFlag | None) -> tuple[Any, Any]:
        """Start a child running stage ``name``; return it and the reading end of its pipe."""
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_stage,
            args=(name, self.config, self.bootstrap, once, self._stop, EventSender(writer), go),
            name=f"dataplump-{name}",
            daemon=True,
        )
        try:
            process.start()
        finally:
            writer.close()  # the child holds its own copy: its death ends the pipe
        return process, reader

    def _spawn_standby(self, state: StageState) -> None:
        """Start ``state``'s next child (``run --once``), waiting for its go flag."""
        go = StopFlag(self._context)
        process, reader = self._spawn(state.name, once=True, go=go)
        state.standby = (process, reader, go)

    def _drop_standbys(self) -> None:
        """Kill the standby children that never got their turn (they did nothing)."""
        for state in self.states.values():
            if state.standby is None:
                continue
            process, reader, _ = state.standby
            state.standby = None
            process.kill()
            process.join(5)
            reader.close()

    def _start(self, state: StageState, *, once: bool) -> None:
        if state.events is not None:
            state.events.close()
        if state.standby is not None:  # started earlier, waiting for its turn: go
            process, reader, go = state.standby
            state.standby = None
            go.set()
            state.go = go
        else:
            process, reader = self._spawn(state.name, once=once, go=None)
            state.go = None
        state.process = process
        state.events = reader
        state.status = "running"
        state.reported = False
        state.finished = False
        state.started_at = time.monotonic()
        state.next_start = None

    def _drain_events(self, timeout: float, limit: int = 500) -> None:
        """Handle the events waiting (at most ``limit``, so a view keeps refreshing)."""
        readers = [s.events for s in self.states.values() if s.events is not None]
        if not readers:
            time.sleep(timeout)
            return
        handled = 0
        for reader in multiprocessing.connection.wait(readers, timeout):
            state = next(s for s in self.states.values() if s.events is reader)
            while handled < limit and self._read_event(state):
                handled += 1

    def _read_event(self, state: StageState) -> bool:
        """Handle one event of ``state``'s pipe if one is there; False if none (or the pipe
        ended: the child is gone, its last events read)."""
        reader = state.events
        try:
            if reader is None or not reader.poll():
                return False
            kind, stage, payload = reader.recv()
        except (EOFError, OSError):
            if reader is not None:
                reader.close()
            state.events = None
            return False
        if kind in ("done", "error", "fatal") and stage == state.name:
            state.reported = True
            state.finished = kind == "done"
            state.fatal = kind == "fatal"
            if kind != "done":
                state.last_error = str(payload)
        self.on_event((kind, stage, payload))
        return True

    def _check(self, state: StageState, *, once: bool, now: float) -> None:
        """Notice a child that ended; in forever mode, schedule and make its restart."""
        if state.status == "restarting" and state.next_start is not None:
            if self.stopping:
                state.status = "stopped"
            elif now >= state.next_start:
                self._start(state, once=once)
            return
        if (
            once
            and state.status == "running"
            and state.finished
            and state.process is not None
            and state.events is not None
            and state.process.is_alive()
        ):  # all committed: the next stage need not wait for this process to exit
            state.status = "done"
            state.last_error = None
            self._exiting.append((state.process, state.events))
            state.events = None
            return
        if state.status != "running" or state.process is None or state.process.is_alive():
            if self.stopping and state.status == "running" and state.started_at is not None:
                self._kill_if_overdue(state, now)
            return
        state.process.join()
        while self._read_event(state):  # its last events are still in its pipe
            pass
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
