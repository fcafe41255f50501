"""The transformation stage: ``.active`` → steps → output contract → ``.processed`` or failed.

A worker consumes the active topics of its tables in the consumer group
``dataplump.<pipeline>.transform`` and turns every poll into one Kafka transaction holding:

- the transformed rows that meet the table's output contract, on
  ``<pipeline>.<table>.processed`` (key = primary key, value = row, the input record's
  lineage headers, ``dp.schema`` of the output);
- every record that failed — undecodable, failed by a step (for itself or its whole
  batch), or breaking the output contract — on the failed store ``<pipeline>.failed``,
  with its input, its output if any, the step, the reasons and the lineage headers;
- one alert event per table batch with failures, on ``<pipeline>.alerts``;
- the consumed offsets (``send_offsets_to_transaction``).

So after a crash the group resumes after the last committed transaction, and every
active record yields its processed or failed records exactly once. All the work of a
poll happens before the next poll, so a rebalance (a worker joining or leaving) never
meets an open transaction. Each worker slot has its own ``transactional.id``
(``dataplump.<pipeline>.transform.<slot>``): a restarted slot fences its predecessor at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, TopicPartition

from dataplump.bus.frames import (
    ARROW_FRAMING,
    HEADER_FRAMING,
    HEADER_ROWS,
    decode_frame,
    encode_frame,
    encode_frames,
    partitions_of,
    rows_in,
)
from dataplump.bus.kafka import (
    Headers,
    Producer,
    consumer,
    create_topics,
    log_bounds,
    max_record_bytes,
    message_max_bytes,
    record_bytes,
    wrap_kafka_error,
)
from dataplump.bus.records import (
    HEADER_ERROR_CONTRACT,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_REASONS,
    HEADER_ERROR_RULES,
    HEADER_ERROR_STAGE,
    HEADER_EXTRACTED_AT,
    HEADER_PK,
    RecordDecodeError,
    decode_rows,
    encode_keys,
    encode_rows,
    key_values,
    rule_key,
)
from dataplump.bus.schemas import HEADER_SCHEMA, SchemaRegistry, UnknownSchemaError
from dataplump.config import PipelineConfig
from dataplump.contracts import BatchRejectedError, Contract
from dataplump.engine import (
    ReferenceCopies,
    ReferenceTables,
    StepFailed,
    TableTransform,
    TransformResult,
)
from dataplump.errors import DataPlumpError, TransientError
from dataplump.notify.events import error_alert, produce_alert, records_alert
from dataplump.pipeline import topics
from dataplump.pipeline._gc import gc_paused
from dataplump.pipeline._polls import RowPoll
from dataplump.pipeline.runs import StageCounts, new_run_id, produce_run
from dataplump.pipeline.state import ensure_state_topics, read_state, write_state

log = logging.getLogger(__name__)

STAGE = "transform"
HEADER_ERROR_STEP = "dp.error.step"
HEADER_TRANSFORM_RUN = "dp.transform.run"
HEADER_TRANSFORMED_AT = "dp.transformed_at"
LINEAGE = ("dp.source", "dp.pk", "dp.extracted_at", "dp.run")
"""Headers of the input record that every output record keeps."""
MAX_ATTEMPTS = 5
CONSUMER = {"session.timeout.ms": "10000"}
"""Consumer defaults (``kafka.extra`` wins): a worker killed with ``kill -9`` leaves the
group, and its partitions move to the others or to its restart, after 10 s instead of
librdkafka's 45 s; until then the group cannot rebalance and no worker makes progress."""
ONCE_CHECK_PATIENCE = 120.0
"""Seconds ``--once`` goes on when the group's committed offsets cannot be read (the
coordinator is busy with a rebalance) before it gives up with the error."""


@dataclass
class TransformCounts(StageCounts):
    """What one table's transformation did in this run (live while it runs)."""

    consumed: int = 0
    """Active records read."""
    processed: int = 0
    """Rows written to ``.processed``."""
    failed: int = 0
    """Records written to the failed store."""
    filtered: dict[str, int] = field(default_factory=dict)
    """Input rows a step removed on purpose (``drop_null``, ``dedupe``, a SQL filter), by step."""
    failed_batches: int = 0
    """Batches a step failed as a whole."""
    retries: int = 0

    @property
    def rows(self) -> int:
        return self.consumed

    def add(self, other: TransformCounts) -> None:
        """Add the counts of one committed transaction."""
        self.consumed += other.consumed
        self.processed += other.processed
        self.failed += other.failed
        for step, n in other.filtered.items():
            self.filtered[step] = self.filtered.get(step, 0) + n
        self.batches += other.batches
        self.failed_batches += other.failed_batches

    def totals(self) -> dict[str, Any]:
        """The counts kept in ``<pipeline>.transform-state`` (what the ledger adds up)."""
        return {
            "consumed": self.consumed,
            "processed": self.processed,
            "failed": self.failed,
            "filtered": dict(self.filtered),
            "failed_batches": self.failed_batches,
        }

    @classmethod
    def from_totals(cls, table: str, totals: dict[str, Any] | None) -> TransformCounts:
        totals = totals or {}
        return cls(
            table,
            consumed=int(totals.get("consumed", 0)),
            processed=int(totals.get("processed", 0)),
            failed=int(totals.get("failed", 0)),
            filtered={k: int(v) for k, v in (totals.get("filtered") or {}).items()},
            failed_batches=int(totals.get("failed_batches", 0)),
        )


SUPERSEDED = "superseded"
"""Name under which ``filtered`` counts the active records that a newer record of the
same key in the same batch replaced (a row updated twice between two polls)."""


def _newest_versions(messages: list[Message]) -> tuple[list[Message], int]:
    """The messages without those a later message of the same key replaces, and how many
    were dropped. The versions of a row are one key on one partition, in order, so the
    last is the newest; transforming only it keeps a `unique` key rule about the data
    (a step that duplicates rows), not about a row that changed twice."""
    last = {key: i for i, m in enumerate(messages) if (key := m.key()) is not None}
    if len(last) == len(messages):
        return messages, 0
    kept = [m for i, m in enumerate(messages) if (key := m.key()) is None or last[key] == i]
    return kept, len(messages) - len(kept)


