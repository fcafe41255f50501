"""The extraction stage: source table -> contract -> ``.active`` and ``.dlq`` topics.

For each batch the source yields, one Kafka transaction holds:

- the valid rows, on ``<pipeline>.<table>.active`` (key = primary key, value = row; with
  ``kafka.topic.framing: arrow``, many rows per record as Arrow frames, see
  :func:`_framed`);
- the invalid rows, on ``<pipeline>.<table>.dlq``, with the original value and
  ``dp.error.*`` headers carrying every broken rule;
- one alert event summarising the batch's rejects, on ``<pipeline>.alerts``;
- the table's new watermark, on the compacted ``<pipeline>.<table>.extract-state``;
- the Arrow schema of the batch, on ``<pipeline>.schemas`` (records name it in their
  ``dp.schema`` header; see :mod:`dataplump.bus.schemas`).

So a read_committed consumer sees a batch's rows exactly when the watermark after
them is stored: kill the stage at any moment and a restart resumes after the last
committed batch, every source row landing exactly once across active + dlq. Each
table has its own ``transactional.id``, so a second extractor of the same table
fences the first instead of doubling rows.

Reading overlaps with checking, encoding and producing: one thread fetches the next
batches, another checks and encodes them (database drivers, DuckDB, Polars and Arrow
release the GIL), while this one produces.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import numpy as np
import orjson
import pyarrow as pa

from dataplump.bus.frames import (
    ARROW_FRAMING,
    HEADER_FRAMING,
    HEADER_ROWS,
    Frame,
    encode_frames,
    partitions_of,
)
from dataplump.bus.kafka import (
    Headers,
    Producer,
    create_topics,
    max_record_bytes,
    message_max_bytes,
)
from dataplump.bus.records import (
    HEADER_ERROR_CONTRACT,
    HEADER_ERROR_MESSAGE,
    HEADER_ERROR_REASONS,
    HEADER_ERROR_RULES,
    HEADER_ERROR_STAGE,
    encode_keys,
    encode_rows,
    key_values,
    rule_key,
)
from dataplump.bus.schemas import HEADER_SCHEMA, SchemaRegistry
from dataplump.config import PipelineConfig
from dataplump.contracts import BatchRejectedError, CheckResult, Contract
from dataplump.errors import TransientError
from dataplump.notify.events import error_alert, produce_alert, records_alert
from dataplump.pipeline import topics
from dataplump.pipeline.runs import StageCounts, new_run_id, record_run
from dataplump.pipeline.state import ensure_state_topics, read_state, write_state
from dataplump.sources import Source, Watermark, open_source

log = logging.getLogger(__name__)
T = TypeVar("T")

STAGE = "extract"
MAX_ATTEMPTS = 5
EMPTY_TOTALS = {"read": 0, "valid": 0, "invalid": 0}


@dataclass
class TableCounts(StageCounts):
    """What one table's extraction did in this run (live while it runs)."""

    read: int = 0
    valid: int = 0
    invalid: int = 0
    retries: int = 0
    watermark: str | None = None
    resume: Watermark | None = None
    """Where the next read starts: the last committed watermark."""
    totals: dict[str, int] = field(default_factory=dict)
    """Rows read, valid and invalid over every run of the table, as last committed (kept in
    the table's extract state, in the same transaction as the rows: the ledger's source)."""
    late_check: dict[str, Any] | None = None
    """The last late-row check, as stored: rows at or behind ``watermark`` then (``behind``)
    and ``totals["read"]`` then (``read``); see :meth:`Extractor.check_late_rows`."""

    @property
    def rows(self) -> int:
        return self.read


Progress = Callable[[TableCounts], None]


