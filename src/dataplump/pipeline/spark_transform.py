"""The transformation stage on Spark (``transform.engine: spark``).

Spark Structured Streaming reads ``<pipeline>.<table>.active`` with Spark's Kafka source
(committed records only), and every micro-batch goes through ``foreachBatch``:

1. the micro-batch's records come to the driver, and the records below the offsets the
   group ``dataplump.<pipeline>.transform`` has committed are dropped (a micro-batch
   Spark replays after a crash was already written);
2. per table, the records are decoded as in the DuckDB engine, the rows go back to Spark
   as a DataFrame, the table's steps run there
   (:class:`~dataplump.engine.spark.transform.SparkTableTransform`: built-in steps as
   Spark expressions, SQL steps translated to Spark SQL, pandas and polars steps through
   Arrow), and so does the output contract
   (:func:`~dataplump.contracts.spark_check.check_frame`);
3. the processed and failed records, the alerts, the totals and the consumed offsets are
   written in ONE Kafka transaction by the same code as the DuckDB engine's
   (:class:`~dataplump.pipeline.transform.Transformer`), so the records are the same
   bytes with the same headers and reasons.

Exactly once: Spark's own Kafka sink is at least once, so it is not used; the offsets
committed in the transaction are the checkpoint. Each run starts Spark's source from
them (Spark's checkpoint folder is made fresh per run and only serves that run), and
step 1 skips what a replayed micro-batch already wrote. The processed topic therefore
holds every active record's outcome once, and the loader's idempotent commit takes it
from there. The transactional id is slot 0's: a Spark run fences a DuckDB slot 0 left
running, and continues its totals.

What passes through the driver: the raw records and the transformed rows (the Kafka
transaction is one producer's). The steps and the contract run on the executors.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaException, TopicPartition

from dataplump.bus.kafka import Producer, consumer, wrap_kafka_error
from dataplump.config import PipelineConfig
from dataplump.engine import FAILURES_SCHEMA, ROW, StepFailed, TransformResult
from dataplump.errors import ConfigError, TerminalError
from dataplump.pipeline.transform import (
    CONSUMER,
    Progress,
    TransformCounts,
    Transformer,
    Verdict,
    _Attempt,
    _step_failed,
)

if TYPE_CHECKING:
    from confluent_kafka import Message
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

_ID = "__dp_out"
"""A unique id per output row of a micro-batch, to find the contract's rejections."""
_REASONS = "__dp_reasons"


class SparkStageError(TerminalError):
    """The Spark query stopped on an error that is not the stage's own."""


