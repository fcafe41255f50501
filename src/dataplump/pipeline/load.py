"""The loading stage: ``.processed`` -> curated tables; DLQ, failed, alerts, runs -> ops tables.

A loader consumes, in the consumer group ``dataplump.<pipeline>.load``:

- ``<pipeline>.<table>.processed`` of its tables, committed to each sink of the table
  (:meth:`PipelineConfig.sinks_of`) as curated table ``<table>``;
- ``<pipeline>.<table>.dlq``, ``<pipeline>.failed``, ``<pipeline>.alerts`` and
  ``<pipeline>.runs``, appended to the ops tables ``_dlq``, ``_failed``, ``_alerts`` and
  ``_runs`` of the first sink (what the dashboard, reports and replays read).

Exactly once: every sink commits the rows of a poll together with their Kafka offsets in
its own commit (:mod:`dataplump.sinks.base`). On every partition assignment the loader
seeks to the lowest offset its sinks stored for that partition, and each sink drops the
rows it already holds, so a crash between a sink's commit and the next one, or between
the sinks and the group's offset commit, is repaired by the next run. The group's own
offsets are committed after the sinks, only to show the lag.

Every row keeps its lineage: ``_dp_source``, ``_dp_pk``, ``_dp_extracted_at``, ``_dp_run``
(headers of its record) and ``_dp_topic``, ``_dp_partition``, ``_dp_offset``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from dataplump.bus.frames import HEADER_FRAMING, decode_frame
from dataplump.bus.kafka import (
    consumer,
    create_topics,
    log_bounds,
    wrap_kafka_error,
)
from dataplump.bus.records import (
    HEADER_EXTRACTED_AT,
    HEADER_PK,
    HEADER_RUN,
    HEADER_SOURCE,
    RecordDecodeError,
    encode_keys,
    header_columns,
)
from dataplump.bus.records import decode_rows as decode_values
from dataplump.bus.schemas import HEADER_SCHEMA, SchemaRegistry, UnknownSchemaError
from dataplump.config import PipelineConfig
from dataplump.errors import TerminalError, TransientError
from dataplump.notify.errors import MalformedAlertError
from dataplump.notify.events import decode
from dataplump.pipeline import topics
from dataplump.pipeline._gc import gc_paused
from dataplump.pipeline._polls import RowPoll
from dataplump.pipeline.runs import RUN_SCHEMA, StageCounts, new_run_id, record_run
from dataplump.sinks import LINEAGE_COLUMNS, OFFSET, PARTITION, TOPIC, Sink, SinkTarget, open_sink

log = logging.getLogger(__name__)

STAGE = "load"
MAX_ATTEMPTS = 5
OPS_TABLES = ("_dlq", "_failed", "_alerts", "_runs")
CONSUMER = {"session.timeout.ms": "10000"}
"""Consumer defaults (``kafka.extra`` wins): a loader killed with ``kill -9`` leaves the
group, and its partitions move to its restart, after 10 s instead of librdkafka's 45 s."""
ONCE_CHECK_PATIENCE = 120.0
"""Seconds ``--once`` goes on when the group's committed offsets cannot be read (the
coordinator is busy with a rebalance, e.g. right after a loader was killed) before it
gives up with the error."""


class LoadError(TerminalError):
    """A processed record the loader cannot turn into a row of its table."""


@dataclass
class LoadCounts(StageCounts):
    """What one curated or ops table's loading did in this run (live while it runs)."""

    consumed: int = 0
    """Records read."""
    loaded: dict[str, int] = field(default_factory=dict)
    """Rows committed, by sink."""
    skipped: int = 0
    """Rows a sink already held (a batch seen again after a crash)."""

    @property
    def rows(self) -> int:
        return self.consumed


Progress = Callable[[LoadCounts], None]