def totals_key(table: str, slot: int) -> str:
    """Key of a slot's totals of ``table`` in ``<pipeline>.transform-state``."""
    return f"{table}@{slot}"


Progress = Callable[[TransformCounts], None]


@dataclass
class _Failure:
    """One record for the failed store."""

    message: Message | _Orphan
    step: str
    reasons: list[dict[str, Any]]
    output: bytes | None = None
    error: dict[str, str] | None = None
    input_text: str | None = None
    """Set only for a record too large for the failed store: the start of its input."""


@dataclass
class _Prepared:
    """One table's batch, transformed and checked, its records not yet produced."""

    counts: TransformCounts
    failures: list[_Failure]
    attempt: _Attempt
    decoded: int
    """Records that decoded (what a step failing the whole batch failed)."""


@dataclass(frozen=True)
class Verdict:
    """What an engine's run of an output contract found in a table's output."""

    rejections: list[tuple[int, list[dict[str, Any]]]]
    """Per rejected output row (its position), its reasons (rule, column, value, message)."""
    batch_failures: tuple[Any, ...] = ()
    """Failed expectations about the whole batch (``CheckResult.batch_failures``)."""


ContractCheck = Callable[[str, pa.Table, int], Verdict]
"""``(table, output, input_rows) -> Verdict``; raises ``BatchRejectedError``."""


@dataclass
class _Attempt:
    """What the steps and the output contract made of one table's decoded batch."""

    failures: list[_Failure] = field(default_factory=list)
    valid: pa.Table | None = None
    lineage: list[Message | None] = field(default_factory=list)
    filtered: dict[str, int] = field(default_factory=dict)
    output_rows: int = 0
    step_failed: StepFailed | None = None


