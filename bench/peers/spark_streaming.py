"""Scenario 3's hand-written Spark Structured Streaming job: Kafka -> same SQL -> Kafka.

    .venv/bin/python bench/peers/spark_streaming.py BOOTSTRAP ACTIVE OUT FAILED \
        CHECKPOINT_DIR KAFKA_PACKAGE IVY_DIR SQL_FILE

What a Spark user writes without DataPlump: ``readStream`` from ``ACTIVE`` (earliest,
``read_committed``, 100,000 records per micro-batch like DataPlump's Spark engine),
``from_json`` with the ``lineitem`` schema, the scenario's SQL on a temporary view
``batch``, then ``to_json`` and the Kafka sink with a ``topic`` column: rows that pass
the two rules to ``OUT``, the others to ``FAILED``. ``trigger(availableNow=True)`` reads
what is there and stops. The Kafka sink is not transactional (at-least-once). Runs with
the project's PySpark (the ``spark`` extra) but imports nothing of DataPlump; the Kafka
connector comes from Maven Central into ``IVY_DIR``. Its seconds start after the PySpark
import and so include the session's start (the JVM, the connector's resolution), as
``dataplump transform --once --engine spark`` does; ``start_seconds`` tells that part.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SCHEMA = (
    "l_orderkey BIGINT, l_partkey BIGINT, l_suppkey BIGINT, l_linenumber INT,"
    " l_quantity DECIMAL(15,2), l_extendedprice DECIMAL(15,2), l_discount DECIMAL(15,2),"
    " l_tax DECIMAL(15,2), l_returnflag STRING, l_linestatus STRING, l_shipdate DATE,"
    " l_commitdate DATE, l_receiptdate DATE, l_shipinstruct STRING, l_shipmode STRING,"
    " l_comment STRING"
)
RULES = "l_quantity <= 45 AND flag_status IN ('AF', 'NF', 'NO', 'RF')"
"""The output contract's two rules, as a Spark SQL condition."""


def main(
    bootstrap: str,
    active: str,
    out: str,
    failed: str,
    checkpoint: str,
    package: str,
    ivy: str,
    sql_file: str,
) -> None:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as f

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # bind here, not the host's address
    started = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("bench spark-streaming")
        .config("spark.jars.packages", package)
        .config("spark.jars.ivy", ivy)
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        # every micro-batch's progress is kept, to add up the records read (default: 100)
        .config("spark.sql.streaming.numRecentProgressUpdates", "100000")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    start_seconds = time.perf_counter() - started
    records = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("subscribe", active)
        .option("startingOffsets", "earliest")
        .option("kafka.isolation.level", "read_committed")
        .option("maxOffsetsPerTrigger", 100_000)
        .load()
    )
    rows = records.select(
        f.col("key"), f.from_json(f.col("value").cast("string"), SCHEMA).alias("r")
    ).select("key", "r.*")
    rows.createOrReplaceTempView("batch")
    result = spark.sql(Path(sql_file).read_text())
    columns = [f.col(name) for name in result.columns]
    # the key is the primary key as JSON, like DataPlump's
    framed = result.select(
        f.to_json(f.struct("l_orderkey", "l_linenumber")).alias("key"),
        f.to_json(f.struct(*columns)).alias("value"),
        f.when(f.expr(RULES), f.lit(out)).otherwise(f.lit(failed)).alias("topic"),
    )
    query = (
        framed.writeStream.format("kafka")
        .option("kafka.bootstrap.servers", bootstrap)
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    seconds = time.perf_counter() - started
    consumed = sum(int(p.get("numInputRows", 0)) for p in query.recentProgress)
    spark.stop()
    print(json.dumps({"rows": consumed, "seconds": seconds, "start_seconds": start_seconds}))


if __name__ == "__main__":
    main(*sys.argv[1:])