class Extractor:
    """Runs extraction for the tables of one pipeline file against one Kafka cluster."""

    def __init__(
        self,
        config: PipelineConfig,
        bootstrap: str,
        *,
        run_id: str | None = None,
        on_progress: Progress | None = None,
    ) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.run_id = run_id or new_run_id()
        self.on_progress = on_progress or (lambda _counts: None)
        self._client = config.kafka.client_config(bootstrap)
        self._client.pop("bootstrap.servers")
        self._max_record = max_record_bytes(self._client)
        self._message_max = message_max_bytes(self._client)
        self.schemas = SchemaRegistry(bootstrap, config.name, extra=self._client)
        self._late_checked: dict[str, float] = {}

    def prepare(self, tables: Sequence[str] | None = None) -> None:
        """Create the topics of every table (or ``tables``) where missing.

        Partitions and replication come from the config.
        """
        topic = self.config.kafka.topic
        selected = tables or list(self.config.tables)
        names = [topics.alerts(self.config.name), topics.runs(self.config.name)]
        for table in selected:
            names += [topics.active(self.config.name, table), topics.dlq(self.config.name, table)]
        create_topics(
            self.bootstrap,
            names,
            partitions=topic.partitions,
            replication_factor=topic.replication_factor,
            extra=self._client,
        )
        ensure_state_topics(
            self.bootstrap,
            [
                self.schemas.topic,
                *(topics.extract_state(self.config.name, table) for table in selected),
            ],
            replication_factor=topic.replication_factor,
            extra=self._client,
        )

    def run_once(self, tables: Sequence[str] | None = None) -> list[TableCounts]:
        """Read every table (or ``tables``) up to its current end; return the counts.

        The run is recorded on ``<pipeline>.runs`` (and so in the ops table ``_runs``).
        """
        selected = list(tables or self.config.tables)
        self.prepare(selected)
        done: list[TableCounts] = []
        started = time.monotonic()
        error: BaseException | None = None
        try:
            for name in selected:
                done.append(self.extract_table(name))
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._report_run(done, time.monotonic() - started, error)
        return done

    def _report_run(
        self, done: list[TableCounts], seconds: float, error: BaseException | None
    ) -> None:
        record_run(
            self.bootstrap,
            self._client,
            self.config.name,
            stage=STAGE,
            run_id=self.run_id,
            counts={
                c.table: {"read": c.read, "valid": c.valid, "invalid": c.invalid} for c in done
            },
            rows=sum(c.read for c in done),
            seconds=seconds,
            error=error,
        )

    def extract_table(self, table: str) -> TableCounts:
        """Extract one table from its stored watermark up to the current end of the source."""
        counts = TableCounts(table)
        config = self.config.tables[table]
        contract = self.config.contract(table)
        # The producer first: init_transactions fences every other extractor of this table
        # and aborts its open transaction, so the watermark read next is the last one
        # anybody will commit for it.
        producer = Producer(
            self.bootstrap,
            transactional_id=f"dataplump.{self.config.name}.extract.{table}",
            extra=self._client,
        )
        state_topic = topics.extract_state(self.config.name, table)
        stored = read_state(self.bootstrap, state_topic, extra=self._client).get(table)
        counts.resume = _resume_point(config.mode, stored)
        counts.totals = dict((stored or {}).get("totals") or EMPTY_TOTALS)
        if config.mode == "incremental" and (stored or {}).get("mode") == "incremental":
            counts.late_check = (stored or {}).get("late_check")
        with open_source(self.config.source, table, config) as source:
            attempt = 1
            while True:
                try:
                    self._read(source, producer, contract, counts)
                    break
                except TransientError as exc:
                    if attempt >= MAX_ATTEMPTS or producer.stuck is not None:
                        raise  # a stuck producer cannot redo it: a new one will
                    counts.retries += 1
                    delay = min(30.0, 0.5 * 2**attempt)
                    log.warning(
                        "%s: %s; retrying after the last committed batch in %.0fs (attempt %d/%d)",
                        table,
                        exc,
                        delay,
                        attempt + 1,
                        MAX_ATTEMPTS,
                    )
                    time.sleep(delay)
                    attempt += 1
            if self._late_check_due(table, counts):
                try:
                    self.check_late_rows(source, producer, counts)
                except TransientError as exc:  # the rows are committed: check next pass
                    log.warning("%s: late-row check skipped, tried again next pass: %s", table, exc)
        counts.finished = time.monotonic()
        self.on_progress(counts)
        return counts

    def _read(
        self, source: Source, producer: Producer, contract: Contract | None, counts: TableCounts
    ) -> None:
        """One pass over the source after ``counts.resume``, which follows every commit."""
        table, since = source.table, counts.resume
        with source.read(since) as read:
            for warning in read.warnings:
                with producer.transaction():
                    produce_alert(
                        producer,
                        error_alert(
                            self.config.name,
                            stage=STAGE,
                            error=warning.message,
                            table=table,
                            kind="source_warning",
                            rule=warning.kind,
                            run_id=self.run_id,
                        ),
                    )
            if read.watermark is not None and read.watermark != since:  # a capped watermark
                with producer.transaction():
                    self._write_watermark(producer, source, read.watermark, counts.totals, counts)
                since = counts.resume = read.watermark
            # Reading (the drivers), then checking and encoding (DuckDB, Polars, Arrow)
            # run in two threads of their own, all three releasing the GIL, so they
            # overlap with each other and with producing here: at most two batches wait
            # at each step. With frames, reading and framing took about as long each
            # (1M lineitem rows: 5.7, 5.7, 6.3 s one thread; 5.1, 5.2, 5.6 s two).
            check = partial(_check, limit=self._max_record, configured=self._message_max)
            if self.config.kafka.topic.framing == "arrow":
                active = topics.active(self.config.name, table)
                check = partial(check, partitions=producer.partition_count(active))
            checked_batches = (check(source, contract, batch) for batch in _prefetch(read))
            for checked in _prefetch(checked_batches):
                read_now, invalid_now = len(checked.keys), len(checked.rejects)
                totals = {
                    "read": counts.totals["read"] + read_now,
                    "valid": counts.totals["valid"] + read_now - invalid_now,
                    "invalid": counts.totals["invalid"] + invalid_now,
                }
                with producer.transaction():
                    self._produce_checked(producer, source, contract, checked, counts)
                    self._write_watermark(producer, source, checked.watermark, totals, counts)
                since = counts.resume = checked.watermark
                counts.totals = totals
                counts.batches += 1
                counts.watermark = str(since)
                self.on_progress(counts)
            if source.config.mode == "full":
                with producer.transaction():
                    self._write_watermark(
                        producer, source, since, counts.totals, counts, complete=True
                    )

    def _produce_checked(
        self,
        producer: Producer,
        source: Source,
        contract: Contract | None,
        checked: _Checked,
        counts: TableCounts,
    ) -> None:
        table, pipeline = source.table, self.config.name
        keys, values, rejects = checked.keys, checked.values, checked.rejects
        version = None if contract is None else contract.version or contract.content_hash
        base: Headers = [
            (HEADER_SCHEMA, self.schemas.publish(producer, checked.schema).encode()),
            ("dp.source", self._source_label(table).encode()),
            ("dp.extracted_at", datetime.now(UTC).isoformat().encode()),
            ("dp.run", self.run_id.encode()),
        ]
        counts.read += len(keys)
        active, dlq = topics.active(pipeline, table), topics.dlq(pipeline, table)
        if checked.frames is None:
            producer.produce_many(
                active,
                (
                    (key, value, [*base, ("dp.pk", key)])
                    for key, value, ok in zip(keys, values, checked.valid_mask, strict=True)
                    if ok
                ),
            )
        for partition, frame in checked.frames or ():
            headers = [*base, (HEADER_FRAMING, ARROW_FRAMING), (HEADER_ROWS, b"%d" % frame.rows)]
            producer.produce(active, frame.value, headers=headers, partition=partition)
        for row, reasons in rejects:
            key = keys[row]
            rules = ",".join(rule_key(r) for r in reasons)
            headers = [
                *base,
                ("dp.pk", key),
                (HEADER_ERROR_STAGE, STAGE.encode()),
                (HEADER_ERROR_RULES, rules.encode()),
                (HEADER_ERROR_MESSAGE, str(reasons[0]["message"]).encode()),
                (HEADER_ERROR_CONTRACT, (version or "").encode()),
                (HEADER_ERROR_REASONS, orjson.dumps(reasons)),
            ]
            producer.produce(dlq, values[row], key=key, headers=headers)
        counts.invalid += len(rejects)
        counts.valid += len(keys) - len(rejects)
        if rejects:
            produce_alert(
                producer,
                records_alert(
                    pipeline,
                    table,
                    stage=STAGE,
                    count=len(rejects),
                    counts_by_rule=checked.counts_by_rule,
                    sample_keys=[key_values(keys[row]) for row, _ in rejects[:5]],
                    contract_version=version,
                    kept_in=dlq,
                    owner=contract.owner if contract is not None else None,
                    owners=checked.owners,
                    run_id=self.run_id,
                ),
            )

    def _source_label(self, table: str) -> str:
        """``dp.source``: the source table, schema-qualified when the config names one."""
        schema = self.config.source.db_schema
        return f"{schema}.{table}" if schema else table

    def _late_check_due(self, table: str, counts: TableCounts) -> bool:
        """An incremental table with a watermark is checked on its first pass in this
        process and then every ``extract.late_row_check_interval`` (0: never)."""
        every = self.config.extract.late_row_check_interval
        if not every or self.config.tables[table].mode != "incremental" or counts.resume is None:
            return False
        last = self._late_checked.get(table)
        return last is None or time.monotonic() - last >= every

    def check_late_rows(self, source: Source, producer: Producer, counts: TableCounts) -> int:
        """Count the rows of an incremental table that appeared behind its watermark.

        A row written with a cursor lower than rows already read (a writer's clock behind,
        or a transaction committing later than ``lag_seconds``) lies behind the watermark
        and is never read. Between two checks the rows at or behind the watermark can
        only grow by the rows read in between, unless some arrived late::

            late >= behind_now - (behind_then + read_now - read_then)

        A row updated forward (read again) or deleted lowers ``behind_now``, so this is a
        lower bound: exact for an append-only table, and never a false alarm. The check
        runs after the pass's last commit; its result is stored with the watermark,
        alerted (``late_rows``) and logged. Returns the late rows found.
        """
        watermark = counts.resume
        assert watermark is not None  # _late_check_due
        behind, read = source.count_through(watermark), counts.totals["read"]
        before = counts.late_check
        late = 0
        if before is not None and read >= int(before["read"]):
            late = max(0, behind - (int(before["behind"]) + read - int(before["read"])))
        checked = {"watermark": watermark.to_dict(), "behind": behind, "read": read}
        with producer.transaction():
            if late:
                message = late_rows_message(source, watermark, late)
                log.warning("%s", message)
                produce_alert(
                    producer,
                    error_alert(
                        self.config.name,
                        stage=STAGE,
                        error=message,
                        table=source.table,
                        kind="source_warning",
                        rule="late_rows",
                        count=late,
                        run_id=self.run_id,
                    ),
                )
            counts.late_check = checked
            self._write_watermark(producer, source, watermark, counts.totals, counts)
        self._late_checked[source.table] = time.monotonic()
        return late

    def _write_watermark(
        self,
        producer: Producer,
        source: Source,
        watermark: Watermark | None,
        totals: dict[str, int],
        counts: TableCounts,
        *,
        complete: bool = False,
    ) -> None:
        write_state(
            producer,
            topics.extract_state(self.config.name, source.table),
            source.table,
            {
                "mode": source.config.mode,
                "watermark": None if watermark is None else watermark.to_dict(),
                "complete": complete,
                "run": self.run_id,
                "at": datetime.now(UTC).isoformat(),
                "totals": totals,
                "late_check": counts.late_check,
            },
        )