class Transformer:
    """One transformation worker (slot) for the tables of one pipeline file."""

    def __init__(
        self,
        config: PipelineConfig,
        bootstrap: str,
        *,
        tables: Sequence[str] | None = None,
        slot: int = 0,
        run_id: str | None = None,
        on_progress: Progress | None = None,
        max_records: int = 10_000,
        poll_timeout: float = 0.5,
    ) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.tables = list(tables or config.tables)
        self.slot = slot
        self.run_id = run_id or new_run_id()
        self.on_progress = on_progress or (lambda _counts: None)
        self.max_records = max_records
        self.poll_timeout = poll_timeout
        self._poll = RowPoll.of(config, self.tables, max_records)
        self._client = config.kafka.client_config(bootstrap)
        self._client.pop("bootstrap.servers")
        self._max_record = max_record_bytes(self._client)
        self._message_max = message_max_bytes(self._client)
        self.schemas = SchemaRegistry(bootstrap, config.name, extra=self._client)
        self.references = ReferenceTables(config)
        self.transforms = {
            table: TableTransform.from_config(config, table, self.references)
            for table in self.tables
        }
        self.contracts = {table: config.output_contract(table) for table in self.tables}
        self._relationships = {
            table: {
                rule.rule_name: rule.relationships.to
                for rule in (contract.rules if contract is not None else ())
                if rule.relationships is not None
            }
            for table, contract in self.contracts.items()
        }
        """Per table, the output contract's ``relationships`` rules: name -> reference."""
        self._reference_names = {
            table: sorted(self.transforms[table].reference_names | set(rules.values()))
            for table, rules in self._relationships.items()
        }
        """Per table, the references its SQL steps or its output contract read."""
        self.counts = {table: TransformCounts(table) for table in self.tables}
        self.group_id = topics.transform_group(config.name)
        self.transactional_id = f"dataplump.{config.name}.transform.{slot}"
        self._lineage: dict[int, Headers] = {}
        """Lineage headers of the records of the batch being transformed, by id()."""
        self._partitions: dict[str, int] = {}
        """Partitions of each ``.processed`` topic framed rows were written to."""
        self._table_of = {topics.active(config.name, table): table for table in self.tables}
        self._once_failing_since: float | None = None
        self._state_topic = topics.transform_state(config.name)
        self._totals: dict[str, TransformCounts] = {}
        """Every table's totals over all runs of this slot, as last committed."""

    def prepare(self) -> None:
        """Create the stage's topics where missing (partitions and replication from config)."""
        topic = self.config.kafka.topic
        names = [
            *self._table_of,
            *(topics.processed(self.config.name, table) for table in self.tables),
            topics.failed(self.config.name),
            topics.alerts(self.config.name),
            topics.runs(self.config.name),
        ]
        create_topics(
            self.bootstrap,
            names,
            partitions=topic.partitions,
            replication_factor=topic.replication_factor,
            extra=self._client,
        )
        self.schemas.ensure_topic(replication_factor=topic.replication_factor)
        ensure_state_topics(
            self.bootstrap,
            [self._state_topic],
            replication_factor=topic.replication_factor,
            extra=self._client,
        )

    def run(
        self, *, once: bool = False, stop: threading.Event | None = None
    ) -> list[TransformCounts]:
        """Transform until ``stop`` is set, or with ``once`` until the active topics are
        drained to where they ended when the run began; return the counts."""
        stop = stop or threading.Event()
        self.prepare()
        ends = log_bounds(self.bootstrap, self._table_of, extra=self._client) if once else {}
        producer = self._open_producer()
        client = consumer(self.bootstrap, self.group_id, extra={**CONSUMER, **self._client})
        started = time.monotonic()
        error: BaseException | None = None
        try:
            client.subscribe(list(self._table_of))
            attempt = 1
            while not stop.is_set():
                failed: TransientError | None = None
                with gc_paused():  # one poll and its transaction, as the loader's
                    messages = self._poll.poll(client, self.poll_timeout)
                    got = bool(messages)
                    if got:
                        try:
                            self._transaction(producer, client, messages)
                        except TransientError as exc:
                            failed = exc
                        self._lineage.clear()  # its header lists go with the messages
                    del messages  # freed before the collector is back (see gc_paused)
                if not got:
                    if once and self._once_done(producer, client, ends):
                        break
                    continue
                if failed is None:
                    attempt = 1
                    continue
                if attempt >= MAX_ATTEMPTS or producer.stuck is not None:
                    raise failed  # a stuck producer cannot redo it: a new process will
                delay = min(30.0, 0.5 * 2**attempt)
                log.warning(
                    "%s; redoing the batch from the last commit in %.0fs (attempt %d/%d)",
                    failed,
                    delay,
                    attempt + 1,
                    MAX_ATTEMPTS,
                )
                for counts in self.counts.values():
                    counts.retries += 1
                time.sleep(delay)
                _rewind(client)
                attempt += 1
        except BaseException as exc:
            error = exc
            raise
        finally:
            client.close()
            self._report_run(producer, time.monotonic() - started, error)
        for counts in self.counts.values():
            counts.finished = time.monotonic()
            self.on_progress(counts)
        return list(self.counts.values())

    def _open_producer(self) -> Producer:
        """This slot's transactional producer; reads the totals it continues."""
        producer = Producer(
            self.bootstrap, transactional_id=self.transactional_id, extra=self._client
        )
        # After the producer: its init_transactions fenced this slot's predecessor, so
        # these totals are the last it committed.
        stored = read_state(self.bootstrap, self._state_topic, extra=self._client)
        self._totals = {
            table: TransformCounts.from_totals(table, stored.get(totals_key(table, self.slot)))
            for table in self.tables
        }
        return producer

    def close(self) -> None:
        """Release the steps' DuckDB connections."""
        for transform in self.transforms.values():
            transform.close()

    def _report_run(self, producer: Producer, seconds: float, error: BaseException | None) -> None:
        """One record of this run on ``<pipeline>.runs``, in its own transaction."""
        try:
            with producer.transaction():
                produce_run(
                    producer,
                    self.config.name,
                    stage=STAGE,
                    run_id=self.run_id,
                    counts={
                        t: {
                            "consumed": c.consumed,
                            "processed": c.processed,
                            "failed": c.failed,
                            "filtered": c.filtered,
                        }
                        for t, c in self.counts.items()
                    },
                    rows=sum(c.consumed for c in self.counts.values()),
                    seconds=seconds,
                    error=error,
                )
        except DataPlumpError as exc:  # the run's own outcome matters more (fenced, ...)
            log.warning("could not record the run on %s: %s", topics.runs(self.config.name), exc)

    # -- one poll, one transaction -------------------------------------------------------
    def _transaction(
        self,
        producer: Producer,
        client: Consumer,
        messages: list[Message],
        offsets: list[TopicPartition] | None = None,
    ) -> None:
        """Transform ``messages`` and commit their outcome with ``offsets`` (by default the
        consumer's positions) in one transaction of the group of ``client``."""
        by_table: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            by_table[self._table_of[str(message.topic())]].append(message)
        # All the work first, then the transaction: it stays open only while records are
        # produced (a long engine run inside it would outlast `transaction.timeout.ms`).
        self._lineage.clear()
        prepared = [self._prepare(table, batch) for table, batch in by_table.items()]
        deltas = []
        totals = {}
        producer.begin()
        try:
            for batch in prepared:
                table = batch.counts.table
                delta = self._emit(producer, batch)
                deltas.append(delta)
                totals[table] = TransformCounts.from_totals(table, self._totals[table].totals())
                totals[table].add(delta)
                key = totals_key(table, self.slot)
                write_state(producer, self._state_topic, key, totals[table].totals())
            producer.send_offsets(client, _positions(client) if offsets is None else offsets)
        except BaseException:
            producer.abort()
            raise
        producer.commit()
        self._totals.update(totals)
        for delta in deltas:
            counts = self.counts[delta.table]
            counts.add(delta)
            self.on_progress(counts)

    def transform_batch(
        self, producer: Producer, table: str, messages: list[Message]
    ) -> TransformCounts:
        """Queue the processed and failed records of one table's messages; return the counts.

        Only ``produce``/``produce_many`` of ``producer`` are used, and only the
        messages' value, key, headers, topic, partition and offset are read: a replay's
        dry run passes stand-ins for both (:mod:`dataplump.pipeline.replay`)."""
        self._lineage.clear()
        return self._emit(producer, self._prepare(table, messages))

    def _prepare(self, table: str, messages: list[Message]) -> _Prepared:
        """Decode, transform and check one table's messages, producing nothing."""
        failures: list[_Failure] = []
        records, rows = self._unframe(table, messages, failures)
        counts = TransformCounts(table, consumed=rows, batches=1)
        records, superseded = _newest_versions(records)
        inputs, decoded = self._decode(records, failures)
        attempt = _Attempt()
        if inputs is not None and inputs.num_rows:
            used = self.references.copies(self._reference_names[table])
            attempt = self._attempt(table, inputs, decoded)
            if self._refreshed(table, attempt, used):
                attempt = self._attempt(table, inputs, decoded)  # once, with the new copies
        failures += attempt.failures
        counts.filtered.update(attempt.filtered)
        if attempt.output_rows == 0 and attempt.filtered and len(failures) >= len(messages):
            counts.filtered.clear()  # every input is in the failed store instead
        if superseded:
            counts.filtered[SUPERSEDED] = superseded
        return _Prepared(counts, failures, attempt, len(decoded))

    def _emit(self, producer: Producer, batch: _Prepared) -> TransformCounts:
        """Queue the records of a prepared batch on ``producer``; return its counts."""
        counts, attempt = batch.counts, batch.attempt
        table = counts.table
        if attempt.step_failed is not None:
            exc = attempt.step_failed
            counts.failed_batches += 1
            produce_alert(
                producer,
                error_alert(
                    self.config.name,
                    stage=STAGE,
                    table=table,
                    rule=exc.step,
                    error=str(exc),
                    count=batch.decoded,
                    run_id=self.run_id,
                ),
            )
        valid_out, lineage = attempt.valid, attempt.lineage
        failures = batch.failures
        if valid_out is not None and valid_out.num_rows:
            counts.processed, too_large = self._produce_processed(
                producer, table, valid_out, lineage
            )
            failures = failures + too_large
        counts.failed = self._produce_failed(producer, table, failures)
        return counts

    def _attempt(self, table: str, inputs: pa.Table, decoded: list[Message]) -> _Attempt:
        """The table's steps and output contract on the decoded rows, producing nothing."""
        try:
            result = self.transforms[table].apply(inputs)
        except StepFailed as exc:
            return _step_failed(exc, decoded)
        return self._outcome(table, inputs, decoded, result, self._check_contract)

    def _outcome(
        self,
        table: str,
        inputs: pa.Table,
        decoded: list[Message],
        result: TransformResult,
        check: ContractCheck,
    ) -> _Attempt:
        """The failed records and the valid output of an engine's ``result``, the output
        checked by ``check`` (the engine's way of running the output contract)."""
        failures = list(_row_failures(result.row_failures, decoded))
        rows = result.source_rows
        if rows is None:  # a step lost the row lineage: follow the primary key
            key = self.config.tables[table].primary_key
            rows = _rows_by_key(inputs, result.output, key)
        valid, lineage = self._check_output(
            table, result.output, rows, decoded, inputs.num_rows, failures, check
        )
        return _Attempt(failures, valid, lineage, dict(result.filtered), result.output.num_rows)

    def _check_contract(self, table: str, output: pa.Table, input_rows: int) -> Verdict:
        """The output contract of ``table`` run by DuckDB on ``output``."""
        contract = self.contracts[table]
        assert contract is not None
        checked = contract.check(
            output,
            references={n: self.references.get(n) for n in contract.reference_names()},
            input_rows=input_rows,
        )
        return Verdict(list(checked.rejections()), tuple(checked.batch_failures))

    def _refreshed(self, table: str, attempt: _Attempt, used: ReferenceCopies) -> bool:
        """Whether a reference the failed rows of ``attempt`` depend on has a newer copy
        now (reloaded on the miss, see :meth:`ReferenceTables.refresh_stale`): then the
        batch is redone once. A SQL step joining a reference makes every failure of the
        batch suspect (a NULL from the join can break any rule); a ``relationships``
        rule only its own violations."""
        if not attempt.failures or not used.generations:
            return False
        relationships = self._relationships[table]
        missed = [r for f in attempt.failures for r in f.reasons if r["rule"] in relationships]
        names = set(self.transforms[table].reference_names)
        names |= {relationships[r["rule"]] for r in missed}
        if not names:
            return False
        newest = _newest({self._extracted_at(f.message) for f in attempt.failures})
        why = f"table `{table}`: {len(attempt.failures)} row(s) failed"
        if missed:
            why += f", {len({r['value'] for r in missed})} key(s) not found"
        return bool(self.references.refresh_stale(used, names, extracted_at=newest, why=why))

    def _extracted_at(self, message: Message | _Orphan) -> bytes | None:
        """The record's ``dp.extracted_at`` header, if it has one."""
        for key, value in self._lineage.get(id(message), ()):
            if key == HEADER_EXTRACTED_AT:
                return value.encode() if isinstance(value, str) else value
        return None

    def _unframe(
        self, table: str, messages: list[Message], failures: list[_Failure]
    ) -> tuple[list[Message], int]:
        """``messages`` with every frame (``kafka.topic.framing: arrow``) replaced by its
        rows, each a :class:`_FrameRow` standing in for its own record; and how many rows
        came in. A frame that does not decode joins ``failures`` whole, counting the rows
        its ``dp.rows`` header names."""
        if not any(_is_frame(m) for m in messages):
            return messages, len(messages)
        primary_key = self.config.tables[table].primary_key
        records: list[Message] = []
        rows = 0
        for message in messages:
            if not _is_frame(message):
                records.append(message)
                rows += 1
                continue
            frame = _Frame.of(message)
            try:
                frame.read(self.schemas, primary_key)
            except (RecordDecodeError, UnknownSchemaError) as exc:
                self._lineage[id(message)] = frame.lineage
                failures.append(_malformed(message, str(exc)))
                rows += frame.rows_said
                continue
            assert frame.keys is not None
            for index, key in enumerate(frame.keys):
                row = _FrameRow(frame, index, key)
                self._lineage[id(row)] = row.headers()
                records.append(row)  # type: ignore[arg-type]  # a Message in all we read
            rows += len(frame.keys)
        return records, rows

    def _decode(
        self, messages: list[Message], failures: list[_Failure]
    ) -> tuple[pa.Table | None, list[Message]]:
        """The active records as one Arrow table (by their ``dp.schema``), and the
        messages of its rows (a frame's rows come decoded); records that do not decode
        join ``failures``."""
        groups: dict[str, list[Message]] = defaultdict(list)
        for message in messages:
            if isinstance(message, _FrameRow):
                groups[message.frame.schema_id].append(message)
                continue
            # Headers are read once per record: librdkafka builds a new list per call.
            pairs: Any = message.headers() or ()
            header = None
            lineage: Headers = []
            for key, value in pairs:
                if key == HEADER_SCHEMA:
                    header = value
                elif key in LINEAGE and value is not None:
                    lineage.append((key, value))
            self._lineage[id(message)] = lineage
            if message.value() is None or header is None:
                what = "has no value" if message.value() is None else "has no dp.schema header"
                failures.append(_malformed(message, f"the record {what}: not written by DataPlump"))
            else:
                groups[header.decode(errors="replace")].append(message)
        tables: list[pa.Table] = []
        decoded: list[Message] = []
        for sid, group in groups.items():
            for framed, run in groupby(group, key=lambda m: isinstance(m, _FrameRow)):
                if framed:  # decoded already: the rows kept, frame by frame, in order
                    frame_rows: Iterable[Any] = run
                    for frame, rows in groupby(frame_rows, key=lambda r: r.frame):
                        picked = list(rows)
                        assert frame.table is not None
                        indices = pa.array([r.index for r in picked], pa.int64())
                        tables.append(frame.table.take(indices))
                        decoded += picked
                    continue
                self._decode_rows(sid, list(run), tables, decoded, failures)
        if not tables:
            return None, []
        return pa.concat_tables(tables, promote_options="permissive"), decoded

    def _decode_rows(
        self,
        sid: str,
        group: list[Message],
        tables: list[pa.Table],
        decoded: list[Message],
        failures: list[_Failure],
    ) -> None:
        """Decode records of one JSON row each (schema ``sid``) onto ``tables`` and
        ``decoded``; those that do not decode join ``failures``."""
        try:
            schema = self.schemas.get(sid)
        except UnknownSchemaError as exc:
            failures += [_malformed(m, str(exc)) for m in group]
            return
        try:
            tables.append(decode_rows([_value(m) for m in group], schema))
            decoded += group
        except RecordDecodeError:
            for message in group:  # rare: find the bad ones one by one
                try:
                    tables.append(decode_rows([_value(message)], schema))
                    decoded.append(message)
                except RecordDecodeError as exc:
                    failures.append(_malformed(message, str(exc)))

    def _check_output(
        self,
        table: str,
        output: pa.Table,
        source_rows: pa.Array | None,
        decoded: list[Message],
        input_rows: int,
        failures: list[_Failure],
        check: ContractCheck,
    ) -> tuple[pa.Table, list[Message | None]]:
        """The output rows that meet the output contract, each with its input message
        (None where a step lost the lineage); the others join ``failures``."""
        rows = source_rows.to_pylist() if source_rows is not None else [None] * output.num_rows
        lineage = [decoded[i] if i is not None else None for i in rows]
        missing = [c for c in self.config.tables[table].primary_key if c not in output.schema.names]
        contract = self.contracts[table]
        reasons_by_row: list[tuple[int, list[dict[str, Any]]]] = []
        step = "output_contract"
        if missing:
            step = "output"
            reason = _reason(
                "primary_key_missing",
                missing[0],
                None,
                f"the output has no primary key column {', '.join(missing)}; a step dropped it",
            )
            reasons_by_row = [(i, [reason]) for i in range(output.num_rows)]
        elif contract is not None:
            try:
                verdict = check(table, output, input_rows)
                reasons_by_row = verdict.rejections
                if verdict.batch_failures and output.num_rows == 0:
                    # e.g. row_count_not_zero: no output row to keep, so keep the inputs
                    reasons = [
                        _reason(f.expectation, f.column, None, f.message)
                        for f in verdict.batch_failures
                    ]
                    already = {id(f.message) for f in failures}
                    failures += [
                        _Failure(m, step, list(reasons)) for m in decoded if id(m) not in already
                    ]
            except BatchRejectedError as exc:
                reason = _reason("batch_rejected", None, None, str(exc))
                reasons_by_row = [(i, [reason]) for i in range(output.num_rows)]
        if not reasons_by_row:
            return output, lineage
        encoded = encode_rows(output)
        bad = np.zeros(output.num_rows, dtype=bool)
        version = _version(contract)
        for row, reasons in reasons_by_row:
            bad[row] = True
            source = lineage[row]
            failures.append(
                _Failure(
                    source if source is not None else _Orphan(table, self.config.name),
                    step,
                    [{**r, "contract": version} for r in reasons],
                    encoded[row],
                )
            )
        keep = np.flatnonzero(~bad)
        return output.take(pa.array(keep)), [lineage[i] for i in keep]

    def _produce_processed(
        self, producer: Producer, table: str, output: pa.Table, lineage: list[Message | None]
    ) -> tuple[int, list[_Failure]]:
        """Queue the valid output rows; return how many, and the failures of the rows too
        large for a Kafka record (``message.max.bytes``), which are not queued."""
        keys = encode_keys(output, self.config.tables[table].primary_key)
        extra: Headers = [
            (HEADER_SCHEMA, self.schemas.publish(producer, output.schema).encode()),
            (HEADER_TRANSFORMED_AT, datetime.now(UTC).isoformat().encode()),
            (HEADER_TRANSFORM_RUN, self.run_id.encode()),
        ]
        if self.config.kafka.topic.framing == "arrow":
            return self._produce_frames(producer, table, output, keys, lineage, extra)
        values = encode_rows(output)
        lineage_of = self._lineage.get
        too_large: list[_Failure] = []
        limit = self._max_record - record_bytes(None, None, extra)
        for row in [i for i, v in enumerate(values) if len(v) + len(keys[i]) > limit - _SMALL]:
            source = lineage[row]
            headers = lineage_of(id(source), ())
            size = record_bytes(keys[row], values[row], headers)
            if size > limit:
                too_large.append(
                    self._too_large(table, source, values[row], size + self._max_record - limit)
                )
        if too_large:
            big = {id(f.output) for f in too_large}
            kept = [i for i, v in enumerate(values) if id(v) not in big]
            keys, values = [keys[i] for i in kept], [values[i] for i in kept]
            lineage = [lineage[i] for i in kept]
        produced = producer.produce_many(
            topics.processed(self.config.name, table),
            (
                (key, value, [*lineage_of(id(source), ()), *extra])
                for key, value, source in zip(keys, values, lineage, strict=True)
            ),
        )
        return produced, too_large

    def _produce_frames(
        self,
        producer: Producer,
        table: str,
        output: pa.Table,
        keys: list[bytes],
        lineage: list[Message | None],
        extra: Headers,
    ) -> tuple[int, list[_Failure]]:
        """Queue the valid output rows as frames (``kafka.topic.framing: arrow``): one or
        more per source batch (the rows sharing their lineage headers but ``dp.pk``) and
        partition of ``.processed`` (the one each row's key picks, as for a row record).
        A row too large for a frame even alone fails as ``record_too_large``."""
        topic = topics.processed(self.config.name, table)
        if topic not in self._partitions:
            self._partitions[topic] = producer.partition_count(topic)
        partition_of = partitions_of(keys, self._partitions[topic])
        produced = 0
        too_large: list[_Failure] = []
        for base, rows in self._by_source_batch(lineage):
            for partition in np.unique(partition_of[rows]).tolist():
                picked = rows[partition_of[rows] == partition]
                headers: Headers = [*base, (HEADER_FRAMING, ARROW_FRAMING), *extra]
                most = [*headers, (HEADER_ROWS, b"%d" % len(picked))]
                limit = self._max_record - record_bytes(None, None, most)
                frames, big = encode_frames(output.take(pa.array(picked)), limit)
                for frame in frames:
                    produced += frame.rows
                    producer.produce(
                        topic,
                        frame.value,
                        headers=[*headers, (HEADER_ROWS, b"%d" % frame.rows)],
                        partition=partition,
                    )
                alone = picked[big].tolist()
                values = encode_rows(output.take(pa.array(alone, pa.int64()))) if alone else []
                for row, value in zip(alone, values, strict=True):
                    size = len(encode_frame(output.slice(row, 1))) + self._max_record - limit
                    too_large.append(self._too_large(table, lineage[row], value, size))
        return produced, too_large

    def _by_source_batch(self, lineage: list[Message | None]) -> list[tuple[Headers, np.ndarray]]:
        """The output rows (their indices, in order) grouped by their lineage headers
        less ``dp.pk``: the rows of one source batch share them."""
        # a frame's rows share its frame; a row record is alone (till its headers match)
        sources = np.fromiter((id(getattr(s, "frame", s)) for s in lineage), np.int64, len(lineage))
        _, first, inverse = np.unique(sources, return_index=True, return_inverse=True)
        groups: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
        for group in np.argsort(first).tolist():  # in the order of their first rows
            row = int(first[group])
            headers = self._lineage.get(id(lineage[row]), ())
            groups[tuple((k, v) for k, v in headers if k != HEADER_PK)].append(group)
        if len(groups) == 1:
            return [(list(next(iter(groups))), np.arange(len(lineage)))]
        return [
            (list(base), np.flatnonzero(np.isin(inverse, members)))
            for base, members in groups.items()
        ]

    def _too_large(self, table: str, source: Message | None, value: bytes, size: int) -> _Failure:
        """The failure of an output row too large for a Kafka record: ``size`` bytes."""
        reason = _reason(
            "record_too_large",
            None,
            None,
            f"the transformed row is a {size}-byte record, over message.max.bytes"
            f" ({self._message_max} bytes here)",
        )
        message = source if source is not None else _Orphan(table, self.config.name)
        return _Failure(message, "output", [reason], value)

    def _failed_record(
        self,
        table: str,
        failure: _Failure,
        now: str,
        contract: Contract | None,
        *,
        small: bool = False,
    ) -> tuple[bytes | None, bytes, Headers]:
        """The key, value and headers of ``failure`` in the failed store; ``small`` keeps
        only short lineage headers and no key longer than them (a record that did not fit)."""
        message = failure.message
        value = message.value() if failure.input_text is None else None
        key = message.key()
        envelope = {
            "table": table,
            "stage": STAGE,
            "step": failure.step,
            "reasons": failure.reasons,
            "error": failure.error,
            "input": orjson.Fragment(value) if value and failure.step != "decode" else None,
            "input_text": failure.input_text
            if failure.input_text is not None
            else (_text(value) if failure.step == "decode" else None),
            "output": orjson.Fragment(failure.output) if failure.output else None,
            "failed_at": now,
            "run": self.run_id,
        }
        lineage = self._lineage.get(id(message), ())
        if small:
            lineage = [(k, v) for k, v in lineage if len(v or b"") <= _SMALL]
            key = key if key is None or len(key) <= _SMALL else None
        headers: Headers = [
            *lineage,
            (HEADER_ERROR_STAGE, STAGE.encode()),
            (HEADER_ERROR_STEP, failure.step.encode()),
            (HEADER_ERROR_RULES, ",".join(rule_key(r) for r in failure.reasons).encode()),
            (HEADER_ERROR_MESSAGE, str(failure.reasons[0]["message"]).encode()),
            (HEADER_ERROR_REASONS, orjson.dumps(failure.reasons)),
        ]
        if failure.step == "output_contract" and (version := _version(contract)):
            headers.append((HEADER_ERROR_CONTRACT, version.encode()))
        return key, orjson.dumps(envelope), headers

    def _produce_failed(self, producer: Producer, table: str, failures: list[_Failure]) -> int:
        if not failures:
            return 0
        failed_topic = topics.failed(self.config.name)
        now = datetime.now(UTC).isoformat()
        by_rule: dict[str, int] = defaultdict(int)
        contract = self.contracts[table]
        _encode_failed_inputs(failures)
        for failure in failures:
            for rule in dict.fromkeys(rule_key(r) for r in failure.reasons):
                by_rule[rule] += 1
            key, value, headers = self._failed_record(table, failure, now, contract)
            if record_bytes(key, value, headers) > self._max_record:
                key, value, headers = self._failed_record(
                    table,
                    _shrunk(failure, self._max_record, self._message_max),
                    now,
                    contract,
                    small=True,
                )
            producer.produce(failed_topic, value, key=key, headers=headers)
        produce_alert(
            producer,
            records_alert(
                self.config.name,
                table,
                stage=STAGE,
                kind="failed_records",
                count=len(failures),
                counts_by_rule=by_rule,
                sample_keys=[
                    key_values(k) for f in failures[:5] if (k := f.message.key()) is not None
                ],
                contract_version=_version(contract),
                kept_in=failed_topic,
                owner=contract.owner if contract is not None else None,
                run_id=self.run_id,
            ),
        )
        return len(failures)

    # -- --once ---------------------------------------------------------------------------
    def _once_done(
        self, producer: Producer, client: Consumer, ends: dict[tuple[str, int], tuple[int, int]]
    ) -> bool:
        """Commit skipped markers, then tell whether the group has drained ``ends``; a
        timeout reading the committed offsets (during a rebalance) answers "not yet", for
        :data:`ONCE_CHECK_PATIENCE` seconds in a row at most."""
        try:
            self._commit_skipped(producer, client)
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

    def _commit_skipped(self, producer: Producer, client: Consumer) -> None:
        """Commit positions that moved past records no poll returned: the commit or abort
        markers that end every transactional topic, and aborted records.

        The last transaction of a poll commits the offset after its last record, which
        is where the extraction's commit marker sits; only a later poll moves the
        position past the marker, and no transaction follows it. Without this, the
        group's committed offset stays one short of the log end and ``--once`` never
        ends. The commit is a transaction of offsets only, so it is fenced like any other.
        """
        positions = _positions(client)
        if not positions:
            return
        try:
            committed = {
                (tp.topic, tp.partition): tp.offset
                for tp in client.committed(positions, timeout=10)
            }
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "reading the group's committed offsets") from None
        ahead = [tp for tp in positions if tp.offset > committed.get((tp.topic, tp.partition), -1)]
        if not ahead:
            return
        producer.begin()
        try:
            producer.send_offsets(client, ahead)
        except BaseException:
            producer.abort()
            raise
        producer.commit()

    def _drained(self, client: Consumer, ends: dict[tuple[str, int], tuple[int, int]]) -> bool:
        """The group's committed offsets reached the ends taken when the run began."""
        partitions = [TopicPartition(topic, p) for topic, p in ends]
        try:
            committed = client.committed(partitions, timeout=10)
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "reading the group's committed offsets") from None
        for tp in committed:
            low, end = ends[(tp.topic, tp.partition)]
            if max(tp.offset, low) < end:
                return False
        return True


