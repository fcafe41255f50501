"""Replays: kept records that now pass go back into the flow, exactly once.

A person fixes the contract, a step or the source, and replays:

- ``dlq``: the dead-lettered rows (ops table ``_dlq``) are checked again against the
  table's *current* contract; those that pass go to ``<pipeline>.<table>.active``;
- ``failed``: the inputs of the failed records (ops table ``_failed``) are transformed
  again by the *current* steps and output contract (the transformation's own code, with
  nothing written); those that now come out whole go to ``.active`` to be transformed
  for real.

The others stay where they are, with the rules they still break. Each replayed record is
written to ``<pipeline>.replays`` (compacted, keyed by the Kafka record it was kept as:
``topic:partition:offset``) in the same Kafka transaction as its copy on ``.active``, by
one transactional producer per pipeline (a second replay of the same pipeline fences the
first), so a record is never replayed twice and the ledger counts replays exactly.

When a replay leaves no un-replayed record of a table in the dead-letter (or failed)
store, a ``cleared`` alert resolves the incident, and its channels are told.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import pyarrow as pa

from dataplump.bus.kafka import Producer
from dataplump.bus.records import (
    HEADER_EXTRACTED_AT,
    HEADER_PK,
    HEADER_RUN,
    HEADER_SOURCE,
    RecordDecodeError,
    decode_rows,
    rule_key,
)
from dataplump.bus.schemas import HEADER_SCHEMA, SchemaRegistry, schema_id
from dataplump.config import PipelineConfig
from dataplump.contracts import BatchRejectedError
from dataplump.errors import ConfigError
from dataplump.notify.events import cleared_alert, produce_alert
from dataplump.pipeline import topics
from dataplump.pipeline.state import ensure_state_topics, read_state, write_state
from dataplump.sinks.read import read_table

KINDS = {"dlq": "_dlq", "failed": "_failed"}
"""Replay kind -> the ops table its records are kept in."""
HEADER_REPLAY = "dp.replay"
"""Header of a replayed record: the replay's id."""
CHUNK = 10_000
"""Records per replay transaction."""
UNDECODABLE = "undecodable"


@dataclass
class Kept:
    """One kept record to replay."""

    where: str
    """``topic:partition:offset`` of the record in the dead-letter topic or failed store."""
    key: bytes
    value: bytes | None
    """The row as it would be on ``.active`` (None: the record held no decodable row)."""
    lineage: list[tuple[str, bytes]]


@dataclass
class TableReplay:
    """What a replay does (or would do) for one table."""

    table: str
    considered: int = 0
    already: int = 0
    """Records skipped because an earlier replay sent them back already."""
    passing: list[Kept] = field(default_factory=list)
    superseded: list[Kept] = field(default_factory=list)
    """Older kept copies of a row a newer kept copy stands for (the same key kept twice,
    e.g. by two full extractions): recorded as replayed, not sent."""
    still_failing: Counter[str] = field(default_factory=Counter)
    """Records that still fail, by the rule (or step) they break now."""
    remaining: int = 0
    """Un-replayed records of the table in the store after this replay (any filter)."""

    @property
    def failing(self) -> int:
        return self.considered - self.already - len(self.passing) - len(self.superseded)


@dataclass
class ReplayPlan:
    kind: str
    replay_id: str
    tables: dict[str, TableReplay]
    schemas: dict[str, pa.Schema] = field(default_factory=dict)
    """The source schema each table's rows are decoded with, by table."""


def replayed(config: PipelineConfig, bootstrap: str) -> dict[str, dict[str, Any]]:
    """Every replayed record, by ``topic:partition:offset`` (the replays topic read)."""
    client = _client(config, bootstrap)
    topic = topics.replays(config.name)
    rf = config.kafka.topic.replication_factor
    ensure_state_topics(bootstrap, [topic], replication_factor=rf, extra=client)
    return read_state(bootstrap, topic, extra=client)


