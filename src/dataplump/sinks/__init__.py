"""Sinks: where the loading stage commits curated rows, exactly once (see :mod:`.base`).

:func:`open_sink` opens the sink of a config entry: :class:`~.delta.DeltaSink`,
:class:`~.parquet.ParquetSink` or the Postgres warehouse sink.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from dataplump.config.models import SinkConfig


def open_sink(name: str, config: SinkConfig, target: SinkTarget) -> Sink:
    """Open sink ``name`` of kind ``config.kind`` for one table (``target``)."""
    if config.kind == "delta":
        from dataplump.sinks.delta import DeltaSink

        return DeltaSink(name, config, target)
    if config.kind == "parquet":
        from dataplump.sinks.parquet import ParquetSink

        return ParquetSink(name, config, target)
    if config.kind == "postgres":
        from dataplump.sinks.postgres import PostgresSink  # type: ignore[import-not-found,unused-ignore]

        sink: Sink = PostgresSink(name, config, target)
        return sink
    raise SinkError(f"sink `{name}`: unknown kind `{config.kind}` (delta, parquet, postgres)")


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
    "open_sink",
]
