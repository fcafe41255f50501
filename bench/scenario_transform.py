"""Scenario 3 of issue 9: Kafka -> transform -> Kafka, the same SQL logic in every tool.

The ``.active`` topic of ``lineitem`` is filled once by DataPlump's ``extract --once``
(timed apart, not counted). Then each candidate reads that same topic in a consumer
group of its own, in its own subprocess, one after the other, and writes to its own
output topic:

dataplump         ``dataplump transform --once`` (DuckDB engine): the SQL step
                  (:data:`SQL`) and an output contract of two rules; valid rows to
                  ``.processed``, the others to the failed store, one Kafka transaction
                  per poll of 10,000 records with the consumed offsets (exactly once)
dataplump-arrow   the same command on the same rows with ``kafka.topic.framing: arrow``:
                  another pipeline's ``.active``, filled with frames the same way
dataplump-spark   the same command with ``--engine spark`` on ``local[2]``: the SQL
                  translated to Spark SQL, one transaction per micro-batch of 100,000
quix              a Quix Streams app (``bench/peers/quix_transform.py``), the same logic
                  in Python with ``Decimal``; at-least-once, Quix's default
quix-eos          the same app with ``processing_guarantee="exactly-once"``
spark-streaming   hand-written Structured Streaming (``bench/peers/spark_streaming.py``):
                  ``from_json``, the same SQL, ``to_json``, the Kafka sink, availableNow

DataPlump's two engines share the pipeline's topics, so the consumer group is deleted
between them and the Spark engine's output is what ``.processed`` and the failed store
grew by. Every candidate must send the same number of rows on and the same number to
its failed topic: the harness counts each output topic (``read_committed``) after the
run and fails loudly otherwise. The SQL drops ``AIR`` shipments (1 row in 7) and the
rule ``l_quantity <= 45`` fails about 1 row in 10.

Peak RSS is sampled over each candidate's processes, the JVM of PySpark included
(``bench/memory.py``).

The Spark candidates run when PySpark is in ``.venv`` (the ``spark`` extra) and
``BENCH_SKIP_SPARK`` is not set; the JVMs' start costs a minute or more on a busy
machine, which is why the CI smoke test sets it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from bench.report import Result

if TYPE_CHECKING:
    from bench.scenarios import Context

SQL = """\
SELECT *,
       l_extendedprice * (1 - l_discount) AS disc_price,
       l_extendedprice * (1 - l_discount) * (1 + l_tax) AS charge,
       l_returnflag || l_linestatus AS flag_status
FROM batch
WHERE l_shipmode <> 'AIR'
"""
"""The transform every candidate applies (the Quix app repeats it in Python). ``SELECT *``
keeps DataPlump's lineage, so its output keeps the input's headers and the rows the
``WHERE`` drops are counted as filtered (docs/transform.md)."""

OUTPUT_CONTRACT = """
      version: bench
      columns:
        l_quantity: {type: "decimal(15,2)", max: 45}
        flag_status: {type: string, accepted_values: [AF, NF, NO, RF]}
"""
"""The two rules checked after the SQL; rows failing one go to the failed topic."""


def write_pipeline(ctx: Context, framing: str = "row") -> Path:
    """A pipeline file for ``lineitem`` on the run's broker, with the step and contract."""
    from bench.scenarios import write_pipeline as lineitem_pipeline

    step = "".join(f"          {line}\n" for line in SQL.splitlines())
    return lineitem_pipeline(
        ctx,
        None,
        framing=framing,
        table=f"    output_contract:{OUTPUT_CONTRACT}",
        tail=(
            "transform:\n"
            "  spark: {master: 'local[2]', ui: false, log_level: ERROR}\n"
            f"  steps:\n    lineitem:\n      - sql: |\n{step}"
        ),
    )


def count_rows(bootstrap: str, topic: str) -> int:
    """Committed rows in ``topic`` from its start to its end (read_committed): a record
    of one row each, a frame (``kafka.topic.framing: arrow``) its ``dp.rows``."""
    from confluent_kafka import Consumer, TopicPartition

    from dataplump.bus.frames import rows_in

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-count-{uuid.uuid4().hex[:6]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    try:
        metadata = consumer.list_topics(topic, timeout=30).topics[topic]
        if metadata.error is not None:
            raise RuntimeError(f"cannot count {topic}: {metadata.error}")
        ends = {}
        for p in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        count = 0
        deadline = time.monotonic() + 120
        while ends:
            if time.monotonic() > deadline:
                raise RuntimeError(f"counting {topic}: still short of the end after 120 s")
            for message in consumer.consume(10_000, 1.0):
                if message.error() is None:
                    count += rows_in(message)
            done = [
                tp.partition
                for tp in consumer.position([TopicPartition(topic, p) for p in ends])
                if tp.offset >= ends[tp.partition]
            ]
            for p in done:
                del ends[p]
        return count
    finally:
        consumer.close()


def _dataplump(ctx: Context, tool: str, pipeline: Path, engine: str) -> Result:
    """``dataplump transform --once``: wall time of the whole command, like scenario 1."""
    from bench.scenarios import run_child

    cli = str(Path(sys.executable).parent / "dataplump")
    started = time.perf_counter()
    code, out, err, rss = run_child(
        [cli, "transform", "-c", str(pipeline), "--once", "--engine", engine], ctx.log(tool)
    )
    seconds = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"dataplump transform --once --engine {engine} exited {code}:\n{err}")
    # the rate its own table prints (the worker's, without the process's start): to read
    # small runs by, where the start weighs most; the results keep the wall time
    if own := [
        line.split()[-1] for line in out.splitlines() if line.strip().startswith("lineitem")
    ]:
        print(f"  {tool}: {seconds:.1f} s wall; its own table says {own[-1]} rows/s", flush=True)
    return Result(tool, 3, ctx.rows, seconds, rss)


