"""An exclusive ``flock`` that says who holds it: what the run lock and the lake table
lock share.

The holder takes the lock without waiting and writes ``pid <pid> on <host>`` (and what
else it wants said) into the lock file; a second taker gets that text back instead of the
lock, for its own error message. The kernel drops the lock when the holder's process
ends, even on ``kill -9``, so a lock file is never stale.

Used by :class:`dataplump.pipeline.runlock.RunLock` and
:class:`dataplump.sinks._lake.TableLock`; each raises its own error.
"""

from __future__ import annotations

import fcntl
import os
import socket
from typing import IO


def lock_or_holder(handle: IO[str], detail: str = "") -> str | None:
    """Take an exclusive lock on the open lock file ``handle`` without waiting.

    Taken: the file then says ``pid <pid> on <host><detail>``, and None is returned (the
    lock lasts while ``handle`` is open; :func:`unlock` drops it). Held by another
    process: ``handle`` is closed and what the holder wrote is returned ("" if nothing).
    """
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        return holder
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}{detail}\n")
    handle.flush()
    return None


def unlock(handle: IO[str]) -> None:
    """Drop the lock taken by :func:`lock_or_holder` and close ``handle``."""
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    handle.close()