def plan(
    config: PipelineConfig,
    bootstrap: str,
    kind: str,
    *,
    tables: list[str] | None = None,
    rule: str | None = None,
    since: datetime | None = None,
) -> ReplayPlan:
    """Which kept records would pass now, and why the others still fail."""
    if kind not in KINDS:
        raise ConfigError(f"replay what? `dlq` or `failed`, not `{kind}`")
    _, ops = config.ops_sink
    selected = list(tables or config.tables)
    kept = read_table(
        ops,
        KINDS[kind],
        where=lambda columns: pl.col("table").is_in(selected) if "table" in columns else None,
    )
    done = replayed(config, bootstrap)
    result = ReplayPlan(kind, _replay_id(), {t: TableReplay(t) for t in selected})
    if kept.width == 0:
        return result
    where = (
        pl.col("_dp_topic")
        + ":"
        + pl.col("_dp_partition").cast(pl.String)
        + ":"
        + pl.col("_dp_offset").cast(pl.String)
    )
    kept = kept.with_columns(where.alias("_where"))
    undone = kept.filter(~pl.col("_where").is_in(list(done)))
    for names, group in undone.group_by("table"):
        result.tables[str(names[0])].remaining = group.height
    if rule is not None:
        kept = kept.filter(pl.col("rules").str.contains(rule, literal=True))
    if since is not None:
        kept = kept.filter(pl.col("kafka_timestamp") >= since)
    for names, group in kept.group_by("table"):
        table = str(names[0])
        replay = result.tables[table]
        replay.considered = group.height
        fresh = group.filter(~pl.col("_where").is_in(list(done)))
        replay.already = group.height - fresh.height
        if fresh.height == 0:
            continue
        newest = fresh.sort("_dp_offset").unique("key", keep="last", maintain_order=True)
        older = fresh.filter(~pl.col("_where").is_in(newest["_where"].to_list()))
        replay.superseded = [_kept(kind, row) for row in older.iter_rows(named=True)]
        records = [_kept(kind, row) for row in newest.iter_rows(named=True)]
        schema = _source_schema(config, table)
        result.schemas[table] = schema
        if kind == "dlq":
            _check_dlq(config, table, schema, records, replay)
        else:
            _check_failed(config, bootstrap, table, schema, records, replay)
        replay.remaining -= len(replay.passing) + len(replay.superseded)
    return result


def apply(config: PipelineConfig, bootstrap: str, replay: ReplayPlan) -> int:
    """Send the passing records of ``replay`` back to ``.active``; return how many.

    The producer's ``init_transactions`` fences any other replay of the pipeline; the
    replays topic is read again after it, so a record another replay sent meanwhile is
    skipped, not sent twice.
    """
    client = _client(config, bootstrap)
    name = config.name
    producer = Producer(bootstrap, transactional_id=f"dataplump.{name}.replay", extra=client)
    registry = SchemaRegistry(bootstrap, name, extra=client)
    done = replayed(config, bootstrap)
    now = datetime.now(UTC).isoformat()
    sent = 0
    for table, plan_ in replay.tables.items():
        records = [k for k in plan_.passing if k.where not in done]
        superseded = [k for k in plan_.superseded if k.where not in done]
        active = topics.active(name, table)
        for start in range(0, max(len(records), len(superseded)), CHUNK):
            chunk = records[start : start + CHUNK]
            with producer.transaction():
                for record in superseded[start : start + CHUNK]:
                    state = _state(replay, table, record, "superseded", active, now)
                    write_state(producer, topics.replays(name), record.where, state)
                sid = registry.publish(producer, replay.schemas[table]) if chunk else ""
                for record in chunk:
                    headers: list[tuple[str, str | bytes | None]] = [
                        (HEADER_SCHEMA, sid.encode()),
                        *record.lineage,
                        (HEADER_REPLAY, replay.replay_id.encode()),
                    ]
                    producer.produce(active, record.value, key=record.key, headers=headers)
                    state = _state(replay, table, record, "sent", active, now)
                    write_state(producer, topics.replays(name), record.where, state)
                last = start + CHUNK >= max(len(records), len(superseded))
                if last and plan_.remaining == 0:
                    stage = "extract" if replay.kind == "dlq" else "transform"
                    produce_alert(
                        producer,
                        cleared_alert(
                            name,
                            table,
                            stage=stage,
                            cleared="invalid_records" if replay.kind == "dlq" else "failed_records",
                            count=len(records),
                            run_id=replay.replay_id,
                        ),
                    )
            sent += len(chunk)
    return sent


# -- checking -------------------------------------------------------------------------


def _check_dlq(
    config: PipelineConfig,
    table: str,
    schema: pa.Schema,
    records: list[Kept],
    replay: TableReplay,
) -> None:
    """Check the dead-lettered rows against the current contract."""
    contract = config.contract(table)
    rows, decoded = _decode(records, schema, replay)
    if rows is None:
        return
    if contract is None:
        replay.passing += decoded
        return
    try:
        checked = contract.check(rows)
    except BatchRejectedError as exc:
        replay.still_failing[f"batch_rejected: {exc}"] += len(decoded)
        return
    valid = checked.valid_mask.to_pylist()
    for _row, reasons in checked.rejections():
        replay.still_failing[",".join(rule_key(r) for r in reasons)] += 1
    replay.passing += [record for record, ok in zip(decoded, valid, strict=True) if ok]


