"""Errors of ``dataplump init``."""

from __future__ import annotations

from dataplump.errors import TerminalError

__all__ = ["ScaffoldError"]


class ScaffoldError(TerminalError):
    """The pipeline folder cannot be scaffolded: the database cannot be read, a table
    named does not exist, or a file would be overwritten without ``--force``."""
