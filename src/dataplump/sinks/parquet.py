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

On S3 (``path: s3://bucket/prefix``) the layout is the same without the lock file; there is
no rename, and no ``flock``, so the commit itself fences:

- data files are written under their final names ``part-<uuid>-<n>.parquet`` (one PUT
  each, through pyarrow's S3 filesystem); no reader sees them until a manifest lists them;
- the manifest is one object, replaced with a conditional PUT: ``If-Match: <ETag>`` of the
  manifest the write started from (``If-None-Match: *`` for the first commit). S3 applies
  one of two concurrent replacements and answers 412 to the other, so a writer that lost
  the race raises :class:`TransientSinkError`, deletes its files, and on the retry re-reads
  the manifest and drops the rows the winner committed. A PUT is atomic: readers see the
  old manifest or the new one;
- the offsets are re-read from S3 at the start of every write (another loader may have
  committed), and files no manifest lists are removed only when older than an hour (a
  concurrent writer's files are not yet listed while it commits).

The conditional PUT is signed by :mod:`dataplump.sinks._s3` (pyarrow has no conditional
write), so a Parquet sink on S3 needs access keys (config or ``AWS_*`` variables).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
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
    library_error,
    os_error,
    refuse_type_changes,
    table_place,
    type_changes,
)
from dataplump.sinks._s3 import S3Client, S3Location
from dataplump.sinks.base import (
    Offsets,
    Sink,
    SinkError,
    SinkTarget,
    TransientSinkError,
    WriteResult,
)

if TYPE_CHECKING:
    from pyarrow.fs import FileSystem

    from dataplump.config.models import S3Config, SinkConfig

MANIFEST = "_dataplump_manifest.json"
_FORMAT = 1
_STRAY_AGE = 3600.0
"""On S3, unlisted files younger than this (seconds) may be a concurrent write's: kept."""


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
        self.place = table_place(config, target.table)
        self.path: Path | str = self.place.local or self.place.uri
        """The table's folder, or its ``s3://`` URL."""
        self._s3: _S3Table | None = None
        self._lock: TableLock | None = None
        if self.place.local is not None:
            self._lock = TableLock(self.place.local, target.table)
        else:
            assert self.place.s3 is not None
            try:
                self._s3 = _S3Table(self.place.s3)
            except SinkError as error:
                raise SinkError(f"sink `{name}`: {error}") from error
        self._finalizer = weakref.finalize(self, _release, self._lock, self._s3)
        try:
            self._manifest = self._read_manifest()
        except (SinkError, TransientSinkError) as error:
            self.close()
            if isinstance(error, SinkError):
                raise SinkError(f"sink `{name}`: {error}") from error
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
        if self._s3 is not None:  # another loader may have committed since
            self._manifest = self._read_manifest()
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
        if self._s3 is not None:
            self._write_s3(self._s3, rows, schema, committed | advance, what)
            return WriteResult(rows.num_rows, skipped, self.version)
        assert self.place.local is not None
        try:
            self._clean()
            files = self._write_files(rows) if rows.num_rows else []
            manifest = self._next_manifest(schema, files, committed | advance)
            _replace_json(self.place.local / MANIFEST, manifest)
        except OSError as error:
            raise os_error(error, what) from error
        except pa.ArrowException as error:
            raise SinkError(f"{what}: {error}") from error
        self._manifest = manifest
        return WriteResult(rows.num_rows, skipped, self.version)

    def _next_manifest(
        self, schema: pa.Schema, files: list[dict[str, Any]], offsets: Offsets
    ) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": self.version + 1,
            "partition_by": list(self.target.partition_by),
            "schema": base64.b64encode(schema.serialize().to_pybytes()).decode("ascii"),
            "files": [*self._manifest["files"], *files],
            "offsets": [
                {"topic": t, "partition": p, "next": n} for (t, p), n in sorted(offsets.items())
            ],
        }

    def _read_manifest(self) -> dict[str, Any]:
        if self._s3 is not None:
            return self._s3.read_manifest()
        assert self.place.local is not None
        return read_manifest(self.place.local)

    def _write_s3(
        self, s3: _S3Table, rows: pa.Table, schema: pa.Schema, offsets: Offsets, what: str
    ) -> None:
        """Write the files, then swap the manifest with a conditional PUT (see the module)."""
        written: list[str] = []
        try:
            s3.clean(self._manifest)
            files = (
                self._write_files(rows, s3.fs, s3.where.fs_path, written) if rows.num_rows else []
            )
            manifest = self._next_manifest(schema, files, offsets)
            if not s3.commit(manifest):
                raise TransientSinkError(
                    f"{what}: another writer committed to it first (its manifest changed since"
                    " this write read it); nothing of this write is visible, retry"
                )
        except (SinkError, TransientSinkError):
            s3.delete(written)
            raise
        except OSError as error:
            s3.delete(written)
            raise library_error(error, what, self.place) from error
        except pa.ArrowException as error:
            s3.delete(written)
            raise SinkError(f"{what}: {error}") from error
        self._manifest = manifest

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

    def _write_files(
        self,
        rows: pa.Table,
        fs: FileSystem | None = None,
        base: str | None = None,
        written: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Write ``rows`` as Parquet files. Locally under staging names, fsynced and renamed;
        on S3 (``fs`` and ``base`` given) under their final names (``written`` collects
        them as they land, so a failed write can delete them)."""
        batch = uuid.uuid4().hex
        written = [] if written is None else written
        partitioning = None
        if self.target.partition_by:
            fields = [rows.schema.field(c) for c in self.target.partition_by]
            partitioning = ds.partitioning(pa.schema(fields), flavor="hive")
        prefix = "part-" if fs is not None else ".staging-"
        ds.write_dataset(
            rows,
            base if base is not None else str(self.path),
            filesystem=fs,
            format="parquet",
            basename_template=f"{prefix}{batch}-{{i}}.parquet",
            partitioning=partitioning,
            existing_data_behavior="overwrite_or_ignore",
            file_visitor=lambda file: written.append(file.path),
        )
        if fs is not None and base is not None:
            return [{"path": path.removeprefix(base + "/")} for path in written]
        assert self.place.local is not None
        files = []
        for staged in map(Path, written):
            _fsync(staged)
            final = staged.with_name(staged.name.replace(".staging-", "part-", 1))
            staged.rename(final)
            files.append({"path": final.relative_to(self.place.local).as_posix()})
        for folder in {Path(f).parent for f in written}:
            _fsync_dir(folder)
        return files

    def _clean(self) -> None:
        """Remove files of crashed writes: data files the manifest does not list."""
        assert self.place.local is not None
        folder = self.place.local
        listed = {f["path"] for f in self._manifest["files"]}
        for file in folder.rglob("*"):
            name = file.name
            if not file.is_file() or name in (MANIFEST, LOCK_FILE):
                continue
            stray = name.startswith((".staging-", ".manifest-")) or (
                name.endswith(".parquet") and file.relative_to(folder).as_posix() not in listed
            )
            if stray:
                file.unlink(missing_ok=True)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the Parquet table at ``path`` (an empty one if it has none)."""
    try:
        text = (path / MANIFEST).read_bytes()
    except FileNotFoundError:
        return _empty_manifest()
    except OSError as error:
        raise os_error(error, f"cannot read the manifest of Parquet table {path}") from error
    return _parse_manifest(text, str(path))


def _empty_manifest() -> dict[str, Any]:
    return {"format": _FORMAT, "version": 0, "partition_by": [], "files": [], "offsets": []}


def _parse_manifest(text: bytes, table: str) -> dict[str, Any]:
    where = f"{table}/{MANIFEST}"
    try:
        manifest: dict[str, Any] = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SinkError(f"manifest {where} is not valid JSON: {error}") from error
    if manifest.get("format") != _FORMAT:
        raise SinkError(f"manifest {where} has unknown format {manifest.get('format')}")
    return manifest


class _S3Table:
    """A Parquet table's S3 side: the manifest with its ETag, files, stray clean-up."""

    def __init__(self, where: S3Location) -> None:
        self.where = where
        self.client = S3Client(where)
        try:
            self.client.check_bucket()
        except BaseException:
            self.client.close()
            raise
        self.fs = where.filesystem()
        self._key = f"{where.key}/{MANIFEST}"
        self._etag: str | None = None

    def read_manifest(self) -> dict[str, Any]:
        found = self.client.get(self._key)
        if found is None:
            self._etag = None
            return _empty_manifest()
        self._etag = found.etag
        return _parse_manifest(found.body, self.where.url)

    def commit(self, manifest: dict[str, Any]) -> bool:
        """Replace the manifest if nobody did since it was read; False if someone did."""
        body = json.dumps(manifest, separators=(",", ":")).encode()
        etag = self.client.put_if(self._key, body, self._etag)
        if etag is None:
            return False
        self._etag = etag
        return True

    def delete(self, paths: list[str]) -> None:
        """Best effort: remove files of a write that did not commit."""
        for path in paths:
            with contextlib.suppress(OSError):  # else an orphan, cleaned an hour later
                self.fs.delete_file(path)

    def clean(self, manifest: dict[str, Any]) -> None:
        """Remove data files no manifest lists that are older than an hour."""
        from pyarrow.fs import FileSelector, FileType

        base = self.where.fs_path
        listed = {f["path"] for f in manifest["files"]}
        cutoff = time.time() - _STRAY_AGE
        selector = FileSelector(base, allow_not_found=True, recursive=True)
        for info in self.fs.get_file_info(selector):
            relative = info.path.removeprefix(base + "/")
            stray = (
                info.type == FileType.File
                and info.path.endswith(".parquet")
                and relative not in listed
                and info.mtime is not None
                and info.mtime.timestamp() < cutoff
            )
            if stray:
                self.delete([info.path])

    def close(self) -> None:
        self.client.close()


def _release(lock: TableLock | None, s3: _S3Table | None) -> None:
    if lock is not None:
        lock.release()
    if s3 is not None:
        s3.close()


def read_parquet_table(
    path: Path | str, columns: list[str] | None = None, *, s3: S3Config | None = None
) -> pa.Table:
    """The committed rows of the Parquet table at ``path`` (a folder, or an
    ``s3://bucket/prefix/<table>`` URL reached with ``s3``): only the files its manifest
    lists, with the table's latest schema (columns added later read as null in older files).
    """
    fs: FileSystem | None = None
    if isinstance(path, str) and path.startswith("s3://"):
        where = S3Location.of(path, s3)
        fs, base = where.filesystem(), where.fs_path
        try:
            with fs.open_input_stream(f"{base}/{MANIFEST}") as stream:
                manifest = _parse_manifest(stream.read(), where.url)
        except FileNotFoundError:
            manifest = _empty_manifest()
    else:
        base = str(path)
        manifest = read_manifest(Path(path))
    schema = _schema(manifest)
    if schema is None:
        return pa.table({})
    partitioning = None
    if manifest["partition_by"]:
        fields = [schema.field(c) for c in manifest["partition_by"]]
        partitioning = ds.partitioning(pa.schema(fields), flavor="hive")
    dataset = ds.dataset(
        [f"{base}/{f['path']}" for f in manifest["files"]],
        schema=schema,
        format="parquet",
        filesystem=fs,
        partitioning=partitioning,
        partition_base_dir=base,
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
