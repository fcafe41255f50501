"""Console output shared by every command: Rich on a TTY, plain text otherwise.

Rich turns colours off by itself when stdout is not a terminal and honours
``NO_COLOR``; commands print through these consoles so that rule holds everywhere.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def fail(message: str, *, code: int = 1) -> NoReturn:
    """Print one ``error:`` line to stderr and exit with ``code``."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)
