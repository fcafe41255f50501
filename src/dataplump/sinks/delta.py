"""The Delta Lake sink: one Delta table per curated (or ops) table, written with the
``deltalake`` package (delta-rs, no JVM).

Exactly once: every commit carries, as Delta application transactions (``txn``
actions), the next Kafka offset of each topic-partition it holds rows of, with the app
id ``dataplump:<topic>:<partition>``. delta-rs records those but does not refuse one
already applied (delta-rs #2580, #3821), so the sink does it:

1. it holds an exclusive lock on ``<table>/_dataplump.lock`` for its whole life, so a
   second loader of the table cannot open it (:class:`~dataplump.sinks._lake.TableLock`);
2. before each write it reads ``transaction_version`` of every partition and drops the
   rows below it (:meth:`DeltaSink.committed`);
3. right before the commit it reads them again and gives up (transient) if they moved;
4. in merge mode the upsert by key makes a replayed row land on itself.

Rows and offsets are in one Delta commit: files are written first and become visible only
when the commit lands in ``_delta_log``, so a crash or kill -9 in between leaves the table
(and its offsets) as they were; the orphan files are removed by ``vacuum``.

Which partitions a table holds offsets of is recorded in every commit's ``commitInfo``
(``dataplump.app_ids``), because delta-rs has no call listing application transactions.

On S3 (``path: s3://bucket/prefix``) there is no ``flock``, so layer 1 is replaced by the
commit itself, and the fence is as strong:

- deltalake 1.6.6 writes every ``_delta_log/<version>.json`` with ``If-None-Match: *``
  (seen on the wire; no ``AWS_S3_ALLOW_UNSAFE_RENAME`` nor DynamoDB lock is needed or
  set), so two writers can never both create version N: the loser gets HTTP 412;
- the loser's delta-rs then checks the commits that won against its own: a winning commit
  carrying an application transaction with one of the loser's app ids fails the loser with
  ``CommitFailedError`` ("Concurrent transaction"), which the sink raises as
  :class:`TransientSinkError`; nothing of the loser is visible;
- on the retry, layer 2 drops the rows the winner committed.

So two loaders of the same partitions on S3 both run, but each offset range is committed
once. A wrong bucket or refused keys are checked when the sink opens and reported in one
line (:class:`SinkError`).

Tables are read (a type change rewrite, the lineage fallback of :meth:`_recorded_app_ids`)
with polars, not ``DeltaTable.to_pyarrow_table()``: in deltalake 1.6.6 that call (and
``to_pyarrow_dataset()``) makes the process abort at interpreter exit.
"""

from __future__ import annotations

import json
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from dataplump.sinks._lake import (
    TableLock,
    app_id,
    check_bucket,
    check_columns,
    drop_committed,
    library_error,
    newest_per_key,
    os_error,
    parse_app_id,
    refuse_type_changes,
    table_place,
    type_changes,
)
from dataplump.sinks.base import (
    PARTITION,
    TOPIC,
    Offsets,
    Sink,
    SinkError,
    SinkTarget,
    TransientSinkError,
    WriteResult,
)

if TYPE_CHECKING:
    from dataplump.config.models import SinkConfig

APP_IDS_KEY = "dataplump.app_ids"
"""commitInfo key listing every application id the table holds a version of."""
_HISTORY_WINDOW = 100


def delta_types(schema: pa.Schema) -> dict[str, str]:
    """Delta type name (``long``, ``decimal(12,2)``, ``timestamp``...) of every column."""
    fields = DeltaSchema.from_arrow(schema).fields
    return {field.name: _type_name(field.type) for field in fields}


def read_delta(table: DeltaTable, columns: list[str] | None = None) -> pa.Table:
    """The rows of ``table`` (its loaded version) as Arrow, typed as the table's schema.

    Reads with polars: ``DeltaTable.to_pyarrow_table()`` of deltalake 1.6.6 aborts the
    process at interpreter exit (10 runs in 10 here; ``to_pyarrow_dataset()`` 5 in 10).
    polars widens strings and lists to their large variants; they are cast back.
    """
    import polars as pl

    schema = pa.schema(table.schema().to_arrow())
    if columns is not None:
        schema = pa.schema([schema.field(name) for name in columns])
    read = pl.read_delta(table, version=table.version(), columns=columns).to_arrow()
    return read.select(schema.names).cast(schema)


def _type_name(kind: Any) -> str:
    name = getattr(kind, "type", None)
    return name if isinstance(name, str) else str(kind)


