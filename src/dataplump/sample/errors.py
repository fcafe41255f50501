"""Errors of the sample database (a :class:`~dataplump.errors.TerminalError`)."""

from __future__ import annotations

from dataplump.errors import TerminalError

__all__ = ["SampleError"]


class SampleError(TerminalError):
    """The sample database cannot be created or grown as asked; the message says why."""