@dataclass(frozen=True)
class _Checked:
    """A source batch checked against its contract and encoded, ready to produce."""

    keys: list[bytes]
    values: list[bytes]
    valid_mask: list[bool]
    rejects: list[tuple[int, list[dict[str, Any]]]]
    counts_by_rule: dict[str, int]
    owners: tuple[str, ...]
    watermark: Watermark
    schema: pa.Schema
    frames: list[tuple[int, Frame]] | None = None
    """With the ``arrow`` framing, the valid rows as frames, each with its partition; then
    ``values`` holds only the rejected rows' values (the others are empty)."""


def _check(
    source: Source,
    contract: Contract | None,
    batch: pa.RecordBatch,
    *,
    limit: int,
    configured: int,
    partitions: int | None = None,
) -> _Checked:
    """Check and encode one batch (runs in the reader thread; touches no shared state);
    rows too large for a Kafka record of ``limit`` bytes are rejected (see
    :func:`_reject_too_large`). With ``partitions`` (the active topic's, for the ``arrow``
    framing) the valid rows become frames (see :func:`_framed`)."""
    if partitions is None:
        checked = _check_contract(source, contract, batch, encode_rows(batch))
        return _reject_too_large(checked, limit, configured)
    return _framed(source, contract, batch, limit, configured, partitions)


