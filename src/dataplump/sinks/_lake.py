"""What the lake sinks (Delta, Parquet) share: table paths, the writer lock, offset
filtering, newest-row-per-key reduction and the column type check.

Private: :mod:`dataplump.sinks.delta` and :mod:`dataplump.sinks.parquet` use it.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dataplump.locks import lock_or_holder, unlock
from dataplump.sinks.base import (
    OFFSET,
    PARTITION,
    TOPIC,
    Offsets,
    SinkError,
    SinkTarget,
    TransientSinkError,
)

if TYPE_CHECKING:
    from dataplump.config.models import SinkConfig
    from dataplump.sinks._s3 import S3Location

LOCK_FILE = "_dataplump.lock"
"""Writer lock inside each table folder (a leading `_` hides it from Delta's vacuum and
from pyarrow's dataset discovery)."""

# errno values that retrying cannot fix: the path itself is wrong.
_TERMINAL_ERRNO = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR}
_TERMINAL_OS_ERROR = ("os error 13)", "os error 1)", "os error 30)", "os error 20)")


def table_dir(path: Path, table: str) -> Path:
    """``<path>/<table>``: where one curated or ops table lives in a lake."""
    return Path(path) / table


@dataclass(frozen=True)
class TablePlace:
    """Where one lake table lives: a local folder, or an S3 prefix."""

    uri: str
    """What delta-rs and the messages take: the folder, or ``s3://bucket/prefix/<table>``."""
    local: Path | None
    """The folder of a local table (None on S3)."""
    s3: S3Location | None
    """The S3 location (None for a local table)."""

    @property
    def storage_options(self) -> dict[str, str] | None:
        """delta-rs ``storage_options`` (None for a local table)."""
        return None if self.s3 is None else self.s3.storage_options()


def table_place(config: SinkConfig, table: str) -> TablePlace:
    """Where table ``table`` of lake sink ``config`` lives (``<path>/<table>``)."""
    path = config.path
    if isinstance(path, str) and path.startswith("s3://"):
        from dataplump.sinks._s3 import S3Location

        where = S3Location.of(path, getattr(config, "s3", None)).child(table)
        return TablePlace(where.url, None, where)
    folder = table_dir(Path(path), table)
    return TablePlace(str(folder), folder, None)


def check_bucket(place: TablePlace) -> None:
    """On S3, fail now with one line if the bucket is missing or the keys are refused
    (skipped when the credentials are left to delta-rs: instance roles, profiles)."""
    if place.s3 is None or not (place.s3.access_key_id and place.s3.secret_access_key):
        return
    from dataplump.sinks._s3 import S3Client

    client = S3Client(place.s3)
    try:
        client.check_bucket()
    finally:
        client.close()


def os_error(error: OSError, what: str) -> SinkError | TransientSinkError:
    """An :class:`OSError` met while ``what`` as a one-line sink error.

    A path that is not writable is terminal (fix the path or its permissions); anything
    else (disk full, I/O error) is transient.
    """
    reason = error.strerror or str(error)
    where = f" ({error.filename})" if error.filename else ""
    if error.errno in _TERMINAL_ERRNO:
        return SinkError(f"{what}: {reason}{where}; fix the sink `path` or its permissions")
    return TransientSinkError(f"{what}: {reason}{where}; nothing was committed, retry")


def library_error(
    error: Exception, what: str, place: TablePlace | None = None
) -> SinkError | TransientSinkError:
    """An error of a storage library (delta-rs reports I/O errors as text) as a sink error."""
    text = " ".join(str(error).split())
    if place is not None and place.s3 is not None:
        from dataplump.sinks._s3 import classify_library_error

        terminal = classify_library_error(text, place.s3)
        if terminal is not None:
            return SinkError(f"{what}: {terminal}")
        if len(text) > 300:
            text = text[:300] + " ..."
    if any(code in text for code in _TERMINAL_OS_ERROR):
        return SinkError(f"{what}: {text}; fix the sink `path` or its permissions")
    return TransientSinkError(f"{what}: {text}; nothing was committed, retry")


