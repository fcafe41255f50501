"""Lake maintenance for Delta tables: the library side of ``dataplump lake``.

``compact`` rewrites small files into large ones, ``vacuum`` deletes files no version
younger than the retention needs (and the orphans of crashed writes), ``history`` lists
the commits with the Kafka offsets each one committed. Each returns plain data the CLI
prints. They may run while a loader writes: Delta's optimistic concurrency makes one of
two conflicting commits fail, and the loader retries a failed commit.

Each takes a table folder or an ``s3://bucket/prefix/<table>`` URL; for S3 pass the
sink's ``storage_options`` (:func:`dataplump.sinks._lake.table_place` builds them).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from dataplump.sinks._lake import library_error
from dataplump.sinks.base import SinkError
from dataplump.sinks.delta import APP_IDS_KEY

DEFAULT_RETENTION = dt.timedelta(days=7)
"""Delta's default: files removed from the table more than 7 days ago may be deleted."""


@dataclass(frozen=True)
class CompactResult:
    """What :func:`compact` did."""

    files_added: int
    files_removed: int
    version: int
    """Table version after compaction (unchanged when nothing needed compacting)."""


@dataclass(frozen=True)
class Commit:
    """One entry of :func:`history`, newest first."""

    version: int
    timestamp: dt.datetime
    operation: str
    """`WRITE`, `MERGE`, `OPTIMIZE`, `VACUUM START`, ..."""
    rows_added: int | None
    """Rows the commit added (`num_added_rows` / `num_target_rows_inserted`), if known."""
    app_ids: tuple[str, ...] = ()
    """Application ids (`dataplump:<topic>:<partition>`) the table held after this commit."""
    parameters: dict[str, Any] = field(default_factory=dict)


def open_table(table: Path | str, storage_options: dict[str, str] | None = None) -> DeltaTable:
    """The Delta table at ``table`` (a folder ``<lake>/<table>`` or its ``s3://`` URL), or a
    clear :class:`SinkError`."""
    try:
        return DeltaTable(str(table), storage_options=storage_options)
    except TableNotFoundError:
        raise SinkError(
            f"no Delta table at {table}; lake tables live at `<sink path>/<table>`"
        ) from None
    except (DeltaError, OSError) as error:
        raise SinkError(f"cannot open Delta table {table}: {_line(error)}") from error
    except Exception as error:  # delta-rs raises plain Exception for I/O failures
        raise SinkError(f"cannot open Delta table {table}: {_line(error)}") from error


def _line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:300] + " ..."


def compact(
    table: Path | str,
    target_size: int | None = None,
    *,
    storage_options: dict[str, str] | None = None,
) -> CompactResult:
    """Bin-pack the table's small files into files of about ``target_size`` bytes
    (default: the table's `delta.targetFileSize`, else 100 MiB). Readers see the same rows."""
    delta = open_table(table, storage_options)
    try:
        metrics = delta.optimize.compact(target_size=target_size)
    except Exception as error:  # delta-rs raises plain Exception for I/O failures
        raise library_error(error, f"cannot compact Delta table {table}") from error
    return CompactResult(
        files_added=int(metrics.get("numFilesAdded", 0)),
        files_removed=int(metrics.get("numFilesRemoved", 0)),
        version=delta.version(),
    )


def vacuum(
    table: Path | str,
    retention: dt.timedelta = DEFAULT_RETENTION,
    *,
    dry_run: bool = False,
    force: bool = False,
    storage_options: dict[str, str] | None = None,
) -> list[str]:
    """Delete files the table stopped using more than ``retention`` ago; returns their paths.

    A retention below 7 days can break readers still on an old version and time travel,
    so it needs ``force=True``. ``dry_run`` lists without deleting.
    """
    if retention < DEFAULT_RETENTION and not force:
        raise SinkError(
            f"vacuum retention {retention} is below Delta's safe minimum of 7 days;"
            " pass force=True (CLI: --force) if no reader uses an older version"
        )
    delta = open_table(table, storage_options)
    hours = int(retention.total_seconds() // 3600)
    try:
        return delta.vacuum(
            retention_hours=hours, dry_run=dry_run, enforce_retention_duration=not force
        )
    except Exception as error:
        raise library_error(error, f"cannot vacuum Delta table {table}") from error


def history(
    table: Path | str,
    limit: int | None = None,
    *,
    storage_options: dict[str, str] | None = None,
) -> list[Commit]:
    """The table's commits, newest first (at most ``limit``)."""
    delta = open_table(table, storage_options)
    commits = []
    for entry in delta.history(limit):
        metrics = entry.get("operationMetrics") or {}
        added = metrics.get("num_added_rows", metrics.get("num_target_rows_inserted"))
        commits.append(
            Commit(
                version=int(entry["version"]),
                timestamp=dt.datetime.fromtimestamp(entry["timestamp"] / 1000, dt.UTC),
                operation=str(entry.get("operation", "")),
                rows_added=None if added is None else int(added),
                app_ids=tuple(json.loads(entry[APP_IDS_KEY])) if APP_IDS_KEY in entry else (),
                parameters=dict(entry.get("operationParameters") or {}),
            )
        )
    return commits