def make_transformer(
    config: PipelineConfig,
    bootstrap: str,
    *,
    engine: str | None = None,
    tables: Sequence[str] | None = None,
    slot: int = 0,
    run_id: str | None = None,
    on_progress: Progress | None = None,
    max_records: int = 10_000,
) -> Transformer:
    """The worker of ``engine`` (default `transform.engine`): the DuckDB engine's
    :class:`Transformer`, or Spark's (one query for every table; ``slot`` and
    ``max_records`` are the DuckDB engine's, Spark has `transform.spark.batch_records`)."""
    if (engine or config.transform.engine) == "spark":
        from dataplump.pipeline.spark_transform import SparkTransformer

        return SparkTransformer(
            config, bootstrap, tables=tables, run_id=run_id, on_progress=on_progress
        )
    return Transformer(
        config,
        bootstrap,
        tables=tables,
        slot=slot,
        run_id=run_id,
        on_progress=on_progress,
        max_records=max_records,
    )


def _is_frame(message: Message) -> bool:
    """Whether the record is a frame of many rows (its ``dp.framing`` header says so; a
    frame has no key, a row always has one: the headers of rows are not read twice)."""
    if message.key() is not None:
        return False
    pairs: Any = message.headers() or ()
    return any(key == HEADER_FRAMING and value == ARROW_FRAMING for key, value in pairs)