class DeltaSink(Sink):
    """Commits rows of one table to the Delta table ``<config.path>/<target.table>``.

    ``target.mode`` `append` adds every row; `merge` upserts by ``target.primary_key``
    (`MERGE ... WHEN MATCHED UPDATE ALL WHEN NOT MATCHED INSERT ALL`). The table is
    created on the first write, partitioned by ``target.partition_by``. A new column is
    added (nullable); a changed type raises :class:`SinkError` unless
    ``config.allow_type_changes``, which rewrites the table with the new type.

    Opening the sink takes the table's writer lock (:class:`TransientSinkError` if another
    loader holds it); :meth:`close` releases it.
    """

    def __init__(self, name: str, config: SinkConfig, target: SinkTarget) -> None:
        super().__init__(name, config, target)
        if target.mode == "merge" and not target.primary_key:
            raise SinkError(
                f"sink `{name}`: table `{target.table}` is in merge mode but has no primary"
                " key; give it `primary_key` or use `mode: append`"
            )
        self.place = table_place(config, target.table)
        self.path: Path | str = self.place.local or self.place.uri
        """The table's folder, or its ``s3://`` URL."""
        self._options = self.place.storage_options
        self._lock = TableLock(self.place.local, target.table) if self.place.local else None
        self._finalizer = weakref.finalize(self, self._lock.release if self._lock else _nothing)
        self._table: DeltaTable | None = None
        self._app_ids: set[str] = set()
        try:
            check_bucket(self.place)
            self._table = DeltaTable(self.place.uri, storage_options=self._options)
        except TableNotFoundError:
            pass
        except SinkError as error:
            self.close()
            raise SinkError(f"sink `{name}`: {error}") from error
        except TransientSinkError:
            self.close()
            raise
        except (DeltaError, OSError) as error:
            self.close()
            what = f"sink `{name}`: cannot read Delta table at {self.path}"
            if self.place.s3 is not None:  # a network error is transient there
                raise library_error(error, what, self.place) from error
            raise SinkError(f"{what}: {error}") from error
        except Exception as error:  # delta-rs raises plain Exception for I/O failures
            self.close()
            what = f"sink `{name}`: cannot read Delta table at {self.path}"
            raise library_error(error, what, self.place) from error
        if self._table is not None:
            self._check_partitioning(self._table)
            self._app_ids = self._recorded_app_ids(self._table)

    def describe(self) -> str:
        return f"{self.name} (delta {self.path})"

    def close(self) -> None:
        """Release the table's writer lock."""
        self._finalizer()

    @property
    def version(self) -> int | None:
        """The table's version as last read, None before the first commit."""
        return None if self._table is None else self._table.version()

    def committed(self) -> Offsets:
        table = self._refresh()
        return {} if table is None else self._versions(table, self._app_ids)

    def write(self, rows: pa.Table, offsets: Offsets) -> WriteResult:
        table = self._refresh()
        ids = self._app_ids | {app_id(t, p) for t, p in offsets}
        committed = {} if table is None else self._versions(table, ids)
        rows, skipped = drop_committed(rows, committed)
        advance = {key: nxt for key, nxt in offsets.items() if nxt > committed.get(key, -1)}
        if rows.num_rows == 0 and not advance:
            return WriteResult(0, skipped, self.version)
        check_columns(rows, self.target, self.target.table)
        if self.target.mode == "merge":
            rows = newest_per_key(rows, self.target.primary_key)
        properties = CommitProperties(
            app_transactions=[Transaction(app_id(t, p), n) for (t, p), n in advance.items()],
            custom_metadata={APP_IDS_KEY: json.dumps(sorted(ids))},
        )
        what = f"sink `{self.name}`: cannot write Delta table `{self.target.table}`"
        try:
            if table is not None:
                self._fence(table, committed, advance)
            self._commit(table, rows, properties)
        except (SinkError, TransientSinkError):
            raise
        except CommitFailedError as error:
            raise TransientSinkError(
                f"sink `{self.name}`: a concurrent commit on Delta table `{self.target.table}`"
                f" won ({error}); nothing was committed, retry"
            ) from error
        except OSError as error:
            raise os_error(error, what) from error
        except Exception as error:  # delta-rs raises plain Exception for I/O failures
            raise library_error(error, what, self.place) from error
        self._app_ids = ids
        return WriteResult(rows.num_rows, skipped, self.version)

    # -- the commit -----------------------------------------------------------------------

    def _commit(self, table: DeltaTable | None, rows: pa.Table, props: CommitProperties) -> None:
        partition_by = list(self.target.partition_by) or None
        if table is None:
            write_deltalake(
                self.place.uri, rows, mode="append", partition_by=partition_by,
                commit_properties=props, storage_options=self._options,
            )  # fmt: skip
            self._table = DeltaTable(self.place.uri, storage_options=self._options)
            return
        stored = pa.schema(table.schema().to_arrow())
        if rows.num_rows == 0:  # only offsets advance (a merge of nothing commits nothing)
            write_deltalake(
                table, stored.empty_table(), mode="append", partition_by=partition_by,
                commit_properties=props,
            )  # fmt: skip
            table.update_incremental()
            return
        changes = type_changes(delta_types(stored), delta_types(rows.schema))
        if changes:
            if not self.config.allow_type_changes:
                refuse_type_changes(changes, self.target.table)
            self._rewrite(table, stored, rows, {c for c, _, _ in changes}, props)
        else:
            rows = _with_stored_columns(rows, stored)
            if self.target.mode == "append":
                write_deltalake(
                    table, rows, mode="append", schema_mode="merge", partition_by=partition_by,
                    commit_properties=props,
                )  # fmt: skip
            else:
                predicate = " AND ".join(f't."{k}" = s."{k}"' for k in self.target.primary_key)
                table.merge(
                    rows, predicate, source_alias="s", target_alias="t", merge_schema=True,
                    commit_properties=props,
                ).when_matched_update_all().when_not_matched_insert_all().execute()  # fmt: skip
        table.update_incremental()

    def _rewrite(
        self,
        table: DeltaTable,
        stored: pa.Schema,
        rows: pa.Table,
        changed: set[str],
        props: CommitProperties,
    ) -> None:
        """Apply ``rows`` by rewriting the table with the new column types (one commit)."""
        current = read_delta(table)
        for column in changed:
            position = current.schema.get_field_index(column)
            try:
                cast = pc.cast(current[column], rows.schema.field(column).type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise SinkError(
                    f"lake table `{self.target.table}`: cannot convert the stored values of"
                    f" column `{column}` from {stored.field(column).type} to"
                    f" {rows.schema.field(column).type}: {error}"
                ) from error
            current = current.set_column(position, column, cast)
        if self.target.mode == "merge":
            key = list(self.target.primary_key)
            current = current.join(rows.select(key), key, join_type="left anti")
        merged = pa.concat_tables([current, rows], promote_options="permissive")
        write_deltalake(
            table, merged, mode="overwrite", schema_mode="overwrite",
            partition_by=list(self.target.partition_by) or None, commit_properties=props,
        )  # fmt: skip

    def _fence(self, table: DeltaTable, seen: Offsets, advance: Offsets) -> None:
        """Re-read the offsets right before the commit; refuse if someone moved them."""
        table.update_incremental()
        now = self._versions(table, {app_id(t, p) for t, p in advance})
        moved = [key for key in advance if now.get(key) != seen.get(key)]
        if moved:
            topic, partition = moved[0]
            raise TransientSinkError(
                f"sink `{self.name}`: offsets of {topic}[{partition}] in Delta table"
                f" `{self.target.table}` moved from {seen.get(moved[0])} to {now.get(moved[0])}"
                " during this write (another writer?); nothing was committed, retry"
            )

    # -- reading state ----------------------------------------------------------------------

    def _refresh(self) -> DeltaTable | None:
        try:
            if self._table is None:
                try:
                    self._table = DeltaTable(self.place.uri, storage_options=self._options)
                except TableNotFoundError:
                    return None
                self._app_ids |= self._recorded_app_ids(self._table)
            else:
                self._table.update_incremental()
        except OSError as error:
            raise os_error(error, f"sink `{self.name}`: cannot read Delta table") from error
        except Exception as error:  # delta-rs raises plain Exception for I/O failures
            what = f"sink `{self.name}`: cannot read Delta table `{self.target.table}`"
            raise library_error(error, what, self.place) from error
        return self._table

    @staticmethod
    def _versions(table: DeltaTable, ids: set[str]) -> Offsets:
        found: Offsets = {}
        for value in ids:
            key = parse_app_id(value)
            version = table.transaction_version(value)
            if key is not None and version is not None:
                found[key] = version
        return found

    def _recorded_app_ids(self, table: DeltaTable) -> set[str]:
        """App ids listed by the newest commit that lists them (maintenance commits do not);
        if the log no longer has one, the topic-partitions found in the lineage columns."""
        for limit in (_HISTORY_WINDOW, None):
            for commit in table.history(limit):
                if APP_IDS_KEY in commit:
                    return set(json.loads(commit[APP_IDS_KEY]))
        names = pa.schema(table.schema().to_arrow()).names
        if TOPIC not in names or PARTITION not in names:
            return set()
        pairs = read_delta(table, [TOPIC, PARTITION]).group_by([TOPIC, PARTITION])
        found = pairs.aggregate([]).to_pylist()
        return {app_id(row[TOPIC], row[PARTITION]) for row in found if row[TOPIC] is not None}

    def _check_partitioning(self, table: DeltaTable) -> None:
        stored = tuple(table.metadata().partition_columns)
        if stored != self.target.partition_by:
            self.close()
            raise SinkError(
                f"Delta table `{self.target.table}` at {self.path} is partitioned by"
                f" {list(stored)} but the config says {list(self.target.partition_by)};"
                " set `partition_by` to match, or write to a new table"
            )


def _nothing() -> None:
    """The release of a table without a lock file (on S3 the commit itself fences)."""


def _with_stored_columns(rows: pa.Table, stored: pa.Schema) -> pa.Table:
    """Add the stored columns the rows lack, as nulls (a merge needs every column)."""
    missing = [field for field in stored if field.name not in rows.column_names]
    for field in missing:
        rows = rows.append_column(field.name, pa.nulls(rows.num_rows, field.type))
    return rows


__all__ = ["DeltaSink", "delta_types", "read_delta"]
