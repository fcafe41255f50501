"""Stage runs on ``<pipeline>.runs``: one record per run of extract, transform or load.

The loader appends them to the ops table ``_runs`` (what ``status``, the dashboard and
reports show as "last run"). A record is JSON with the fields of :data:`RUN_SCHEMA`;
``counts`` is a JSON object of the stage's counts per table.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from dataplump.bus.kafka import Producer
from dataplump.errors import DataPlumpError
from dataplump.notify.events import redact
from dataplump.pipeline import topics

log = logging.getLogger(__name__)

RUN_SCHEMA = pa.schema(
    [
        ("pipeline", pa.string()),
        ("stage", pa.string()),
        ("run_id", pa.string()),
        ("started_at", pa.timestamp("us", "UTC")),
        ("ended_at", pa.timestamp("us", "UTC")),
        ("seconds", pa.float64()),
        ("rows", pa.int64()),
        ("rows_per_second", pa.float64()),
        ("counts", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
    ]
)


def new_run_id() -> str:
    """A stage run's id: its UTC start time and a random suffix (``20261126T170208Z-1a2b3c``)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


@dataclass
class StageCounts:
    """What a stage did for one table in this run (live while it runs)."""

    table: str
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def rows(self) -> int:
        """The records the stage took in (what rows/s counts)."""
        raise NotImplementedError

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def run_record(
    pipeline: str,
    *,
    stage: str,
    run_id: str,
    counts: dict[str, Any],
    rows: int,
    seconds: float,
    error: BaseException | None = None,
) -> dict[str, Any]:
    """The run as a row of ``_runs`` (times in UTC, the error's text redacted)."""
    ended = datetime.now(UTC)
    failed = error is not None and not isinstance(error, KeyboardInterrupt)
    return {
        "pipeline": pipeline,
        "stage": stage,
        "run_id": run_id,
        "started_at": ended - timedelta(seconds=seconds),
        "ended_at": ended,
        "seconds": round(seconds, 3),
        "rows": rows,
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else 0.0,
        "counts": orjson.dumps(counts).decode(),
        "status": "failed" if failed else "stopped" if error is not None else "ok",
        "error": redact(f"{type(error).__name__}: {error}") if failed else None,
    }


def produce_run(producer: Producer, pipeline: str, **fields: Any) -> None:
    """Queue the run record (inside the stage's transaction, if it has one open)."""
    record = run_record(pipeline, **fields)
    producer.produce(
        topics.runs(pipeline),
        orjson.dumps(record, option=orjson.OPT_UTC_Z),
        key=f"{record['stage']}:{record['run_id']}".encode(),
    )


def record_run(bootstrap: str, extra: dict[str, Any], pipeline: str, **fields: Any) -> None:
    """Write the run record with a producer of its own; a failure is only logged (the
    run's own outcome matters more)."""
    try:
        producer = Producer(bootstrap, extra=extra)
        produce_run(producer, pipeline, **fields)
        producer.flush(10)
    except DataPlumpError as exc:
        log.warning("could not record the run on %s: %s", topics.runs(pipeline), exc)
