"""A small snapshot of curated and ops tables, built in memory (no sink, no Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import polars as pl

from dataplump.config import PipelineConfig
from dataplump.present.data import Snapshot

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def lineage(n: int, table: str, start: int = 0) -> dict[str, Any]:
    return {
        "_dp_source": [table] * n,
        "_dp_pk": [orjson.dumps({"id": start + i}).decode() for i in range(n)],
        "_dp_extracted_at": [NOW - timedelta(minutes=10 + i) for i in range(n)],
        "_dp_run": ["20260601T115000Z-abc123"] * n,
        "_dp_topic": [f"shop.{table}.processed"] * n,
        "_dp_partition": [0] * n,
        "_dp_offset": list(range(start, start + n)),
    }


def rejects(table: str, store: str, rules: list[str], at: datetime) -> pl.DataFrame:
    n = len(rules)
    reasons = [
        orjson.dumps(
            [
                {"rule": r.split("(")[0], "column": r.split("(")[1].rstrip(")"), "value": -1,
                 "message": f"broke {r}"}
                for r in rule.split(",")
            ]
        ).decode()
        for rule in rules
    ]  # fmt: skip
    return pl.DataFrame(
        {
            "key": [orjson.dumps({"id": 100 + i}).decode() for i in range(n)],
            "value": [orjson.dumps({"id": 100 + i, "amount": -1}).decode() for i in range(n)],
            "kafka_timestamp": [at + timedelta(minutes=i) for i in range(n)],
            "stage": ["extract" if store == "dlq" else "transform"] * n,
            "step": [None] * n,
            "rules": rules,
            "message": [f"broke {r}" for r in rules],
            "reasons": reasons,
            "contract": ["1"] * n,
            "table": [table] * n,
            **lineage(n, table, 100),
        },
        schema_overrides={"kafka_timestamp": pl.Datetime("ms", "UTC"), "step": pl.String},
    )


def alert(
    table: str, first: datetime, last: datetime, count: int, fp: str = "f1"
) -> dict[str, Any]:
    return {
        "kafka_timestamp": last,
        "table": table,
        "stage": "extract",
        "kind": "invalid_records",
        "rule": None,
        "fingerprint": fp,
        "count": count,
        "owner": "@orders-team",
        "first_seen": first,
        "last_seen": last,
        "run_id": "r1",
        "kept_in": f"shop.{table}.dlq",
        "message": None,
    }


def snapshot(alerts: list[dict[str, Any]] | None = None) -> Snapshot:
    orders = pl.DataFrame(
        {
            "id": list(range(1, 11)),
            "status": ["paid"] * 6 + ["new"] * 3 + [None],
            "amount": [float(i) for i in range(1, 11)],
            "ordered_at": [NOW - timedelta(days=i) for i in range(10)],
            **lineage(10, "orders", 1),
        }
    )
    customers = pl.DataFrame({"id": [1, 2], "email": ["a@x", "b@x"], **lineage(2, "customers")})
    dlq = pl.concat(
        [
            rejects("orders", "dlq", ["min(amount)", "min(amount),not_null(status)"], NOW),
            rejects("customers", "dlq", ["pattern(email)"], NOW - timedelta(hours=1)),
        ]
    )
    failed = rejects("orders", "failed", ["relationships(customer_id)"], NOW)
    events = alerts if alerts is not None else [alert("orders", NOW - timedelta(minutes=5), NOW, 2)]
    runs = pl.DataFrame(
        {
            "pipeline": ["shop"] * 3,
            "stage": ["extract", "transform", "extract"],
            "run_id": ["r1", "r2", "r3"],
            "started_at": [NOW - timedelta(minutes=m) for m in (30, 20, 10)],
            "ended_at": [NOW - timedelta(minutes=m) for m in (29, 19, 9)],
            "seconds": [60.0, 60.0, 60.0],
            "rows": [15, 13, 0],
            "rows_per_second": [0.25, 0.22, 0.0],
            "counts": ["{}"] * 3,
            "status": ["ok", "ok", "failed"],
            "error": [None, None, "SourceError: down"],
        }
    )
    return Snapshot(
        curated={"orders": orders, "customers": customers, "products": pl.DataFrame()},
        ops={
            "_dlq": dlq,
            "_failed": failed,
            "_alerts": pl.DataFrame(events) if events else pl.DataFrame(),
            "_runs": runs,
        },
        loaded_at=NOW,
    )


def config(**present: Any) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "pipeline": {"name": "shop"},
            "source": {"url": "sqlite:///shop.db"},
            "tables": {
                "orders": {"primary_key": "id"},
                "customers": {"primary_key": "id"},
                "products": {"primary_key": "id"},
            },
            "present": present,
        }
    )