class Loader:
    """One loader for the tables of one pipeline file (and the pipeline's ops tables)."""

    def __init__(
        self,
        config: PipelineConfig,
        bootstrap: str,
        *,
        tables: Sequence[str] | None = None,
        ops: bool = True,
        run_id: str | None = None,
        on_progress: Progress | None = None,
        max_records: int = 50_000,
        poll_timeout: float = 0.5,
    ) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.tables = list(tables or config.tables)
        self.run_id = run_id or new_run_id()
        self.on_progress = on_progress or (lambda _counts: None)
        self.max_records = max_records
        self._poll = RowPoll.of(config, self.tables, max_records)
        self.poll_timeout = poll_timeout
        self._client = config.kafka.client_config(bootstrap)
        self._client.pop("bootstrap.servers")
        self.schemas = SchemaRegistry(bootstrap, config.name, extra=self._client)
        name = config.name
        # topic -> (table in the sinks, its sinks)
        self._routes: dict[str, tuple[str, list[Sink]]] = {}
        for table in self.tables:
            settings = config.tables[table]
            self._routes[topics.processed(name, table)] = (
                table,
                [
                    open_sink(
                        sink_name,
                        sink,
                        SinkTarget(
                            name, table, settings.primary_key, settings.partition_by, sink.mode
                        ),
                    )
                    for sink_name, sink in config.sinks_of(table).items()
                ],
            )
        if ops:
            ops_name, ops_sink = config.ops_sink
            sources = {
                "_dlq": [topics.dlq(name, t) for t in config.tables],
                "_failed": [topics.failed(name)],
                "_alerts": [topics.alerts(name)],
                "_runs": [topics.runs(name)],
            }
            for table, names in sources.items():
                sink = open_sink(ops_name, ops_sink, SinkTarget(name, table, (), (), "append"))
                for topic in names:
                    self._routes[topic] = (table, [sink])
        self.counts = {table: LoadCounts(table) for table, _ in self._routes.values()}
        self._once_failing_since: float | None = None

    def prepare(self) -> None:
        """Create the topics the loader reads where missing (so a fresh pipeline loads)."""
        topic = self.config.kafka.topic
        create_topics(
            self.bootstrap,
            list(self._routes),
            partitions=topic.partitions,
            replication_factor=topic.replication_factor,
            extra=self._client,
        )

    def run(self, *, once: bool = False, stop: threading.Event | None = None) -> list[LoadCounts]:
        """Load until ``stop`` is set, or with ``once`` until every topic is drained to
        where it ended when the run began; return the counts."""
        stop = stop or threading.Event()
        self.prepare()
        ends = log_bounds(self.bootstrap, self._routes, extra=self._client) if once else {}
        client = consumer(
            self.bootstrap,
            topics.load_group(self.config.name),
            extra={**CONSUMER, **self._client},
        )
        error: BaseException | None = None
        self._once_failing_since = None
        try:
            client.subscribe(list(self._routes), on_assign=self._on_assign)
            attempt = 1
            rewind = False
            while not stop.is_set():
                try:
                    if rewind:  # inside the retry: the sinks may still be unreachable
                        self._seek_to_sinks(client, client.assignment())
                        rewind = False
                    with gc_paused():
                        messages = self._poll.poll(client, self.poll_timeout)
                        got = bool(messages)
                        if got:
                            self._load(client, messages)
                        del messages  # freed before the collector is back (see gc_paused)
                    if not got:
                        if once and self._once_done(client, ends):
                            break
                        continue
                    attempt = 1
                except TransientError as exc:
                    if attempt >= MAX_ATTEMPTS:
                        raise
                    delay = min(30.0, 0.5 * 2**attempt)
                    log.warning(
                        "%s; loading the batch again in %.0fs (attempt %d/%d)",
                        exc,
                        delay,
                        attempt + 1,
                        MAX_ATTEMPTS,
                    )
                    stop.wait(delay)
                    rewind = True
                    attempt += 1
        except BaseException as exc:
            error = exc
            raise
        finally:
            client.close()
            for counts in self.counts.values():
                counts.finished = time.monotonic()
                self.on_progress(counts)
            self._report_run(error)
            for _, sinks in self._routes.values():
                for sink in sinks:
                    sink.close()
        return list(self.counts.values())

    # -- one poll ------------------------------------------------------------------------
    def _load(self, client: Consumer, messages: list[Message]) -> None:
        """Write one poll's rows to their sinks."""
        for batch in _Records.by_topic(messages):
            table, sinks = self._routes[batch.topic]
            rows = self._rows(batch, table)
            offsets = batch.next_offsets()
            counts = self.counts[table]
            for sink in sinks:
                result = sink.write(rows, offsets)
                counts.loaded[sink.name] = counts.loaded.get(sink.name, 0) + result.written
                counts.skipped += result.skipped
            counts.consumed += rows.num_rows
            counts.batches += 1
            self.on_progress(counts)
        try:  # only to show the lag: the sinks hold the truth
            client.commit(offsets=_positions(client), asynchronous=False)
        except KafkaException as exc:
            log.warning("committing the group's offsets failed (%s); the sinks hold them", exc)

    def _rows(self, batch: _Records, table: str) -> pa.Table:
        """The records as rows of their table, lineage columns last."""
        if table in OPS_TABLES:
            return _with_lineage(_ops_rows(table, batch.messages), batch)
        if batch.header(HEADER_FRAMING).null_count == len(batch.messages):
            return _with_lineage(self._decode(batch), batch)
        return self._unframe(batch, self.config.tables[table].primary_key)

    def _unframe(self, batch: _Records, primary_key: Sequence[str]) -> pa.Table:
        """The rows of records some of which are frames (``kafka.topic.framing: arrow``),
        in record order, lineage columns last: each run of single-row records is decoded
        in one call, each frame on its own. A frame's rows share its partition, offset
        and lineage headers; the ``_dp_pk`` of each is its key."""
        sids = batch.header(HEADER_SCHEMA).to_pylist()
        framed = batch.header(HEADER_FRAMING).is_valid().to_pylist()
        parts: list[pa.Table] = []
        keys: list[pa.Array] = []
        rows_of = np.ones(len(sids), np.int64)
        start = 0
        for (frame, sid), run in groupby(zip(framed, sids, strict=True)):
            end = start + sum(1 for _ in run)
            if not frame:
                parts.append(self._decode(_Records(batch.topic, batch.messages[start:end])))
                keys.append(pa.nulls(end - start, pa.string()))
            for index in range(start, end) if frame else ():
                rows = self._decode_frame(batch, index, sid)
                parts.append(rows)
                keys.append(pa.array(encode_keys(rows, primary_key)).cast(pa.string()))
                rows_of[index] = rows.num_rows
            start = end
        data = pa.concat_tables(parts, promote_options="permissive")
        return _with_lineage(data, batch, rows_of, pa.concat_arrays(keys))

    def _decode_frame(self, batch: _Records, index: int, sid: bytes | None) -> pa.Table:
        message = batch.messages[index]
        try:
            if sid is None:
                raise RecordDecodeError("the frame has no dp.schema header")
            return decode_frame(message.value(), self.schemas.get(sid.decode()))
        except (RecordDecodeError, UnknownSchemaError) as exc:
            raise LoadError(
                f"{batch.topic} partition {message.partition()} offset {message.offset()}:"
                f" {exc}; it was not written by DataPlump's transformation"
            ) from None

    def _decode(self, batch: _Records) -> pa.Table:
        """The values of ``batch`` as one table, grouped by their ``dp.schema`` for decoding
        (many records per call), back in record order."""
        values = batch.values()
        ids = batch.header(HEADER_SCHEMA)
        if ids.null_count or None in values:
            missing = ids.is_null().to_pylist()
            first = next(i for i, v in enumerate(values) if v is None or missing[i])
            message = batch.messages[first]
            raise LoadError(
                f"{batch.topic} partition {message.partition()} offset {message.offset()}: "
                "the record has no value or no dp.schema header; it was not written by"
                " DataPlump's transformation"
            )
        distinct = pc.unique(ids)
        if len(distinct) == 1:
            return self._decode_group(batch.topic, distinct[0].as_py(), values)  # type: ignore[arg-type]
        parts: list[pa.Table] = []
        order: list[np.ndarray] = []
        for sid in distinct.to_pylist():
            indexes = np.flatnonzero(pc.equal(ids, sid).to_numpy(zero_copy_only=False))
            group = list(map(values.__getitem__, indexes.tolist()))
            parts.append(self._decode_group(batch.topic, sid, group))  # type: ignore[arg-type]
            order.append(indexes)
        table = pa.concat_tables(parts, promote_options="permissive")
        return table.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))

    def _decode_group(self, topic: str, sid: bytes, values: list[bytes]) -> pa.Table:
        schema = self.schemas.get(sid.decode())
        try:
            return decode_values(values, schema)
        except TerminalError as exc:
            raise LoadError(f"{topic}: {exc}") from None

    # -- offsets ---------------------------------------------------------------------------
    def _on_assign(self, client: Consumer, partitions: list[TopicPartition]) -> None:
        self._seek_to_sinks(client, partitions, assign=True)

    def _seek_to_sinks(
        self, client: Consumer, partitions: list[TopicPartition], *, assign: bool = False
    ) -> None:
        """Start each partition at the lowest offset its sinks stored (each sink drops
        what it already holds): the group's own offsets only show the lag."""
        stored: dict[tuple[str, int], int] = {}
        for topic, (_, sinks) in self._routes.items():
            if not any(p.topic == topic for p in partitions):
                continue
            for sink in sinks:
                committed = sink.committed()
                for p in partitions:
                    if p.topic == topic:
                        offset = committed.get((topic, p.partition), 0)
                        key = (topic, p.partition)
                        stored[key] = min(stored.get(key, offset), offset)
        wanted = []
        for p in partitions:  # a sink that never saw a partition needs all of it
            start = stored.get((p.topic, p.partition), 0)
            wanted.append(TopicPartition(p.topic, p.partition, start))
        try:
            if assign:
                client.assign(wanted)
            else:
                for tp in wanted:
                    if tp.offset >= 0:
                        client.seek(tp)
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "starting at the sinks' offsets") from None

    def _once_done(self, client: Consumer, ends: dict[tuple[str, int], tuple[int, int]]) -> bool:
        """Whether every partition was read to ``ends``; a timeout reading the group's
        committed offsets (during a rebalance) answers "not yet", for
        :data:`ONCE_CHECK_PATIENCE` seconds in a row at most."""
        try:
            drained = self._drained(client, ends)
        except TransientError as exc:
            now = time.monotonic()
            self._once_failing_since = self._once_failing_since or now
            if now - self._once_failing_since > ONCE_CHECK_PATIENCE:
                raise
            log.info("%s; trying again", exc)
            return False
        self._once_failing_since = None
        return drained

    def _drained(self, client: Consumer, ends: dict[tuple[str, int], tuple[int, int]]) -> bool:
        """Every partition was read to where it ended when the run began."""
        assigned = {(tp.topic, tp.partition): tp for tp in _positions(client)}
        try:
            committed = client.committed(
                [TopicPartition(t, p) for t, p in ends if (t, p) not in assigned], timeout=10
            )
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "reading the group's committed offsets") from None
        reached = {(tp.topic, tp.partition): tp.offset for tp in committed}
        reached.update({key: tp.offset for key, tp in assigned.items()})
        return all(max(reached.get(key, -1), low) >= end for key, (low, end) in ends.items())

    def _report_run(self, error: BaseException | None) -> None:
        """One record of this run on ``<pipeline>.runs`` (loaded into ``_runs`` next time)."""
        record_run(
            self.bootstrap,
            self._client,
            self.config.name,
            stage=STAGE,
            run_id=self.run_id,
            counts={
                t: {"consumed": c.consumed, "loaded": c.loaded, "skipped": c.skipped}
                for t, c in self.counts.items()
            },
            rows=sum(c.consumed for c in self.counts.values()),
            seconds=max((c.seconds for c in self.counts.values()), default=0.0),
            error=error,
        )


