"""Arrow tables shaped like the loader's output: data columns plus the lineage columns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pyarrow as pa

from dataplump.config.models import SinkConfig
from dataplump.sinks import LINEAGE_COLUMNS, OFFSET, SinkTarget

TOPIC_NAME = "shop.orders.processed"
EXTRACTED = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def rows(
    ids: Sequence[int],
    offsets: Sequence[int],
    status: Sequence[str] | None = None,
    *,
    partition: int = 0,
    topic: str = TOPIC_NAME,
    extra: dict[str, pa.Array] | None = None,
) -> pa.Table:
    """Orders ``ids`` at Kafka ``offsets`` of ``topic[partition]``, with lineage columns."""
    n = len(ids)
    data: dict[str, pa.Array] = {
        "id": pa.array(ids, pa.int64()),
        "status": pa.array(status or [f"s{i}" for i in ids], pa.string()),
        "amount": pa.array([Decimal(i) / 100 for i in ids], pa.decimal128(12, 2)),
        "region": pa.array(["eu" if i % 2 else "us" for i in ids], pa.string()),
    }
    data |= extra or {}
    lineage = {
        "_dp_source": ["orders"] * n,
        "_dp_pk": [str(i) for i in ids],
        "_dp_extracted_at": [EXTRACTED] * n,
        "_dp_run": ["run-1"] * n,
        "_dp_topic": [topic] * n,
        "_dp_partition": [partition] * n,
        OFFSET: list(offsets),
    }
    for name, kind in LINEAGE_COLUMNS.items():
        data[name] = pa.array(lineage[name], kind)
    return pa.table(data)


def config(path: Path, *, allow_type_changes: bool = False, kind: str = "delta") -> SinkConfig:
    return SinkConfig.model_validate(
        {"kind": kind, "path": path, "allow_type_changes": allow_type_changes}
    )


def target(
    mode: str = "merge", partition_by: tuple[str, ...] = (), table: str = "orders"
) -> SinkTarget:
    key = ("id",) if mode == "merge" else ()
    return SinkTarget("shop", table, key, partition_by, mode)


def by_id(table: pa.Table) -> dict[int, str]:
    """``id -> status`` of a read table (merge mode: one row per id)."""
    found = table.select(["id", "status"]).to_pylist()
    assert len({r["id"] for r in found}) == len(found), "duplicate keys"
    return {r["id"]: r["status"] for r in found}