def _check_failed(
    config: PipelineConfig,
    bootstrap: str,
    table: str,
    schema: pa.Schema,
    records: list[Kept],
    replay: TableReplay,
) -> None:
    """Transform the failed inputs again with the current steps, writing nothing."""
    from dataplump.pipeline.transform import Transformer

    usable = [r for r in records if r.value is not None]
    if len(records) > len(usable):
        replay.still_failing[UNDECODABLE] += len(records) - len(usable)
    if not usable:
        return
    worker = Transformer(config, bootstrap, tables=[table])
    try:
        recorder = _Recorder()
        sid = worker.schemas.publish(recorder, schema)  # type: ignore[arg-type]
        messages = [_Message(r, sid, topics.active(config.name, table)) for r in usable]
        recorder.records.clear()
        worker.transform_batch(recorder, table, messages)  # type: ignore[arg-type]
    finally:
        worker.close()
    failed_topic = topics.failed(config.name)
    failing: dict[bytes, str] = {}
    for topic, value, key in recorder.records:
        if topic == failed_topic and key is not None:
            envelope = orjson.loads(value)
            rules = ",".join(rule_key(r) for r in envelope.get("reasons") or [])
            failing[key] = rules or str(envelope.get("step"))
    for record in usable:
        if record.key in failing:
            replay.still_failing[failing[record.key]] += 1
        else:
            replay.passing.append(record)


def _decode(
    records: list[Kept], schema: pa.Schema, replay: TableReplay
) -> tuple[pa.Table | None, list[Kept]]:
    usable = [r for r in records if r.value is not None]
    if len(records) > len(usable):
        replay.still_failing[UNDECODABLE] += len(records) - len(usable)
    try:
        return decode_rows([r.value or b"" for r in usable], schema), usable
    except RecordDecodeError:
        pass
    parts, decoded = [], []
    for record in usable:  # rare: find the rows the current schema cannot read
        try:
            parts.append(decode_rows([record.value or b""], schema))
            decoded.append(record)
        except RecordDecodeError:
            replay.still_failing[UNDECODABLE] += 1
    if not parts:
        return None, []
    return pa.concat_tables(parts), decoded


# -- helpers --------------------------------------------------------------------------


def _state(
    replay: ReplayPlan, table: str, record: Kept, status: str, to: str, at: str
) -> dict[str, Any]:
    """The record of one replayed (``sent``) or ``superseded`` record on the replays topic."""
    return {
        "replay": replay.replay_id,
        "kind": replay.kind,
        "table": table,
        "status": status,
        "key": record.key.decode("utf-8", "replace"),
        "extracted_at": dict(record.lineage).get(HEADER_EXTRACTED_AT, b"").decode() or None,
        "to": to,
        "at": at,
    }


def _kept(kind: str, row: dict[str, Any]) -> Kept:
    key = str(row.get("key") or "").encode()
    value: bytes | None = str(row.get("value") or "").encode()
    if kind == "failed":
        try:
            envelope = orjson.loads(value or b"{}")
            data = envelope.get("input")
            value = None if data is None else orjson.dumps(data)
        except orjson.JSONDecodeError:
            value = None
    lineage = [
        (header, str(row[column]).encode())
        for header, column in (
            (HEADER_SOURCE, "_dp_source"),
            (HEADER_PK, "_dp_pk"),
            (HEADER_RUN, "_dp_run"),
        )
        if row.get(column) is not None
    ]
    extracted = row.get("_dp_extracted_at")
    if isinstance(extracted, datetime):
        lineage.append((HEADER_EXTRACTED_AT, extracted.isoformat().encode()))
    return Kept(str(row["_where"]), key, value, lineage)


def _source_schema(config: PipelineConfig, table: str) -> pa.Schema:
    """The Arrow schema the extraction reads ``table`` with now."""
    from dataplump.sources import open_source

    with open_source(config.source, table, config.tables[table]) as source:
        return source.schema


def _client(config: PipelineConfig, bootstrap: str) -> dict[str, Any]:
    client = config.kafka.client_config(bootstrap)
    client.pop("bootstrap.servers")
    return client


def _replay_id() -> str:
    return datetime.now(UTC).strftime("replay-%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:6]


class _Recorder:
    """Stands in for the transformation's producer in a dry transformation: keeps what
    would be written instead of writing it."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes | None]] = []

    def produce(self, topic: str, value: bytes, key: bytes | None = None, **_: Any) -> None:
        self.records.append((topic, value, key))

    def produce_many(self, topic: str, records: Any) -> None:
        for key, value, _headers in records:
            self.records.append((topic, value, key))


class _Message:
    """A kept record in the shape of a consumed Kafka message, for a dry transformation."""

    def __init__(self, record: Kept, sid: str, topic: str) -> None:
        self._record = record
        self._headers = [(HEADER_SCHEMA, sid.encode()), *record.lineage]
        self._topic = topic

    def value(self) -> bytes | None:
        return self._record.value

    def key(self) -> bytes:
        return self._record.key

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return -1


__all__ = ["KINDS", "ReplayPlan", "TableReplay", "apply", "plan", "replayed", "schema_id"]
