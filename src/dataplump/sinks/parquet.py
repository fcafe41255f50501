"""The Parquet sink: plain Parquet files per table, committed by a manifest.

Layout of ``<path>/<table>/``::

    _dataplump_manifest.json      the commit: files, offsets, schema (replaced atomically)
    _dataplump.lock               the writer lock (see :class:`~dataplump.sinks._lake.TableLock`)
    part-<uuid>-<n>.parquet       committed data files (under `col=value/` when partitioned)

A write puts its files under hidden staging names (``.staging-<uuid>-<n>.parquet``),
fsyncs them, renames them to ``part-...`` and then replaces the manifest with one listing
them and the new offsets (a temporary file, fsync, ``os.replace``). The manifest is the
only truth: readers read the files it lists (:func:`read_parquet_table`), so a crash at any
moment leaves either the old or the new manifest, never a half-written batch. Files not in
the manifest (a crashed write) are removed at the next write.

Append only: merge mode is refused when the sink is opened (use the Delta sink to upsert).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.dataset as ds

from dataplump.sinks._lake import (
    LOCK_FILE,
    TableLock,
    check_columns,
    drop_committed,
    os_error,
    refuse_type_changes,
    table_dir,
    type_changes,
)
from dataplump.sinks.base import Offsets, Sink, SinkError, SinkTarget, WriteResult

if TYPE_CHECKING:
    from dataplump.config.models import SinkConfig

MANIFEST = "_dataplump_manifest.json"
_FORMAT = 1


class ParquetSink(Sink):
    """Appends rows of one table to the Parquet dataset ``<config.path>/<target.table>``.

    Partitioned (hive style, ``col=value/``) by ``target.partition_by``. A new column is
    added to the table's schema (older files read it as null); a changed type raises
    :class:`SinkError` unless ``config.allow_type_changes`` (readers then cast old files
    to the new type). Opening the sink takes the table's writer lock.
    """

    def __init__(self, name: str, config: SinkConfig, target: SinkTarget) -> None:
        super().__init__(name, config, target)
        if target.mode != "append":
            raise SinkError(
                f"sink `{name}` is a `parquet` sink, which only appends; table"
                f" `{target.table}` asks for `{target.mode}`: set `mode: append` on the sink,"
                " or use `kind: delta` to upsert by primary key"
            )
        self.path = table_dir(config.path, target.table)
        self._lock = TableLock(self.path, target.table)
        self._finalizer = weakref.finalize(self, self._lock.release)
        try:
            self._manifest = read_manifest(self.path)
        except SinkError:
            self.close()
            raise
        stored = tuple(self._manifest["partition_by"])
        if self._manifest["files"] and stored != target.partition_by:
            self.close()
            raise SinkError(
                f"Parquet table `{target.table}` at {self.path} is partitioned by"
                f" {list(stored)} but the config says {list(target.partition_by)};"
                " set `partition_by` to match, or write to a new table"
            )

    def describe(self) -> str:
        return f"{self.name} (parquet {self.path})"

    def close(self) -> None:
        """Release the table's writer lock."""
        self._finalizer()

    @property
    def version(self) -> int:
        """Number of commits of the manifest."""
        return int(self._manifest["version"])

    def committed(self) -> Offsets:
        return _offsets(self._manifest)

    def write(self, rows: pa.Table, offsets: Offsets) -> WriteResult:
        committed = self.committed()
        rows, skipped = drop_committed(rows, committed)
        advance = {key: nxt for key, nxt in offsets.items() if nxt > committed.get(key, -1)}
        if rows.num_rows == 0 and not advance:
            return WriteResult(0, skipped, self.version)
        check_columns(rows, self.target, self.target.table)
        schema = self._next_schema(rows.schema)
        what = f"sink `{self.name}`: cannot write Parquet table `{self.target.table}`"
        try:
            self._clean()
            files = self._write_files(rows) if rows.num_rows else []
            manifest = {
                "format": _FORMAT,
                "version": self.version + 1,
                "partition_by": list(self.target.partition_by),
                "schema": base64.b64encode(schema.serialize().to_pybytes()).decode("ascii"),
                "files": [*self._manifest["files"], *files],
                "offsets": [
                    {"topic": t, "partition": p, "next": n}
                    for (t, p), n in sorted((committed | advance).items())
                ],
            }
            _replace_json(self.path / MANIFEST, manifest)
        except OSError as error:
            raise os_error(error, what) from error
        except pa.ArrowException as error:
            raise SinkError(f"{what}: {error}") from error
        self._manifest = manifest
        return WriteResult(rows.num_rows, skipped, self.version)

    def _next_schema(self, incoming: pa.Schema) -> pa.Schema:
        stored = _schema(self._manifest)
        if stored is None:
            return incoming
        old = {f.name: str(f.type) for f in stored}
        changes = type_changes(old, {f.name: str(f.type) for f in incoming})
        if changes and not self.config.allow_type_changes:
            refuse_type_changes(changes, self.target.table)
        changed = {name for name, _, _ in changes}
        fields = [incoming.field(f.name) if f.name in changed else f for f in stored]
        fields += [f for f in incoming if f.name not in old]
        return pa.schema(fields)

    def _write_files(self, rows: pa.Table) -> list[dict[str, Any]]:
        batch = uuid.uuid4().hex
        written: list[str] = []
        partitioning = None
        if self.target.partition_by:
            fields = [rows.schema.field(c) for c in self.target.partition_by]
            partitioning = ds.partitioning(pa.schema(fields), flavor="hive")
        ds.write_dataset(
            rows,
            self.path,
            format="parquet",
            basename_template=f".staging-{batch}-{{i}}.parquet",
            partitioning=partitioning,
            existing_data_behavior="overwrite_or_ignore",
            file_visitor=lambda file: written.append(file.path),
        )
        files = []
        for staged in map(Path, written):
            _fsync(staged)
            final = staged.with_name(staged.name.replace(".staging-", "part-", 1))
            staged.rename(final)
            files.append({"path": final.relative_to(self.path).as_posix()})
        for folder in {Path(f).parent for f in written}:
            _fsync_dir(folder)
        return files

    def _clean(self) -> None:
        """Remove files of crashed writes: data files the manifest does not list."""
        listed = {f["path"] for f in self._manifest["files"]}
        for file in self.path.rglob("*"):
            name = file.name
            if not file.is_file() or name in (MANIFEST, LOCK_FILE):
                continue
            stray = name.startswith((".staging-", ".manifest-")) or (
                name.endswith(".parquet") and file.relative_to(self.path).as_posix() not in listed
            )
            if stray:
                file.unlink(missing_ok=True)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the Parquet table at ``path`` (an empty one if it has none)."""
    try:
        text = (path / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"format": _FORMAT, "version": 0, "partition_by": [], "files": [], "offsets": []}
    except OSError as error:
        raise os_error(error, f"cannot read the manifest of Parquet table {path}") from error
    try:
        manifest: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as error:
        raise SinkError(f"manifest {path / MANIFEST} is not valid JSON: {error}") from error
    if manifest.get("format") != _FORMAT:
        raise SinkError(f"manifest {path / MANIFEST} has unknown format {manifest.get('format')}")
    return manifest


def read_parquet_table(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """The committed rows of the Parquet table at ``path``: only the files its manifest
    lists, with the table's latest schema (columns added later read as null in older files).
    """
    folder = Path(path)
    manifest = read_manifest(folder)
    schema = _schema(manifest)
    if schema is None:
        return pa.table({})
    partitioning = None
    if manifest["partition_by"]:
        fields = [schema.field(c) for c in manifest["partition_by"]]
        partitioning = ds.partitioning(pa.schema(fields), flavor="hive")
    dataset = ds.dataset(
        [str(folder / f["path"]) for f in manifest["files"]],
        schema=schema,
        format="parquet",
        partitioning=partitioning,
        partition_base_dir=str(folder),
    )
    return dataset.to_table(columns=columns)


def _schema(manifest: dict[str, Any]) -> pa.Schema | None:
    encoded = manifest.get("schema")
    if encoded is None:
        return None
    schema: pa.Schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(encoded)))
    return schema


def _offsets(manifest: dict[str, Any]) -> Offsets:
    return {(o["topic"], int(o["partition"])): int(o["next"]) for o in manifest["offsets"]}


def _replace_json(target: Path, value: dict[str, Any]) -> None:
    """Write ``value`` to ``target`` atomically: temporary file, fsync, rename, fsync dir."""
    temporary = target.with_name(f".manifest-{uuid.uuid4().hex}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        json.dump(value, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(target)
    _fsync_dir(target.parent)


def _fsync(file: Path) -> None:
    descriptor = os.open(file, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
