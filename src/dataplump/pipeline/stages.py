"""Each stage as the body of a child process of ``dataplump run``.

A body runs one stage of one pipeline file until ``stop`` is set (or, with ``once``,
until its input is drained) and reports on ``events`` (a multiprocessing queue):

- ``("progress", stage, counts)``: the counts of one table (a dict), live;
- ``("error", stage, message)``: the one line that ended the stage (worth a retry);
- ``("fatal", stage, message)``: the same for an error a retry cannot fix (a wrong
  config, a refused login, data a step cannot take): ``run --once`` stops at once;
- ``("done", stage, "")``: the stage ended cleanly.

The bodies take plain arguments (a path, strings, booleans) so that a ``spawn`` child
can receive them, and import their stage only when they run. The ``report`` stage
(scheduled reports, :mod:`dataplump.present.report_schedule`) runs only for a pipeline
file with ``present.reports`` (:func:`stages_for`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dataplump.config import PipelineConfig, load_config
from dataplump.errors import ConfigError, DataPlumpError, TerminalError
from dataplump.logs import setup_logging

log = logging.getLogger(__name__)
Report = Callable[[Any], None]

STAGES = ("extract", "transform", "load", "notify")
"""The stages ``run`` supervises, in the order ``--once`` runs them."""
REPORT_STAGE = "report"
"""Writes the scheduled reports; run (last) only when ``present.reports`` is not empty."""


def stages_for(pipeline: PipelineConfig) -> tuple[str, ...]:
    """The stages ``run`` supervises for ``pipeline``: :data:`STAGES`, and ``report``
    when it schedules reports."""
    return (*STAGES, REPORT_STAGE) if pipeline.present.reports else STAGES


NOTIFY_RETRY_FOR = 60.0
"""With ``once``: seconds a failing channel is retried before what it owes is kept for the next
run (a budget per channel and run, not per notification: a dead channel costs ``run --once``
this long at most, however many incidents it owes)."""


PRELOAD = {
    "extract": "dataplump.pipeline.extract",
    "transform": "dataplump.pipeline.transform",
    "load": "dataplump.pipeline.load",
    "notify": "dataplump.notify.service",
}
"""The module each stage's body imports: a standby stage imports it while it waits."""

GO_POLL = 0.02
"""Seconds between two looks of a standby stage at its go flag."""


def run_stage(
    stage: str,
    config: Path,
    bootstrap: str,
    once: bool,
    stop: Any,
    events: Any,
    go: Any = None,
) -> None:
    """Run ``stage`` in this (child) process, reporting on ``events``.

    With ``go`` (a flag, see :class:`~dataplump.pipeline.supervisor.StopFlag`) the process
    is a standby: it imports its stage and reads the pipeline file, then waits until
    ``go`` is set before it touches Kafka or a store, and reports nothing before (a
    config error waits too). ``run --once`` starts the next stage so while the current
    one works: the interpreter start and the imports are then off the critical path.
    If ``stop`` is set first, it exits having done nothing. Its process name is
    ``dpw-<stage>`` until ``go``, then ``dp-<stage>``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    _name_process(f"dp-{stage}" if go is None else f"dpw-{stage}")
    _stop_when_orphaned(stop)
    level = logging.getLevelName(os.environ.get("DATAPLUMP_LOG_LEVEL", "warning").upper())
    setup_logging(level=level, prefix=stage)
    if stage == "notify":  # its log lines are the `log` channel's notifications (resolved: INFO)
        logging.getLogger("dataplump.notify").setLevel(min(level, logging.INFO))
    if stage == "transform":  # the Spark UI's address, when the engine is Spark
        log.setLevel(min(level, logging.INFO))
    if stage == REPORT_STAGE:  # one line per report written or sent
        logging.getLogger("dataplump.present.report_schedule").setLevel(min(level, logging.INFO))

    def report(counts: Any) -> None:
        events.put(("progress", stage, counts if isinstance(counts, dict) else asdict(counts)))

    if go is not None:
        events = _Gated(events, stage, go, stop)
    try:
        pipeline = load_config(config)
        if go is not None:
            importlib.import_module(PRELOAD.get(stage, __name__))
            if not events.wait():
                return  # stopped before its turn: it did nothing
        BODIES[stage](pipeline, bootstrap, once, stop, report)
    except ConfigError as exc:
        events.put(("fatal", stage, f"{exc} (run `dataplump config check -c {config}`)"))
        return
    except TerminalError as exc:
        events.put(("fatal", stage, str(exc)))
        return
    except DataPlumpError as exc:
        events.put(("error", stage, str(exc)))
        return
    except Exception as exc:  # a bug must not look like a clean exit
        events.put(("error", stage, f"{type(exc).__name__}: {exc}"))
        return
    events.put(("done", stage, ""))


class _Gated:
    """A standby stage's events: nothing is sent before its go flag is set."""

    def __init__(self, events: Any, stage: str, go: Any, stop: Any) -> None:
        self._events, self._stage, self._go, self._stop = events, stage, go, stop

    def wait(self) -> bool:
        """Wait for go (True) or stop (False); takes the stage's own process name at go."""
        while not self._go.is_set():
            if self._stop.is_set():
                return False
            time.sleep(GO_POLL)
        _name_process(f"dp-{self._stage}")
        return True

    def put(self, event: Any) -> None:
        if self.wait():
            self._events.put(event)


