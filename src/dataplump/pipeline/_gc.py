"""No cyclic garbage collection while one poll is consumed and handled (load, transform)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block.

    A poll of 50,000 records makes about 450,000 container objects (messages, their
    header lists and pairs) that all live until the poll is handled: the collector would
    run hundreds of times over them and promote them all, for nothing (they are freed
    by reference counting). Cycles made meanwhile are collected after the poll.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
