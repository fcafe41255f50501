"""DuckDB plumbing shared by loading (validate rules) and checking (run them).

Queries are built as text (ruff's S608 is silenced where they are): identifiers go
through :func:`ident`, values through :func:`string` and :func:`number`, and the only
SQL taken as written is a contract's ``expression_is_true``, which comes from the
pipeline's own config, is checked at load to be one boolean expression, and runs on a
connection that cannot touch files or the network.

One in-memory DuckDB database per thread, set up once: times in UTC (so timestamps
render the same everywhere), no file or network access (a contract's SQL can only
see the batch), no extension downloads.
"""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_local = threading.local()

VALUE_CHARS = 200
"""Violations show at most this many characters of an offending value (then ``...``)."""


def connection() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection (created on first use)."""
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect(":memory:")
        for setting in (
            "SET TimeZone = 'UTC'",
            "SET preserve_insertion_order = false",
            "SET autoinstall_known_extensions = false",
            "SET autoload_known_extensions = false",
            "SET enable_external_access = false",
            "SET lock_configuration = true",
        ):
            con.execute(setting)
        _local.con = con
    return con


def ident(name: str) -> str:
    """A quoted SQL identifier: the name in double quotes, inner ones doubled."""
    return '"' + name.replace('"', '""') + '"'


def string(text: str) -> str:
    """A SQL string literal: the text in single quotes, inner ones doubled."""
    return "'" + text.replace("'", "''") + "'"


def number(text: str) -> str:
    """An exact numeric literal from a decimal text: ``1E+2`` -> ``100``."""
    return format(Decimal(text), "f")


def balanced(expression: str) -> bool:
    """Whether the parentheses of a SQL expression pair up (strings and comments aside),
    so that ``NOT (expression)`` negates all of it."""
    import duckdb

    tokens = duckdb.tokenize(expression)
    depth = 0
    for (start, kind), (end, _) in zip(tokens, [*tokens[1:], (len(expression), None)], strict=True):
        if kind != duckdb.token_type.operator:
            continue
        for char in expression[start:end]:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth < 0:
                return False
    return depth == 0


def wrap(expression: str) -> str:
    """``(expression)`` on lines of its own, so a trailing ``-- comment`` ends there."""
    return f"(\n{expression}\n)"


def first_line(error: Exception) -> str:
    """DuckDB's message, first line only (the rest is a caret drawing)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