class KafkaRecord:
    """A record Spark's Kafka source read, in the shape of a consumed message."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._headers = key, value, headers

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers


class SparkTransformer(Transformer):
    """The transformation of a pipeline's tables as one Spark streaming query."""

    def __init__(
        self,
        config: PipelineConfig,
        bootstrap: str,
        *,
        tables: Sequence[str] | None = None,
        run_id: str | None = None,
        on_progress: Progress | None = None,
        spark: SparkSession | None = None,
    ) -> None:
        super().__init__(
            config, bootstrap, tables=tables, slot=0, run_id=run_id, on_progress=on_progress
        )
        from dataplump.engine.spark.references import SparkReferences, jdbc_packages
        from dataplump.engine.spark.session import spark_session
        from dataplump.engine.spark.transform import SparkTableTransform

        self.settings = config.transform.spark
        if config.kafka.topic.framing != "row":  # `--engine spark` over a DuckDB config
            raise ConfigError(
                "the Spark engine reads one JSON record per row, and `kafka.topic.framing` is"
                f" `{config.kafka.topic.framing}`: use the DuckDB engine, or framing `row`"
            )
        _check_sql(config, self.tables)  # before Spark starts: a refusal takes no JVM
        self.spark = spark or spark_session(
            self.settings, f"{config.name} transform", packages=jdbc_packages(config)
        )
        self.spark_references = SparkReferences(self.spark, config)
        self.spark_transforms = {
            table: SparkTableTransform.from_config(self.spark, config, table, self.spark_references)
            for table in self.tables
        }
        self._committed: dict[tuple[str, int], int] = {}
        """The group's next offset per active partition, as last committed."""
        self._error: BaseException | None = None

    @property
    def ui_address(self) -> str | None:
        """The Spark UI of this run (None when it is off)."""
        from dataplump.engine.spark.session import ui_address

        return ui_address(self.spark)

    def run(
        self, *, once: bool = False, stop: threading.Event | None = None
    ) -> list[TransformCounts]:
        """Transform until ``stop`` is set, or with ``once`` until the active topics are
        drained to where they ended when the run began; return the counts."""
        stop = stop or threading.Event()
        self.prepare()
        producer = self._open_producer()
        group = consumer(self.bootstrap, self.group_id, extra={**CONSUMER, **self._client})
        checkpoint = Path(tempfile.mkdtemp(prefix=f"dataplump-spark-{self.config.name}-"))
        started = time.monotonic()
        error: BaseException | None = None
        try:
            self._committed = self._read_committed(group)
            query = self._start(checkpoint, producer, group, once=once)
            while query.isActive and not stop.is_set():
                query.awaitTermination(0.5)
            if query.isActive:
                query.stop()
            self._raise_failure(query)
        except BaseException as exc:
            error = exc
            raise
        finally:
            group.close()
            shutil.rmtree(checkpoint, ignore_errors=True)
            self._report_run(producer, time.monotonic() - started, error)
        for counts in self.counts.values():
            counts.finished = time.monotonic()
            self.on_progress(counts)
        return list(self.counts.values())

    # -- the query ------------------------------------------------------------------------
    def _start(self, checkpoint: Path, producer: Producer, group: Consumer, *, once: bool) -> Any:
        options = {
            "kafka.bootstrap.servers": self.bootstrap,
            "subscribe": ",".join(self._table_of),
            "startingOffsets": json.dumps(self._starting_offsets()),
            "includeHeaders": "true",
            "kafka.isolation.level": "read_committed",
            "maxOffsetsPerTrigger": str(self.settings.batch_records),
            "failOnDataLoss": "true",
            **_kafka_security(self._client),
        }
        reader = self.spark.readStream.format("kafka")
        for key, value in options.items():
            reader = reader.option(key, value)

        def each_batch(frame: DataFrame, batch_id: int) -> None:
            try:
                self._micro_batch(frame, producer, group)
            except BaseException as exc:
                self._error = exc  # Spark wraps it; the stage raises the original
                raise

        writer = (
            reader.load()
            .writeStream.foreachBatch(each_batch)
            .option("checkpointLocation", str(checkpoint))
            .queryName(f"dataplump_{self.config.name}_transform")
        )
        if once:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=f"{self.settings.trigger_seconds} seconds")
        return writer.start()

    def _raise_failure(self, query: Any) -> None:
        failure = query.exception()
        if failure is None:
            return
        if self._error is not None:
            raise self._error
        raise SparkStageError(f"the Spark query stopped: {str(failure).strip().splitlines()[0]}")

    def _starting_offsets(self) -> dict[str, dict[str, int]]:
        """Where Spark's source starts: the committed offsets, else the beginning (-2)."""
        starting: dict[str, dict[str, int]] = {topic: {} for topic in self._table_of}
        for (topic, partition), offset in self._committed.items():
            starting[topic][str(partition)] = offset
        return starting

    def _read_committed(self, group: Consumer) -> dict[tuple[str, int], int]:
        """The group's committed offsets of every active partition (-2: none yet)."""
        try:
            metadata = group.list_topics(timeout=30)
            partitions = [
                TopicPartition(topic, p)
                for topic in self._table_of
                for p in (metadata.topics[topic].partitions if topic in metadata.topics else {})
            ]
            committed = group.committed(partitions, timeout=30)
        except KafkaException as exc:
            raise wrap_kafka_error(exc, "reading the transform group's offsets") from None
        return {(tp.topic, tp.partition): tp.offset if tp.offset >= 0 else -2 for tp in committed}

    # -- one micro-batch ------------------------------------------------------------------
    def _micro_batch(self, frame: DataFrame, producer: Producer, group: Consumer) -> None:
        records = frame.select("topic", "partition", "offset", "key", "value", "headers").toArrow()
        messages = self._new_records(records)
        if not messages:
            return
        ends: dict[tuple[str, int], int] = {}
        for message in messages:
            place = (message.topic(), message.partition())
            ends[place] = max(ends.get(place, -1), message.offset() + 1)
        offsets = [TopicPartition(t, p, o) for (t, p), o in ends.items()]
        self._transaction(producer, group, messages, offsets=offsets)  # type: ignore[arg-type]
        self._committed.update(ends)

    def _new_records(self, records: pa.Table) -> list[KafkaRecord]:
        """The records at or after the committed offset of their partition, in order."""
        if records.num_rows == 0:
            return []
        floor = np.array(
            [
                self._committed.get((t, p), -2)
                for t, p in zip(
                    records["topic"].to_pylist(), records["partition"].to_pylist(), strict=True
                )
            ]
        )
        offsets = records["offset"].to_numpy()
        keep = offsets >= floor
        if not keep.all():
            log.info("skipped %d record(s) already transformed", int((~keep).sum()))
            records = records.filter(pa.array(keep))
        topics_, partitions = records["topic"].to_pylist(), records["partition"].to_pylist()
        keys, values = records["key"].to_pylist(), records["value"].to_pylist()
        headers = records["headers"].to_pylist()
        return [
            KafkaRecord(
                topic,
                partition,
                offset,
                key,
                value,
                [(h["key"], h["value"]) for h in pairs or ()],
            )
            for topic, partition, offset, key, value, pairs in zip(
                topics_, partitions, offsets[keep].tolist(), keys, values, headers, strict=True
            )
        ]

    def _attempt(self, table: str, inputs: pa.Table, decoded: list[Message]) -> _Attempt:
        """The table's steps and output contract run by Spark on the decoded rows."""
        from pyspark.sql import functions as F

        from dataplump.engine.spark.session import arrow_frame

        numbered = inputs.append_column(ROW, pa.array(np.arange(inputs.num_rows), pa.int64()))
        frame = arrow_frame(self.spark, numbered)
        try:
            result = self.spark_transforms[table].apply(frame)
        except StepFailed as exc:
            return _step_failed(exc, decoded)
        output = result.output.withColumn(_ID, F.monotonically_increasing_id()).persist()
        try:
            collected = output.toArrow()
            ids = collected[_ID].combine_chunks()
            source_rows = collected[ROW].combine_chunks() if result.has_lineage else None
            transformed = TransformResult(
                collected.drop_columns([c for c in (ROW, _ID) if c in collected.column_names]),
                source_rows,
                _failures(result.row_failures),
                dict(result.filtered),
            )

            def check(table: str, _output: pa.Table, input_rows: int) -> Verdict:
                return self._spark_check(table, output, ids, input_rows)

            return self._outcome(table, inputs, decoded, transformed, check)
        finally:
            output.unpersist()
            result.unpersist()

    def _spark_check(
        self, table: str, output: DataFrame, ids: pa.Array, input_rows: int
    ) -> Verdict:
        """The output contract run by Spark; rejections by position in the collected output."""
        from dataplump.contracts.spark_check import check_frame

        contract = self.contracts[table]
        assert contract is not None
        frame = output.drop(ROW) if ROW in output.columns else output
        checked = check_frame(
            contract,
            frame.withColumnRenamed(_ID, ROW),
            references={
                n: self.spark_references.get_reference(n) for n in contract.reference_names()
            },
            input_rows=input_rows,
        )
        rejected = checked.rejected.select(ROW, _REASONS).toArrow()
        positions = pc.index_in(rejected[ROW], value_set=ids).to_pylist()
        reasons = rejected[_REASONS].to_pylist()
        return Verdict(
            sorted(zip(positions, reasons, strict=True), key=lambda pair: pair[0]),
            tuple(checked.batch_failures),
        )

    def _refreshed(self, table: str, attempt: _Attempt, used: Any) -> bool:
        """Never: Spark's references reload after ``refresh_seconds`` only; the reload on a
        miss (``refresh_on_miss``) is the DuckDB engine's."""
        return False