def _headers(message: Message) -> dict[str, bytes]:
    pairs: Any = message.headers() or []
    return {str(k): v for k, v in pairs if isinstance(v, bytes)}


LINEAGE_HEADERS = (HEADER_SOURCE, HEADER_PK, HEADER_EXTRACTED_AT, HEADER_RUN)


class _Records:
    """The records of one topic in one poll, read field by field with C-level ``map``
    calls (one Python object per record at most, no Python loop per record)."""

    def __init__(self, topic: str, messages: list[Message]) -> None:
        self.topic = topic
        self.messages = messages
        self.partitions = np.fromiter(map(Message.partition, messages), np.int32, len(messages))
        self.offsets = np.fromiter(map(Message.offset, messages), np.int64, len(messages))
        self._headers: dict[str, pa.BinaryArray] | None = None

    @classmethod
    def by_topic(cls, messages: list[Message]) -> list[_Records]:
        names = list(map(Message.topic, messages))
        distinct = set(names)
        if len(distinct) == 1:
            return [cls(str(names[0]), messages)]
        labels = np.array(names, dtype=object)
        batches = []
        for topic in sorted(distinct, key=names.index):  # in order of first record
            picked = np.flatnonzero(labels == topic).tolist()
            batches.append(cls(str(topic), list(map(messages.__getitem__, picked))))
        return batches

    def values(self) -> list[bytes | None]:
        return list(map(Message.value, self.messages))

    def header(self, name: str) -> pa.BinaryArray:
        """The value of header ``name`` in each record (null where it lacks it)."""
        if self._headers is None:
            headers: Any = list(map(Message.headers, self.messages))
            names = (*LINEAGE_HEADERS, HEADER_SCHEMA, HEADER_FRAMING)
            self._headers = header_columns(headers, names)
        return self._headers[name]

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """Per partition, the offset after its last record here."""
        if len(self.partitions) and (self.partitions == self.partitions[0]).all():
            return {(self.topic, int(self.partitions[0])): int(self.offsets.max()) + 1}
        return {
            (self.topic, int(p)): int(self.offsets[self.partitions == p].max()) + 1
            for p in np.unique(self.partitions)
        }