@dataclass(eq=False)  # one frame is equal to itself only (compared in _decode's groupby)
class _Frame:
    """A frame record of ``.active`` and, once :meth:`read`, its rows and their keys."""

    message: Message
    schema_id: str
    lineage: Headers
    rows_said: int
    """Rows its ``dp.rows`` header names (1 if it names none): what a frame that does not
    decode counts as consumed."""
    table: pa.Table | None = None
    keys: list[bytes] | None = None
    values: dict[int, bytes] = field(default_factory=dict)
    """JSON values of the rows encoded so far (the failed ones), by index."""

    @classmethod
    def of(cls, message: Message) -> _Frame:
        headers: dict[str, Any] = dict(message.headers() or ())
        lineage: Headers = [(k, v) for k, v in headers.items() if k in LINEAGE and v is not None]
        sid = (headers.get(HEADER_SCHEMA) or b"").decode(errors="replace")
        return cls(message, sid, lineage, rows_in(message))

    def read(self, schemas: SchemaRegistry, primary_key: Sequence[str]) -> None:
        """Decode the rows (of the schema ``dp.schema`` names) and encode their keys."""
        if not self.schema_id:
            raise RecordDecodeError("the frame has no dp.schema header: not written by DataPlump")
        self.table = decode_frame(self.message.value(), schemas.get(self.schema_id))
        self.keys = encode_keys(self.table, primary_key)

    def row_value(self, index: int) -> bytes:
        """One row as the JSON value a record of the ``row`` framing would hold."""
        if index not in self.values:
            self.encode_values([index])
        return self.values[index]

    def encode_values(self, indices: Sequence[int]) -> None:
        """Encode the rows at ``indices`` in one call (see :func:`_encode_failed_inputs`)."""
        assert self.table is not None
        encoded = encode_rows(self.table.take(pa.array(indices, pa.int64())))
        self.values.update(zip(indices, encoded, strict=True))


