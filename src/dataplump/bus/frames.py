"""Many rows per Kafka record: Arrow IPC frames, the batch framing issue 9 allows.

The pipeline's topics carry one JSON row per record (:mod:`dataplump.bus.records`). A
*frame* is the other framing: one record whose value is an Arrow IPC stream of many rows
of one schema, compressed with LZ4 by default. ``bench/framing.py`` measures both on the
same rows (docs/benchmarks.md "Framing"). With ``kafka.topic.framing: arrow`` the
extraction writes the valid rows of a batch as frames on ``.active``, one or more per
partition, and the transformation reads both framings (docs/kafka.md "Framing").

A frame never exceeds the record limit the producer is held to
(:func:`dataplump.bus.kafka.max_record_bytes`): :func:`encode_frames` halves a slice until
each part fits, and names the rows that do not fit even alone, so the caller can
dead-letter them one per record instead of failing the batch.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from confluent_kafka import Message

from dataplump.bus.records import RecordDecodeError

HEADER_FRAMING = "dp.framing"
"""Header naming a record's framing; ``arrow`` for a frame, absent for one JSON row."""
ARROW_FRAMING = b"arrow"
HEADER_ROWS = "dp.rows"
"""Header of a frame: how many rows it holds (decimal), readable without decoding it."""
COMPRESSIONS = (None, "lz4", "zstd")
"""Arrow IPC buffer compressions a frame may use (the reader needs no setting)."""


@dataclass(frozen=True)
class Frame:
    """Rows ``start`` to ``start + rows`` of the encoded table, as one record value."""

    start: int
    rows: int
    value: bytes


def encode_frame(table: pa.Table, compression: str | None = "lz4") -> bytes:
    """``table`` as one Arrow IPC stream (schema first, then its record batches)."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression must be one of {COMPRESSIONS}, not {compression!r}")
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    value: bytes = sink.getvalue().to_pybytes()
    return value


def encode_frames(
    table: pa.Table, limit: int, compression: str | None = "lz4"
) -> tuple[list[Frame], list[int]]:
    """``table``'s rows as frames of at most ``limit`` bytes each, in row order, and the
    indices of the rows too large for a record even alone (in no frame).

    The whole table is tried first; a part that does not fit is halved and tried again,
    so every halving encodes those bytes once more: a table of rows of even size, k
    times the limit, costs about log2(k) + 2 encodings of its bytes.
    """
    frames: list[Frame] = []
    too_large: list[int] = []
    pending = [(0, table)]
    while pending:
        start, rows = pending.pop()
        if rows.num_rows == 0:
            continue
        value = encode_frame(rows, compression)
        if len(value) <= limit:
            frames.append(Frame(start, rows.num_rows, value))
        elif rows.num_rows == 1:
            too_large.append(start)
        else:
            half = rows.num_rows // 2
            # popped last first: the first half is encoded (and kept) before the second
            pending += [(start + half, rows.slice(half)), (start, rows.slice(0, half))]
    return frames, too_large


def decode_frame(value: bytes | None, schema: pa.Schema | None = None) -> pa.Table:
    """The rows of one frame; with ``schema``, they must be of exactly that schema.

    Raises :class:`RecordDecodeError` in one line when the value is not an Arrow IPC
    stream (truncated, another framing, garbage) or holds other columns or types.
    """
    if not value:
        raise RecordDecodeError("the frame is empty: a frame is an Arrow IPC stream")
    try:
        table = pa.ipc.open_stream(value).read_all()
    except (pa.ArrowException, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RecordDecodeError(f"the frame is not a readable Arrow IPC stream: {first}") from None
    if schema is not None and not table.schema.equals(schema):
        raise RecordDecodeError(
            f"the frame's columns ({_describe(table.schema)}) are not the schema's"
            f" ({_describe(schema)})"
        )
    return table


def _describe(schema: pa.Schema) -> str:
    return ", ".join(f"{field.name} {field.type}" for field in schema)


def rows_in(message: Message) -> int:
    """Rows a record holds: the ``dp.rows`` header of a frame, 1 for a row's record (and
    for a frame whose header is unreadable: what it counts as when it fails)."""
    if message.key() is not None:  # a frame has no key
        return 1
    headers: dict[str, Any] = dict(message.headers() or ())
    if headers.get(HEADER_FRAMING) != ARROW_FRAMING:
        return 1
    try:
        return max(1, int(headers.get(HEADER_ROWS) or b"1"))
    except ValueError:
        return 1


def partitions_of(keys: Sequence[bytes], partitions: int) -> np.ndarray:
    """The partition of each record key, as librdkafka's default partitioner picks it
    (``consistent_random``: CRC-32 of the key, modulo the partitions).

    A frame's rows go where their own records would have gone, so the versions of a
    row stay on one partition, in order, whichever framing wrote them (a ``replay``
    writes single-row records among frames).
    """
    crc = np.fromiter(map(zlib.crc32, keys), np.uint32, len(keys))
    return (crc % np.uint32(partitions)).astype(np.int64)
