"""Sinks: where the loading stage commits curated rows, exactly once (see :mod:`.base`)."""

from dataplump.sinks.base import (
    LINEAGE_COLUMNS,
    OFFSET,
    PARTITION,
    TOPIC,
    Offsets,
    Sink,
    SinkError,
    SinkTarget,
    TransientSinkError,
    WriteResult,
)

__all__ = [
    "LINEAGE_COLUMNS",
    "OFFSET",
    "PARTITION",
    "TOPIC",
    "Offsets",
    "Sink",
    "SinkError",
    "SinkTarget",
    "TransientSinkError",
    "WriteResult",
]