ORPHAN_CHECK_EVERY = 1.0
"""Seconds between two checks that the supervisor still lives."""
ORPHAN_GRACE = 60.0
"""Seconds an orphaned stage has to finish its batch before it ends itself."""


def _stop_when_orphaned(stop: Any) -> None:
    """End this stage when the supervisor is gone (``kill -9`` of ``run`` alone): without it
    the stages would run on unsupervised, and fence the stages of the next ``run``. Sets
    ``stop`` (the stage, and its orphaned siblings, finish their batch and exit), then
    exits hard after :data:`ORPHAN_GRACE` seconds."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_CHECK_EVERY)
        log.warning("the supervisor (pid %d) is gone; stopping after the current batch", parent)
        stop.set()
        time.sleep(ORPHAN_GRACE)
        os._exit(1)

    threading.Thread(target=watch, name="dataplump-orphan-watch", daemon=True).start()


def _name_process(name: str) -> None:
    """Show ``name`` as this process's name in ``ps``/``top`` (Linux; elsewhere nothing), so
    an operator, or a test, can tell the stage processes of ``run`` apart."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(name[:15])


def _extract(pipeline: Any, bootstrap: str, once: bool, stop: Any, report: Report) -> None:
    from dataplump.pipeline.extract import Extractor

    # Each pass counts from zero: report the passes before it too (what `run` shows).
    before: dict[str, dict[str, int]] = {}

    def report_all(counts: Any) -> None:
        now = asdict(counts)
        for name, n in before.get(counts.table, {}).items():
            now[name] += n
        report(now)

    extractor = Extractor(pipeline, bootstrap, on_progress=report_all)
    while not stop.is_set():
        for counts in extractor.run_once():
            sums = before.setdefault(counts.table, {})
            for name in ("read", "valid", "invalid", "batches"):
                sums[name] = sums.get(name, 0) + getattr(counts, name)
        if once or stop.wait(pipeline.extract.poll_interval):
            return


def _transform(pipeline: Any, bootstrap: str, once: bool, stop: Any, report: Report) -> None:
    from dataplump.pipeline.transform import make_transformer

    worker = make_transformer(pipeline, bootstrap, on_progress=report)
    if ui := getattr(worker, "ui_address", None):
        log.info("Spark UI of the transformation: %s", ui)
    try:
        worker.run(once=once, stop=stop)
    finally:
        worker.close()


def _load(pipeline: Any, bootstrap: str, once: bool, stop: Any, report: Report) -> None:
    from dataplump.pipeline.load import Loader

    Loader(pipeline, bootstrap, on_progress=report).run(once=once, stop=stop)


def _notify(pipeline: Any, bootstrap: str, once: bool, stop: Any, report: Report) -> None:
    from dataplump.notify.service import Notifier, RetryPolicy

    retry = RetryPolicy(give_up_after=NOTIFY_RETRY_FOR if once else None)
    notifier = Notifier.from_config(pipeline, bootstrap=bootstrap, retry=retry)
    try:
        notifier.run(once=once, stop=stop)
    finally:
        notifier.close()


def _report(pipeline: Any, bootstrap: str, once: bool, stop: Any, report: Report) -> None:
    """Write the reports that are due, then sleep until the next one is (or ``stop``);
    with ``once``, the reports due now, then return (an error if one failed)."""
    from datetime import UTC, datetime

    from dataplump.present.report import read_for_report
    from dataplump.present.report_schedule import (
        RETRY_AFTER,
        KafkaReportState,
        run_due_reports,
        seconds_until_due,
    )

    state = KafkaReportState(pipeline, bootstrap)
    while not stop.is_set():
        outcomes = run_due_reports(
            pipeline,
            datetime.now(UTC),
            state,
            read=lambda: read_for_report(pipeline, bootstrap),
        )
        failed = [o for o in outcomes if not o.ok]
        if once:
            if failed:
                more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
                raise ReportStageError(f"{failed[0].error}{more}")
            return
        wait = seconds_until_due(pipeline, datetime.now(UTC), state)
        if failed:
            wait = min(wait, RETRY_AFTER) if wait > 0 else RETRY_AFTER
        stop.wait(max(wait, 0.2))


class ReportStageError(DataPlumpError):
    """A scheduled report of ``run --once`` could not be written or sent."""


BODIES: dict[str, Callable[[Any, str, bool, Any, Report], None]] = {
    "extract": _extract,
    "transform": _transform,
    "load": _load,
    "notify": _notify,
    REPORT_STAGE: _report,
}