def _framed(
    source: Source,
    contract: Contract | None,
    batch: pa.RecordBatch,
    limit: int,
    configured: int,
    partitions: int,
) -> _Checked:
    """The batch checked, its valid rows as frames of at most ``limit`` bytes less the
    headroom for headers: each partition's rows (by their key) in order, halved until
    they fit. A row too large even alone is rejected like one too large as JSON."""
    n = batch.num_rows
    checked = _check_contract(source, contract, batch, [b""] * n)
    valid = np.flatnonzero(np.asarray(checked.valid_mask, dtype=bool))
    table = pa.Table.from_batches([batch])
    of_row = partitions_of([checked.keys[i] for i in valid], partitions)
    frames: list[tuple[int, Frame]] = []
    too_large: list[int] = []
    for partition in np.unique(of_row).tolist():
        rows = valid[of_row == partition]
        made, big = encode_frames(table.take(pa.array(rows)), limit - _HEADROOM)
        frames += [(partition, frame) for frame in made]
        too_large += rows[big].tolist()
    rejected = sorted({row for row, _ in checked.rejects} | set(too_large))
    values = list(checked.values)
    if rejected:
        for row, value in zip(rejected, encode_rows(table.take(pa.array(rejected))), strict=True):
            values[row] = value
    checked = replace(checked, values=values, frames=frames)
    if not too_large:
        return checked
    sizes = {row: len(values[row]) + 2 * len(checked.keys[row]) for row in too_large}
    return _reject_rows(checked, sizes, limit, configured)  # as JSON records, sizes alike


