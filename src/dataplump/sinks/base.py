"""The seam of the loading stage: a sink commits batches of one table exactly once.

The loader consumes ``<pipeline>.<table>.processed`` and hands each poll's rows to every
sink of the table as one Arrow table with the **lineage columns** below. A sink commits
the rows and the Kafka offsets they came from in **one commit of its own** (a Delta
commit with ``txn`` actions, a database transaction with an offsets table, a Parquet
manifest). Its stored offsets are the truth: on start the loader resumes from them, and
:meth:`Sink.write` drops every row whose offset is below the stored next offset of its
partition, so a batch applied twice (a crash between the sink's commit and the Kafka
commit, two sinks at different offsets) is applied once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from dataplump.errors import TerminalError, TransientError

if TYPE_CHECKING:
    from dataplump.config.models import SinkConfig

TOPIC = "_dp_topic"
PARTITION = "_dp_partition"
OFFSET = "_dp_offset"
LINEAGE_COLUMNS: dict[str, pa.DataType] = {
    "_dp_source": pa.string(),
    "_dp_pk": pa.string(),
    "_dp_extracted_at": pa.timestamp("us", "UTC"),
    "_dp_run": pa.string(),
    TOPIC: pa.string(),
    PARTITION: pa.int32(),
    OFFSET: pa.int64(),
}
"""Columns the loader adds to every row: where it came from (headers of its record) and
the Kafka topic, partition and offset of the record."""

Offsets = dict[tuple[str, int], int]
"""Next offset to read, by (topic, partition): what a sink stores with its commit."""


class SinkError(TerminalError):
    """A sink refuses the data or its config (a changed column type, a bad path)."""


class TransientSinkError(TransientError):
    """A sink cannot commit now (warehouse down, disk full, a concurrent commit): retry."""


@dataclass(frozen=True)
class WriteResult:
    """What one :meth:`Sink.write` did."""

    written: int
    """Rows committed."""
    skipped: int
    """Rows dropped because their offsets were already committed."""
    version: int | str | None = None
    """The sink's version after the commit (Delta table version, ...), for lineage."""


@dataclass(frozen=True)
class SinkTarget:
    """What a sink writes: one curated (or ops) table."""

    pipeline: str
    table: str
    """Name of the table in the sink (`orders`, or an ops table such as `_dlq`)."""
    primary_key: tuple[str, ...]
    """Key of merge mode; empty for append-only tables."""
    partition_by: tuple[str, ...] = ()
    mode: str = "merge"
    """`merge` or `append` (ops tables are always `append`)."""


class Sink(ABC):
    """Commits the rows of one table to one destination, exactly once.

    Not thread-safe: one loader owns a sink object. A second loader of the same table
    and sink must not be able to commit the same offsets (the implementations fence it).
    """

    def __init__(self, name: str, config: SinkConfig, target: SinkTarget) -> None:
        self.name = name
        self.config = config
        self.target = target

    @abstractmethod
    def committed(self) -> Offsets:
        """The next offset of every (topic, partition) this sink has committed rows of."""

    @abstractmethod
    def write(self, rows: pa.Table, offsets: Offsets) -> WriteResult:
        """Commit ``rows`` (lineage columns included) and ``offsets`` atomically.

        Rows whose offset is below :meth:`committed` for their partition are dropped
        first. In merge mode, rows sharing a key are reduced to the one with the highest
        offset before the upsert. Raises :class:`SinkError` (terminal) or
        :class:`TransientSinkError` (retry); after either, nothing of this call is
        visible to readers and the stored offsets are unchanged.
        """

    def describe(self) -> str:
        """Where it writes, without secrets (for logs)."""
        return f"{self.name} ({self.config.kind})"

    def close(self) -> None:  # noqa: B027 (a documented no-op hook)
        """Release connections. No-op by default."""