def _text(values: pa.BinaryArray, what: str, batch: _Records) -> pa.Array:
    try:
        return values.cast(pa.string())
    except pa.ArrowInvalid:
        raise LoadError(
            f"{batch.topic}: header {what} of a record is not UTF-8 text; it was not written"
            " by DataPlump"
        ) from None


def _with_lineage(
    data: pa.Table,
    batch: _Records,
    rows_of: np.ndarray | None = None,
    keys: pa.Array | None = None,
) -> pa.Table:
    """``data`` with the lineage columns of its records appended: one row per record,
    or ``rows_of[i]`` rows of record ``i`` (a frame), whose ``_dp_pk`` is ``keys`` where
    not null."""
    index = None if rows_of is None else np.repeat(np.arange(len(rows_of)), rows_of)

    def header(name: str) -> pa.Array:
        values = _text(batch.header(name), name, batch)
        return values if index is None else values.take(pa.array(index))

    def each(values: np.ndarray) -> np.ndarray:
        return values if index is None else values[index]

    pk = header(HEADER_PK)
    columns = {
        "_dp_source": header(HEADER_SOURCE),
        "_dp_pk": pk if keys is None else pc.coalesce(keys, pk),
        "_dp_extracted_at": header(HEADER_EXTRACTED_AT).cast(LINEAGE_COLUMNS["_dp_extracted_at"]),
        "_dp_run": header(HEADER_RUN),
        TOPIC: pa.repeat(pa.scalar(batch.topic, pa.string()), data.num_rows),
        PARTITION: pa.array(each(batch.partitions), pa.int32()),
        OFFSET: pa.array(each(batch.offsets), pa.int64()),
    }
    for name, array in columns.items():
        if name in data.column_names:
            data = data.drop_columns([name])
        data = data.append_column(pa.field(name, LINEAGE_COLUMNS[name]), array)
    return data