def _check_contract(
    source: Source, contract: Contract | None, batch: pa.RecordBatch, values: list[bytes]
) -> _Checked:
    """The batch checked against ``contract``, with its keys and the given ``values``."""
    keys = encode_keys(batch, source.config.primary_key)
    n = batch.num_rows
    if contract is None:
        return _Checked(keys, values, [True] * n, [], {}, (), source.watermark(batch), batch.schema)
    try:
        result: CheckResult = contract.check(batch)
    except BatchRejectedError as exc:
        reason = {"rule": "batch_rejected", "column": None, "value": None, "message": str(exc)}
        rejects = [(i, [reason]) for i in range(n)]
        owners = (contract.owner,) if contract.owner else ()
        return _Checked(
            keys,
            values,
            [False] * n,
            rejects,
            {"batch_rejected": n},
            owners,
            source.watermark(batch),
            batch.schema,
        )
    return _Checked(
        keys,
        values,
        result.valid_mask.to_pylist(),
        list(result.rejections()),
        result.counts_by_rule,
        result.owners,
        source.watermark(batch),
        batch.schema,
    )


_HEADROOM = 4096
"""Bytes of a record kept for its headers (lineage, and the reasons of a DLQ record)."""
_KEPT_TEXT = 1024
"""Characters of a reason's value or message a too-large row's DLQ record keeps."""