class TableLock:
    """An exclusive ``flock`` on ``<table>/_dataplump.lock``, held while a sink lives.

    It fences a second loader of the same table: opening a second sink on a locked table
    (in this process or another) raises :class:`TransientSinkError`. The lock goes when
    :meth:`release` is called or the process dies (the kernel drops it, even on kill -9).
    """

    def __init__(self, folder: Path, table: str) -> None:
        self.path = folder / LOCK_FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle: IO[str] = self.path.open("a+", encoding="utf-8")
        except OSError as error:
            raise os_error(error, f"cannot open lake table `{table}`") from error
        holder = lock_or_holder(handle)
        if holder is not None:
            raise TransientSinkError(
                f"lake table `{table}` at {folder} is locked by another loader"
                f" ({holder or 'unknown'}); one loader writes a table at a time: stop the"
                " other one or wait for it"
            ) from None
        self._handle: IO[str] | None = handle

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._handle is not None:
            unlock(self._handle)
            self._handle = None


def app_id(topic: str, partition: int) -> str:
    """The Delta application id of one topic-partition: ``dataplump:<topic>:<partition>``."""
    return f"dataplump:{topic}:{partition}"


def parse_app_id(value: str) -> tuple[str, int] | None:
    """(topic, partition) of an id made by :func:`app_id`, None for any other id."""
    prefix, _, rest = value.partition(":")
    topic, _, partition = rest.rpartition(":")
    if prefix != "dataplump" or not topic or not partition.isdigit():
        return None
    return topic, int(partition)


def drop_committed(rows: pa.Table, committed: Offsets) -> tuple[pa.Table, int]:
    """``rows`` without those whose offset is below the committed next offset of their
    topic-partition, and how many were dropped. Rows without lineage columns are kept."""
    if not committed or rows.num_rows == 0 or OFFSET not in rows.column_names:
        return rows, 0
    stale = None
    for (topic, partition), next_offset in committed.items():
        mask = pc.and_(
            pc.and_(pc.equal(rows[TOPIC], topic), pc.equal(rows[PARTITION], partition)),
            pc.less(rows[OFFSET], next_offset),
        )
        stale = mask if stale is None else pc.or_(stale, mask)
    if stale is None:
        return rows, 0
    keep = pc.invert(pc.fill_null(stale, False))
    kept = rows.filter(keep)
    return kept, rows.num_rows - kept.num_rows


def newest_per_key(rows: pa.Table, key: tuple[str, ...]) -> pa.Table:
    """One row per ``key``: the one with the highest `_dp_offset` (the last one if the rows
    have no offsets). The order of the result is not meaningful."""
    if rows.num_rows < 2:
        return rows
    index = "__dp_row"
    numbered = rows.append_column(index, pa.array(range(rows.num_rows), pa.int64()))
    order = [(OFFSET, "descending")] if OFFSET in rows.column_names else []
    ordered = numbered.sort_by([*order, (index, "descending")])
    firsts = ordered.group_by(list(key), use_threads=False).aggregate([(index, "first")])
    return rows.take(firsts[f"{index}_first"])


def check_columns(rows: pa.Table, target: SinkTarget, table: str) -> None:
    """Refuse rows lacking the key (merge mode) or the partition columns."""
    needed = [*(target.primary_key if target.mode == "merge" else ()), *target.partition_by]
    missing = [column for column in needed if column not in rows.column_names]
    if missing:
        raise SinkError(
            f"rows for lake table `{table}` lack column(s) {', '.join(missing)}"
            f" (primary key / partition_by); columns are: {', '.join(rows.column_names)}"
        )


def type_changes(stored: dict[str, str], incoming: dict[str, str]) -> list[tuple[str, str, str]]:
    """(column, stored type, incoming type) of every column whose type differs."""
    return [
        (name, stored[name], kind)
        for name, kind in incoming.items()
        if name in stored and stored[name] != kind
    ]


def refuse_type_changes(changes: list[tuple[str, str, str]], table: str) -> None:
    """Raise the one-line :class:`SinkError` of a refused type change."""
    if not changes:
        return
    listed = "; ".join(f"column `{c}` from {old} to {new}" for c, old, new in changes[:5])
    more = f" ... and {len(changes) - 5} more" if len(changes) > 5 else ""
    raise SinkError(
        f"lake table `{table}`: refusing to change the type of {listed}{more};"
        " cast the column in a transform step, or set `allow_type_changes: true` on the sink"
        " (rewrites the table)"
    )