def _ops_rows(table: str, messages: list[Message]) -> pa.Table:
    """DLQ, failed, alert and run records as rows of their ops table."""
    if table == "_runs":
        as_text = pa.schema(
            [(f.name, pa.string() if pa.types.is_timestamp(f.type) else f.type) for f in RUN_SCHEMA]
        )
        records = [orjson.loads(m.value() or b"{}") for m in messages]
        return pa.Table.from_pylist(records, schema=as_text).cast(RUN_SCHEMA)
    headers = [_headers(m) for m in messages]

    def header(name: str) -> pa.Array:
        return pa.array(
            [h[name].decode("utf-8", "replace") if name in h else None for h in headers],
            pa.string(),
        )

    values = [(m.value() or b"").decode("utf-8", "replace") for m in messages]
    keys = [(m.key() or b"").decode("utf-8", "replace") or None for m in messages]
    timestamps = pa.array([m.timestamp()[1] for m in messages], pa.int64()).cast(
        pa.timestamp("ms", "UTC")
    )
    columns: dict[str, pa.Array] = {
        "key": pa.array(keys, pa.string()),
        "value": pa.array(values, pa.string()),
        "kafka_timestamp": timestamps,
    }
    if table == "_alerts":
        events = [_alert_fields(v) for v in values]
        columns |= {
            name: pa.array([e.get(name) for e in events], kind)
            for name, kind in ALERT_COLUMNS.items()
        }
        for name in ("first_seen", "last_seen"):
            columns[name] = columns[name].cast(pa.timestamp("us", "UTC"))
    if table in ("_dlq", "_failed"):
        columns |= {
            "stage": header("dp.error.stage"),
            "step": header("dp.error.step"),
            "rules": header("dp.error.rules"),
            "message": header("dp.error.message"),
            "reasons": header("dp.error.reasons"),
            "contract": header("dp.error.contract"),
        }
    if table == "_dlq":
        columns["table"] = pa.array(
            [str(m.topic()).rsplit(".", 2)[-2] for m in messages], pa.string()
        )
    elif table == "_failed":
        columns["table"] = pa.array(
            [orjson.loads(v).get("table") if v.startswith("{") else None for v in values],
            pa.string(),
        )
    return pa.table(columns)