def _reject_too_large(checked: _Checked, limit: int, configured: int) -> _Checked:
    """``checked`` with the rows over ``limit`` bytes as a record rejected: Kafka would
    refuse them (MSG_SIZE_TOO_LARGE), and a refused record must not stop the table.
    Their DLQ record keeps the start of the value (an eighth of ``limit``: JSON text
    that is cut, so no longer JSON), reasons cut to fit, and the rule
    ``record_too_large`` (whose message quotes ``configured``, message.max.bytes as set)."""
    keys, values = checked.keys, checked.values
    sizes = np.fromiter(map(len, values), np.int64, len(values))
    sizes += 2 * np.fromiter(map(len, keys), np.int64, len(keys))  # key and dp.pk
    big = np.flatnonzero(sizes > limit - _HEADROOM)
    if not len(big):
        return checked
    return _reject_rows(checked, {row: int(sizes[row]) for row in big.tolist()}, limit, configured)


def _reject_rows(checked: _Checked, sizes: dict[int, int], limit: int, configured: int) -> _Checked:
    """``checked`` with the rows of ``sizes`` (row -> its bytes) rejected as too large
    for a record of ``limit`` bytes (see :func:`_reject_too_large`)."""
    keep = max(limit // 8, 1)
    values, mask = list(checked.values), list(checked.valid_mask)
    reasons_of = dict(checked.rejects)
    for row, size in sizes.items():
        reasons = [
            {**r, "value": _cut(r.get("value")), "message": _cut(r.get("message"))}
            for r in reasons_of.get(row, [])
        ]
        reasons.append(
            {
                "rule": "record_too_large",
                "column": None,
                "value": None,
                "message": f"the row is a {size}-byte record, over message.max.bytes"
                f" ({configured} bytes here): its dead-letter record keeps the first {keep} bytes"
                " of its value",
            }
        )
        reasons_of[row] = reasons
        values[row] = values[row][:keep]
        mask[row] = False
    counts = dict(checked.counts_by_rule)
    counts["record_too_large"] = counts.get("record_too_large", 0) + len(sizes)
    return replace(
        checked,
        values=values,
        valid_mask=mask,
        rejects=sorted(reasons_of.items()),
        counts_by_rule=counts,
    )


def _cut(text: object) -> object:
    if isinstance(text, str) and len(text) > _KEPT_TEXT:
        return f"{text[:_KEPT_TEXT]}... ({len(text)} characters in all)"
    return text


def late_rows_message(source: Source, watermark: Watermark, late: int) -> str:
    """One line for people: how many rows were passed by, where, why and what to do."""
    cursor = source.config.cursor
    return (
        f"{late} row(s) of `{source.table}` appeared behind the watermark (`{cursor}` at or"
        f" before {watermark.cursor}) since the last check and were not read: they were"
        f" written with a `{cursor}` lower than rows already read (a writer's clock behind"
        " the database's, or a transaction that committed more than `lag_seconds` after"
        f" setting it); raise `tables.{source.table}.lag_seconds` or fix the writer, and"
        " find the rows by comparing the source with the curated table"
    )


def _resume_point(mode: str, stored: dict[str, Any] | None) -> Watermark | None:
    """Where to start: after the stored watermark, or from the top for a new snapshot."""
    if not stored or stored.get("watermark") is None:
        return None
    if mode == "full" and (stored.get("complete") or stored.get("mode") != "full"):
        return None  # the last snapshot finished: take a new one
    if mode == "incremental" and stored.get("mode") != "incremental":
        return None
    return Watermark.from_dict(stored["watermark"])


def _prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead of the consumer."""
    done = object()
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def fill() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        slots.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(done)
        except BaseException as exc:  # handed to the consuming thread, raised there
            slots.put(exc)

    worker = threading.Thread(target=fill, name="dataplump-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