def _encode_failed_inputs(failures: Iterable[_Failure]) -> None:
    """Encode the JSON inputs of the failed rows of frames, frame by frame in one call
    each, before the failed records are built one by one."""
    wanted: dict[int, tuple[_Frame, list[int]]] = {}
    for failure in failures:
        if isinstance(failure.message, _FrameRow):
            row = failure.message
            wanted.setdefault(id(row.frame), (row.frame, []))[1].append(row.index)
    for frame, indices in wanted.values():
        frame.encode_values(indices)


class _FrameRow:
    """One row of a frame, in the shape of the consumed message it would be in the
    ``row`` framing: its key, value (encoded when asked: only failed rows are) and
    lineage; topic, partition and offset are the frame's."""

    __slots__ = ("_key", "frame", "index")

    def __init__(self, frame: _Frame, index: int, key: bytes) -> None:
        self.frame, self.index, self._key = frame, index, key

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self.frame.row_value(self.index)

    def headers(self) -> Headers:
        return [*self.frame.lineage, (HEADER_PK, self._key)]

    def topic(self) -> str | None:
        return self.frame.message.topic()

    def partition(self) -> int | None:
        return self.frame.message.partition()

    def offset(self) -> int | None:
        return self.frame.message.offset()


class _Orphan:
    """Stands in for the input message of an output row whose lineage a step lost."""

    def __init__(self, table: str, pipeline: str) -> None:
        self._topic = topics.active(pipeline, table)

    def value(self) -> None:
        return None

    def key(self) -> None:
        return None

    def headers(self) -> list[tuple[str, bytes]]:
        return []

    def topic(self) -> str:
        return self._topic