def _check_sql(config: PipelineConfig, tables: Sequence[str]) -> None:
    """Refuse a SQL step Spark cannot run (sqlglot's translation; no Spark needed):
    :class:`~dataplump.engine.errors.StepConfigError` naming the table, step and construct."""
    from dataplump.engine.spark.sql import check_sql
    from dataplump.engine.spec import SqlStep

    for table in tables:
        for position, step in enumerate(config.transform.steps_for(table), 1):
            if isinstance(step, SqlStep):
                check_sql(table, position, step, tuple(config.transform.references))


def _failures(frame: DataFrame) -> pa.Table:
    """A Spark ``row_failures`` frame as an Arrow table of :data:`FAILURES_SCHEMA`."""
    table = frame.select(*FAILURES_SCHEMA.names).toArrow()
    return table.cast(FAILURES_SCHEMA) if table.num_rows else FAILURES_SCHEMA.empty_table()


_SECURITY = ("security.protocol", "sasl.mechanism")


def _kafka_security(client: dict[str, str]) -> dict[str, str]:
    """The librdkafka security settings as the Java client's, for Spark's Kafka source."""
    options = {f"kafka.{k}": v for k, v in client.items() if k in _SECURITY}
    user, password = client.get("sasl.username"), client.get("sasl.password")
    if user and password:
        mechanism = client.get("sasl.mechanism", "PLAIN").upper()
        module = (
            "org.apache.kafka.common.security.scram.ScramLoginModule"
            if mechanism.startswith("SCRAM")
            else "org.apache.kafka.common.security.plain.PlainLoginModule"
        )
        quoted = [json.dumps(v) for v in (user, password)]
        options["kafka.sasl.jaas.config"] = (
            f"{module} required username={quoted[0]} password={quoted[1]};"
        )
    if location := client.get("ssl.ca.location"):
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = location
    return options