def scenario_3(ctx: Context) -> list[Result]:
    """DataPlump ``transform --once`` (DuckDB, Spark) vs Quix Streams vs Spark Streaming."""
    from confluent_kafka.admin import AdminClient

    from bench.scenarios import ARROW_TOOL, ROOT, measure
    from dataplump.bus.kafka import create_topics
    from dataplump.config import load_config
    from dataplump.pipeline import topics
    from dataplump.pipeline.extract import Extractor
    from dataplump.services.kafka import cache_dir

    pipeline = write_pipeline(ctx)
    config = load_config(pipeline)
    name = config.name
    started = time.perf_counter()
    [extracted] = Extractor(config, ctx.bootstrap).run_once()
    print(
        f"  .active filled: {extracted.read:,} rows in {time.perf_counter() - started:.1f} s"
        " (not counted)",
        flush=True,
    )
    active = topics.active(name, "lineitem")
    expected = count_rows(ctx.bootstrap, active)
    if expected != ctx.rows:
        raise RuntimeError(f"{active} holds {expected:,} rows, not the {ctx.rows:,} loaded")

    results: list[Result] = []
    outputs: dict[str, tuple[int, int]] = {}
    """Per tool, (rows on, rows failed) counted in its output topics."""
    spark = False
    if os.environ.get("BENCH_SKIP_SPARK"):
        print("  BENCH_SKIP_SPARK is set: Spark candidates skipped", flush=True)
    elif importlib.util.find_spec("pyspark") is None:
        print("  pyspark is not in .venv (the `spark` extra): Spark candidates skipped")
    else:
        spark = True

    processed, failed = topics.processed(name, "lineitem"), topics.failed(name)
    results.append(_dataplump(ctx, "dataplump", pipeline, "duckdb"))
    outputs["dataplump"] = (
        count_rows(ctx.bootstrap, processed),
        count_rows(ctx.bootstrap, failed),
    )
    # The same rows as Arrow frames on another pipeline's .active (filled, not counted).
    framed_pipeline = write_pipeline(ctx, framing="arrow")
    framed = load_config(framed_pipeline)
    Extractor(framed, ctx.bootstrap).run_once()
    results.append(_dataplump(ctx, ARROW_TOOL, framed_pipeline, "duckdb"))
    outputs[ARROW_TOOL] = (
        count_rows(ctx.bootstrap, topics.processed(framed.name, "lineitem")),
        count_rows(ctx.bootstrap, topics.failed(framed.name)),
    )
    if spark:
        # the same topics and group: start the group over, count what the topics grew by
        admin = AdminClient({"bootstrap.servers": ctx.bootstrap})
        for future in admin.delete_consumer_groups([topics.transform_group(name)]).values():
            future.result(30)
        results.append(_dataplump(ctx, "dataplump-spark", pipeline, "spark"))
        before = outputs["dataplump"]
        outputs["dataplump-spark"] = (
            count_rows(ctx.bootstrap, processed) - before[0],
            count_rows(ctx.bootstrap, failed) - before[1],
        )

    peers = ROOT / "bench" / "peers"
    runs: list[tuple[str, list[str]]] = []
    if ctx.peers_python is not None:
        for tool, guarantee in (("quix", "at-least-once"), ("quix-eos", "exactly-once")):
            state = ctx.work / f"state-{tool}"
            runs.append(
                (tool, [str(ctx.peers_python), str(peers / "quix_transform.py"), ctx.bootstrap,
                        active, f"{name}.{tool}", f"{name}.{tool}.failed", str(expected),
                        str(state), guarantee])
            )  # fmt: skip
    if spark:
        from dataplump.engine.spark.session import kafka_package

        sql = ctx.work / "scenario3.sql"
        sql.write_text(SQL)
        tool = "spark-streaming"
        runs.append(
            (tool, [sys.executable, str(peers / "spark_streaming.py"), ctx.bootstrap, active,
                    f"{name}.{tool}", f"{name}.{tool}.failed", str(ctx.work / "checkpoint"),
                    kafka_package(), str(cache_dir() / "spark" / "ivy"), str(sql)])
        )  # fmt: skip
    for tool, cmd in runs:
        out, bad = f"{name}.{tool}", f"{name}.{tool}.failed"
        create_topics(ctx.bootstrap, [out, bad], partitions=2)
        data, rss = measure(cmd, ctx.log(tool))
        if int(data["rows"]) != expected:
            raise RuntimeError(f"{tool} consumed {int(data['rows']):,} records of {expected:,}")
        results.append(Result(tool, 3, expected, float(data["seconds"]), rss))
        outputs[tool] = (count_rows(ctx.bootstrap, out), count_rows(ctx.bootstrap, bad))

    print(
        "  rows on / failed: "
        + ", ".join(f"{tool} {ok:,} / {bad:,}" for tool, (ok, bad) in outputs.items()),
        flush=True,
    )
    if len(set(outputs.values())) != 1:
        raise RuntimeError(f"scenario 3: the candidates' outputs differ: {outputs}")
    failed_rows = next(iter(outputs.values()))[1]
    return [Result(r.tool, 3, r.rows, r.seconds, r.peak_rss_mb, failed_rows) for r in results]