def _rows_by_key(inputs: pa.Table, output: pa.Table, key: Sequence[str]) -> pa.Array | None:
    """Per output row, the input row with the same primary key (the last one, if a key
    repeats), or null; None when the output lacks the key columns."""
    if any(column not in output.schema.names for column in key):
        return None
    try:
        types = [field.with_nullable(True) for field in inputs.select(list(key)).schema]
        wanted = output.select(list(key)).cast(pa.schema(types))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        return None
    out = pl.from_arrow(wanted)
    into = pl.from_arrow(inputs.select(list(key)))
    assert isinstance(out, pl.DataFrame)
    assert isinstance(into, pl.DataFrame)
    # The n-th output row of a key comes from the n-th input row of that key: a key the
    # batch holds twice (two records, one id) keeps both inputs, not the last one twice.
    nth = pl.int_range(pl.len()).over(list(key)).alias("_nth")
    out = out.with_row_index("_out").with_columns(nth)
    into = into.with_row_index("_in")
    paired = out.join(
        into.with_columns(nth), on=[*key, "_nth"], how="left", nulls_equal=False
    ).join(  # more outputs than inputs of a key (a step duplicated it): the last input
        into.unique(subset=list(key), keep="last").rename({"_in": "_last"}),
        on=list(key),
        how="left",
        nulls_equal=False,
    )
    rows = paired.sort("_out").select(pl.coalesce("_in", "_last").cast(pl.Int64))
    return rows.to_series().to_arrow()


