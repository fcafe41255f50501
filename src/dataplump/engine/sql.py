"""The ``sql`` step: one DuckDB SELECT over the batch, read from and returned as Arrow.

The incoming rows are the relation ``batch`` (and the table's own name, unless a
reference has that name); every reference table is a relation named after it. DuckDB
scans the Arrow memory in place and hands the result back as Arrow, so a step costs
one query and no copy of the input. ``SELECT *`` and ``o.*`` carry the hidden lineage
column ``__dp_row``; a query that drops it (an explicit column list, ``GROUP BY``)
loses the lineage for the rest of the steps.

Connections are DuckDB in-memory databases set to UTC, without file or network access
(a step sees only the batch and the references) and without extension downloads.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from dataplump.contracts._sql import first_line
from dataplump.engine.builtin import StepError
from dataplump.engine.errors import TransientStepError

if TYPE_CHECKING:
    from dataplump.engine.references import ReferenceTables
    from dataplump.engine.spec import SqlStep

BATCH = "batch"
"""The relation SQL steps read the incoming rows from."""
RESOURCE_ERRORS = (duckdb.OutOfMemoryException, duckdb.InterruptException, duckdb.IOException)
"""DuckDB errors that say nothing about the batch: retrying may work."""


def new_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection: UTC, no file or network access, no downloads."""
    con = duckdb.connect(":memory:")
    for setting in (
        "SET TimeZone = 'UTC'",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
        "SET enable_external_access = false",
        "SET lock_configuration = true",
    ):
        con.execute(setting)
    return con


class SqlRunner:
    """Runs a table's SQL steps on one connection, one batch at a time (a lock)."""

    def __init__(self, table: str, references: ReferenceTables | None) -> None:
        self.table = table
        self.references = references
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def run(self, step: SqlStep, batch: pa.Table) -> pa.Table:
        """The query's result; :class:`StepError` for an error in the query or the data,
        :class:`TransientStepError` when DuckDB runs out of memory or is interrupted."""
        with self._lock:
            con = self._con = self._con or new_connection()
            names = [BATCH]
            if self.references is not None:
                self.references.register(con)
                taken = set(self.references.names)
            else:
                taken = set()
            if self.table not in taken and self.table.lower() != BATCH:
                names.append(self.table)
            for name in names:
                con.register(name, batch)
            try:
                return con.sql(step.query).to_arrow_table()
            except RESOURCE_ERRORS as exc:
                raise TransientStepError(
                    f"table `{self.table}`: DuckDB could not run a SQL step ({first_line(exc)});"
                    " retry later, or with smaller batches"
                ) from None
            except duckdb.Error as exc:
                raise StepError(first_line(exc)) from None
            finally:
                for name in names:
                    con.unregister(name)

    def close(self) -> None:
        """Close the connection (a later ``run`` opens a new one)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None