ALERT_COLUMNS: dict[str, pa.DataType] = {
    "table": pa.string(),
    "stage": pa.string(),
    "kind": pa.string(),
    "rule": pa.string(),
    "fingerprint": pa.string(),
    "count": pa.int64(),
    "counts_by_rule": pa.string(),
    "sample_keys": pa.string(),
    "contract_version": pa.string(),
    "owner": pa.string(),
    "owners": pa.string(),
    "first_seen": pa.string(),
    "last_seen": pa.string(),
    "run_id": pa.string(),
    "kept_in": pa.string(),
    "message": pa.string(),
}
"""Columns of ``_alerts`` besides the record's key, value and time (JSON in strings)."""


def _alert_fields(value: str) -> dict[str, Any]:
    """An alert event's fields for ``_alerts``; a malformed one keeps only its value."""
    try:
        event = decode(value.encode()).model_dump(mode="json")
    except MalformedAlertError:
        return {"kind": "malformed_alert_event"}
    for name in ("counts_by_rule", "sample_keys", "owners"):
        event[name] = orjson.dumps(event[name]).decode()
    return event


def _positions(client: Consumer) -> list[TopicPartition]:
    try:
        return [tp for tp in client.position(client.assignment()) if tp.offset >= 0]
    except KafkaException as exc:
        raise wrap_kafka_error(exc, "reading the consumer's positions") from None