def _step_failed(exc: StepFailed, decoded: list[Message]) -> _Attempt:
    """Every decoded record failed, with the step that failed the whole batch."""
    failures = [
        _Failure(
            m,
            exc.step,
            [_reason("step_failed", None, None, exc.message)],
            error={
                "step_kind": exc.kind,
                "message": exc.message,
                "traceback": exc.traceback_summary,
            },
        )
        for m in decoded
    ]
    return _Attempt(failures, step_failed=exc)


def _reason(rule: str, column: str | None, value: str | None, message: str) -> dict[str, Any]:
    return {"rule": rule, "column": column, "value": value, "message": message}


_SMALL = 1024
"""Bytes of a text or header a failed record too large for the store still keeps whole."""


def _clip(text: object, size: int = _SMALL) -> object:
    """``text`` cut to ``size`` characters (saying how long it was); other values as is."""
    if isinstance(text, str) and len(text) > size:
        return f"{text[:size]}... ({len(text)} characters in all)"
    return text


def _shrunk(failure: _Failure, limit: int, configured: int) -> _Failure:
    """``failure`` made to fit in a record of ``limit`` bytes: reasons with their values
    and messages clipped, no input or output but the start of the input as text, and a
    ``record_too_large`` reason saying so."""
    message = failure.message
    value = message.value() or b""
    size = len(value) + len(failure.output or b"")
    keep = max(limit // 8, 1)  # JSON escapes may grow it six times
    reasons = [
        {**r, "value": _clip(r.get("value")), "message": _clip(r.get("message"))}
        for r in failure.reasons
    ]
    reasons.append(
        _reason(
            "record_too_large",
            None,
            None,
            f"the failed record would be over message.max.bytes ({configured} bytes here; its"
            f" input and output are {size} bytes): it keeps the first {keep} bytes of the"
            " input as text, and no output",
        )
    )
    text = value[:keep].decode("utf-8", errors="replace")
    return _Failure(message, failure.step, reasons, None, failure.error, text)


def _malformed(message: Message, text: str) -> _Failure:
    return _Failure(message, "decode", [_reason("malformed_record", None, None, text)])


def _row_failures(table: pa.Table, decoded: list[Message]) -> Iterable[_Failure]:
    """The engine's per-row failures as failed-store records (one per input row)."""
    if table.num_rows == 0:
        return []
    grouped: dict[int, _Failure] = {}
    for row in table.to_pylist():
        reason = _reason(row["step"], row["column"], row["value"], row["message"])
        index = int(row["input_row"])
        if index in grouped:
            grouped[index].reasons.append(reason)
        else:
            grouped[index] = _Failure(decoded[index], row["step"], [reason])
    return grouped.values()


def _newest(stamps: set[bytes | None]) -> float | None:
    """The latest of some ``dp.extracted_at`` values, as seconds since the epoch; None if
    one is missing or unreadable (then only copies loaded after the batch began count
    as newer than the rows)."""
    epochs = []
    for stamp in stamps:
        if stamp is None:
            return None
        try:
            epochs.append(datetime.fromisoformat(stamp.decode()).timestamp())
        except ValueError:
            return None
    return max(epochs, default=None)


def _value(message: Message) -> bytes:
    value = message.value()
    return value if isinstance(value, bytes) else b""


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def _positions(client: Consumer) -> list[TopicPartition]:
    """The next offset to read of every assigned partition that has one."""
    try:
        return [tp for tp in client.position(client.assignment()) if tp.offset >= 0]
    except KafkaException as exc:
        raise wrap_kafka_error(exc, "reading the consumer's positions") from None


def _rewind(client: Consumer) -> None:
    """Back to the group's committed offsets, after an aborted transaction."""
    try:
        for tp in client.committed(client.assignment(), timeout=30):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            client.seek(TopicPartition(tp.topic, tp.partition, offset))
    except KafkaException as exc:
        raise wrap_kafka_error(exc, "rewinding to the committed offsets") from None


def _version(contract: Contract | None) -> str | None:
    return None if contract is None else contract.version or contract.content_hash
