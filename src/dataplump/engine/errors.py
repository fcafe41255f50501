"""Errors of the engine package::

    ConfigError (dataplump.errors)
    └── StepConfigError       a table's steps cannot be built: unknown table, a pandas or
                              polars function that cannot be imported, a reference that
                              is not declared
    EngineError (DataPlumpError)
    ├── StepFailed            a step failed for the whole batch (terminal): SQL error, a
    │                         user function raised or returned no DataFrame, a column the
    │                         step names is missing; send the batch to `<p>.failed`
    ├── TransientStepError    DuckDB ran out of memory or was interrupted (transient):
    │                         retry the batch later
    └── ReferenceLoadError    a reference table cannot be loaded (transient when its
                              database cannot be reached, else terminal)

A row that fails a step (a value that cannot be cast or parsed) is not an error:
:meth:`~dataplump.engine.TableTransform.apply` returns it in ``row_failures``.
"""

from __future__ import annotations

from dataplump.errors import ConfigError, DataPlumpError, TerminalError, TransientError


class EngineError(DataPlumpError):
    """Root of the errors raised while transforming a batch."""


class StepConfigError(ConfigError):
    """A table's steps cannot be built from the config; the message names the table, the
    step number and kind, and the fix."""


class StepFailed(EngineError, TerminalError):
    """A step failed for the whole batch; retrying the same batch fails the same way.

    ``str()`` is one line: ``table `orders`, step 4 (pandas steps/o.py:f): <message>``.
    """

    def __init__(
        self, table: str, step: str, kind: str, message: str, traceback_summary: str = ""
    ) -> None:
        self.table = table
        self.step = step
        """The step's label, ``<number>:<kind>``, e.g. ``4:pandas`` (numbers count from 1)."""
        self.kind = kind
        """The step's kind: ``sql``, ``pandas``, ``cast``..."""
        self.message = message
        """What went wrong, one line."""
        self.traceback_summary = traceback_summary
        """For a user function: the frames of the user's code, innermost last, one per
        line (``file:line in function: source``); empty otherwise."""
        number = step.split(":", 1)[0]
        super().__init__(f"table `{table}`, step {number} ({kind}): {message}")


class TransientStepError(EngineError, TransientError):
    """A step failed for a reason that is not the batch's (DuckDB out of memory,
    interrupted, an I/O error); retry the batch later, or with smaller batches."""


class ReferenceLoadError(EngineError, TerminalError):
    """A reference table cannot be loaded: a missing file, a table that does not exist."""


class TransientReferenceLoadError(EngineError, TransientError):
    """A reference table cannot be loaded now: its database cannot be reached."""
