"""One ``dataplump run`` per pipeline: a lock taken by the supervisor for its whole life.

Two runs of one pipeline would not double a row (every stage fences its twin through its
Kafka transactional id, the loader through the table lock), but they would fence each
other's stages over and over and move nothing, with a screen full of ``_FENCED`` lines.
So ``run`` takes an exclusive ``flock`` on ``<tmp>/dataplump/run-<pipeline>-<hash>.lock``
(the hash names the pipeline and its Kafka cluster) and a second ``run`` of the same
pipeline on this host stops at once with one line naming the first: its pid, host,
start time and pipeline file. The kernel drops the lock when the process ends, even on
``kill -9``, so a restart after a crash never finds a stale lock.

Runs on two hosts are not fenced here; there the stages' own fencing keeps the data
exact (each stage's transactional id, one consumer group per stage).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import IO

from dataplump.errors import TerminalError
from dataplump.locks import lock_or_holder, unlock

LOCK_DIR_ENV = "DATAPLUMP_RUN_LOCK_DIR"
"""Overrides the folder of the run locks (default ``<tmp>/dataplump``)."""


class RunLockedError(TerminalError):
    """Another ``dataplump run`` of the same pipeline holds the lock."""


def lock_path(pipeline: str, bootstrap: str) -> Path:
    """Where the run lock of ``pipeline`` on the cluster ``bootstrap`` lives."""
    folder = Path(os.environ.get(LOCK_DIR_ENV) or Path(tempfile.gettempdir()) / "dataplump")
    digest = hashlib.sha256(f"{pipeline}\0{bootstrap}".encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", pipeline)[:60]
    return folder / f"run-{safe}-{digest}.lock"


class RunLock:
    """The exclusive lock of one pipeline's ``run`` on this host (see the module doc)."""

    def __init__(self, pipeline: str, bootstrap: str, config: Path) -> None:
        self.pipeline, self.path = pipeline, lock_path(pipeline, bootstrap)
        self.config = config
        self._handle: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock, or raise :class:`RunLockedError` naming the run that holds it."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):  # shared by the users of this host
                self.path.parent.chmod(0o1777)
            handle: IO[str] = self.path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise RunLockedError(
                f"cannot open the run lock {self.path}: {exc.strerror}; set"
                f" {LOCK_DIR_ENV} to a writable folder"
            ) from None
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        holder = lock_or_holder(handle, f", started {started}, pipeline file {self.config}")
        if holder is not None:
            raise RunLockedError(
                f"another `dataplump run` of pipeline `{self.pipeline}` is running"
                f" ({holder or 'a process that did not say who it is'});"
                " two runs of one pipeline would fence each other's stages: stop that one"
                " first (Ctrl-C), or leave it running"
            ) from None
        self._handle = handle

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._handle is not None:
            unlock(self._handle)
            self._handle = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
