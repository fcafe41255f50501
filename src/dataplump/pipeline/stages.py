"""Each stage as the body of a child process of ``dataplump run``.

A body runs one stage of one pipeline file until ``stop`` is set (or, with ``once``,
until its input is drained) and reports on ``events`` (a multiprocessing queue):

- ``("progress", stage, counts)``: the counts of one table (a dict), live;
- ``("error", stage, message)``: the one line that ended the stage (worth a retry);
- ``("fatal", stage, message)``: the same for an error a retry cannot fix (a wrong
  config, a refused login, data a step cannot take): ``run --once`` stops at once;
- ``("done", stage, "")``: the stage ended cleanly.

The bodies take plain arguments (a path, strings, booleans) so that a ``spawn`` child
can receive them, and import their stage only when they run.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from dataplump.config import load_config
from dataplump.errors import ConfigError, DataPlumpError, TerminalError
from dataplump.logs import setup_logging

Report = Callable[[Any], None]

STAGES = ("extract", "transform", "load", "notify")
"""The stages ``run`` supervises, in the order ``--once`` runs them."""

NOTIFY_RETRY_FOR = 60.0
"""With ``once``: seconds each notification is retried before it is kept for next time."""


def run_stage(stage: str, config: Path, bootstrap: str, once: bool, stop: Any, events: Any) -> None:
    """Run ``stage`` in this (child) process, reporting on ``events``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides when to stop
    level = logging.getLevelName(os.environ.get("DATAPLUMP_LOG_LEVEL", "warning").upper())
    setup_logging(level=level, prefix=stage)
    if stage == "notify":  # its log lines are the `log` channel's notifications (resolved: INFO)
        logging.getLogger("dataplump.notify").setLevel(min(level, logging.INFO))

    def report(counts: Any) -> None:
        events.put(("progress", stage, counts if isinstance(counts, dict) else asdict(counts)))

    try:
        pipeline = load_config(config)
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
    from dataplump.pipeline.transform import Transformer

    worker = Transformer(pipeline, bootstrap, on_progress=report)
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


BODIES: dict[str, Callable[[Any, str, bool, Any, Report], None]] = {
    "extract": _extract,
    "transform": _transform,
    "load": _load,
    "notify": _notify,
}
