"""Logging of every command: human-readable by default, JSON lines with
``--log-format json``; secrets are masked in both.

The format is passed to the stage processes of ``dataplump run`` through the environment
variable :data:`LOG_FORMAT_ENV`, so one flag covers every process.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter
from rich.console import Console
from rich.logging import RichHandler

from dataplump.notify.events import redact

LogFormat = Literal["text", "json"]
LOG_FORMAT_ENV = "DATAPLUMP_LOG_FORMAT"


class RedactSecrets(logging.Filter):
    """Mask URL passwords and ``password=``/``token=`` values in every record's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = redact(text)
        if masked != text:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            record.msg = f"{record.msg}: {redact(f'{type(error).__name__}: {error}')}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def log_format() -> LogFormat:
    """The format asked for (``--log-format``, or the environment), `text` by default."""
    return "json" if os.environ.get(LOG_FORMAT_ENV, "text").lower() == "json" else "text"


def setup_logging(
    fmt: LogFormat | None = None, *, level: int = logging.INFO, prefix: str = ""
) -> None:
    """Send the ``dataplump`` loggers to stderr in ``fmt`` (default: :func:`log_format`).

    ``prefix`` starts every text line (a stage process names itself); in JSON it is the
    field ``process``.
    """
    fmt = fmt or log_format()
    handler: logging.Handler
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"process": prefix} if prefix else None,
            )
        )
    elif sys.stderr.isatty():
        handler = RichHandler(console=Console(stderr=True), show_path=False, markup=False)
        handler.setFormatter(logging.Formatter(f"{prefix + ': ' if prefix else ''}%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        start = f"{prefix}: " if prefix else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s {start}%(levelname)-7s %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger("dataplump")
    root.handlers = [handler]
    root.setLevel(level)
    root.propagate = False
    # librdkafka's own lines: every failure they describe also reaches the caller as one
    # wrapped error, so they are shown only when debugging
    librdkafka = logging.getLogger("dataplump.kafka")
    librdkafka.setLevel(logging.DEBUG if level <= logging.DEBUG else logging.CRITICAL + 1)


__all__ = ["LOG_FORMAT_ENV", "LogFormat", "RedactSecrets", "log_format", "setup_logging"]
