"""Benchmark: .active -> SQL step -> output contract -> .processed, against a plain loop.

    .venv/bin/python -m bench.transform [--rows 1000000] [--batch 10000] [--profile]
                                         [--engine spark]

Builds a SQLite source in a temp folder (``orders``: id, customer_id, amount
``NUMERIC(12,2)``, status, created_at, updated_at; ``customers``: 10,000 rows), starts a
managed Kafka broker on a free port and fills ``<pipeline>.orders.active`` with the real
extractor (``Extractor.run_once``, timed apart, not counted). Then each candidate reads the
same active topic in its own consumer group, **each in its own subprocess** (one after the
other) so its peak RSS is its own:

dataplump   ``Transformer.run`` until all is committed: decode by ``dp.schema``, a SQL step
            (join ``customers``, three derived columns), an output contract of 5 rules, valid rows
            to ``.processed`` and the others to the failed store, one Kafka transaction per
            poll with the consumed offsets (exactly once)
baseline    a plain confluent-kafka loop (read_committed): ``json.loads`` per record, a
            pandas DataFrame per consumed batch, ``merge`` with the customers, the three
            columns, the same 5 checks as boolean masks, ``json.dumps`` + ``produce`` per
            output row (idempotent producer, not transactional; failed rows to a topic of
            their own), ``flush`` then a synchronous offset commit after each batch

spark       (``--engine spark``) DataPlump's Spark engine on ``local[2]``: the same
            pipeline file with ``transform.engine: spark``, one micro-batch of ``--batch``
            records per Kafka transaction; peak RSS counts Spark's JVM (a child process)

About 1% of orders have a negative amount and 0.4% an unknown status: both candidates must
send the same number of rows on (checked). ``--profile`` runs DataPlump alone under
cProfile and prints where its time goes (decode, steps, contract, encode, produce, commit).
The machine may be shared with other work: the load average is printed at start and end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dataplump.pipeline.transform import TransformCounts

REFERENCE_ROWS = 10_000
STATUSES = ("new", "paid", "shipped", "done")

SQL = """\
SELECT o.id, o.customer_id, o.amount, o.status, o.created_at, o.updated_at,
       c.country, c.segment,
       o.amount * c.discount AS discounted,
       c.country || '-' || o.status AS market,
       date_trunc('month', o.created_at) AS month
FROM batch o LEFT JOIN customers c USING (customer_id)
"""

PIPELINE = """\
pipeline: {{name: {name}}}
source: {{url: "sqlite:///{db}"}}
kafka: {{bootstrap_servers: "{bootstrap}", topic: {{partitions: 2}}}}
tables:
  orders:
    primary_key: id
    batch_size: 50000
    output_contract:
      version: bench
      columns:
        id: {{type: int64, not_null: true, unique: true}}
        amount: {{type: "decimal(12,2)", min: 0}}
        status: {{type: string, accepted_values: [{statuses}]}}
        country: {{type: string, not_null: true}}
transform:
  references:
    customers: {{table: customers, key: customer_id}}
  steps:
    orders:
      - sql: |
{sql}"""


CUSTOMERS_FILL = """
WITH RECURSIVE r(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM r WHERE i < :rows - 1)
INSERT INTO customers
SELECT i, 'customer ' || i,
       CASE i % 5 WHEN 0 THEN 'FR' WHEN 1 THEN 'DE' WHEN 2 THEN 'US' WHEN 3 THEN 'GB' ELSE 'ES' END,
       CASE i % 2 WHEN 0 THEN 'retail' ELSE 'pro' END,
       printf('%.2f', 1 - (i % 20) / 100.0)
FROM r
"""

ORDERS_FILL = """
WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < :rows)
INSERT INTO orders
SELECT i, (i * 7919) % :customers,
       printf('%.2f', (CASE WHEN i % 100 = 0 THEN -1 ELSE 1 END) * ((i % 100000) / 100.0 + 1)),
       CASE WHEN i % 250 = 0 THEN 'lost'
            ELSE CASE i % 4 WHEN 0 THEN 'new' WHEN 1 THEN 'paid' WHEN 2 THEN 'shipped'
                            ELSE 'done' END END,
       datetime('2024-01-01', '+' || (i * 7) || ' seconds'),
       CASE WHEN i % 3 = 0 THEN NULL ELSE datetime('2024-01-01', '+' || (i * 11) || ' seconds') END
FROM r
"""


def make_source(path: Path, rows: int) -> None:
    """``orders`` (1% negative amounts, 0.4% status ``lost``) and ``customers``."""
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " country TEXT NOT NULL, segment TEXT NOT NULL, discount NUMERIC(4,2) NOT NULL)"
        )
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,"
            " amount NUMERIC(12,2), status TEXT, created_at TIMESTAMP NOT NULL,"
            " updated_at TIMESTAMP)"
        )
        db.execute(CUSTOMERS_FILL, {"rows": REFERENCE_ROWS})
        db.execute(ORDERS_FILL, {"rows": rows, "customers": REFERENCE_ROWS})


def write_pipeline(folder: Path, bootstrap: str, rows: int) -> Path:
    db = folder / "shop.db"
    make_source(db, rows)
    file = folder / "dataplump.yaml"
    file.write_text(
        PIPELINE.format(
            name=f"tb{uuid.uuid4().hex[:6]}",
            db=db,
            bootstrap=bootstrap,
            statuses=", ".join(STATUSES),
            sql=textwrap.indent(SQL, " " * 10),
        )
    )
    return file


def run_dataplump(pipeline: str, batch: int, expected: int) -> dict[str, float]:
    from dataplump.config import load_config
    from dataplump.pipeline.transform import Transformer

    config = load_config(pipeline)
    # run(once=True) can wait forever here: its drain check compares the group's committed
    # offsets with the log ends, and when a partition's last record is followed by a
    # transaction marker the consumer had not yet skipped at the last commit, the committed
    # offset stays one short of the end. So stop once every extracted record is committed.
    stop = threading.Event()

    def progress(counts: TransformCounts) -> None:
        if counts.consumed >= expected:
            stop.set()

    transformer = Transformer(
        config, config.kafka.bootstrap_servers or "", max_records=batch, on_progress=progress
    )
    started = time.perf_counter()
    [counts] = transformer.run(stop=stop)
    return _measured(counts, time.perf_counter() - started)


def run_baseline(pipeline: str, batch: int, expected: int) -> dict[str, float]:
    from decimal import Decimal

    import pandas as pd
    from confluent_kafka import Consumer, Producer

    from dataplump.bus.kafka import create_topics
    from dataplump.config import load_config
    from dataplump.pipeline import topics

    config = load_config(pipeline)
    bootstrap = config.kafka.bootstrap_servers or ""
    source = config.source.url.get_secret_value().removeprefix("sqlite:///")
    out_topic, failed_topic = f"{config.name}.baseline", f"{config.name}.baseline.failed"
    create_topics(bootstrap, [out_topic, failed_topic], partitions=2)
    with sqlite3.connect(source) as db:
        customers = pd.read_sql("SELECT customer_id, country, segment, discount FROM customers", db)
    customers["discount"] = customers["discount"].map(
        lambda v: Decimal(str(v)).quantize(Decimal("0.01"))
    )
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"baseline-{uuid.uuid4().hex[:6]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
    )
    consumer.subscribe([topics.active(config.name, "orders")])
    accepted = list(STATUSES)
    rows = out = failed = 0
    started = time.perf_counter()
    while rows < expected:
        messages = [m for m in consumer.consume(batch, 1.0) if m.error() is None]
        if not messages:
            continue
        rows += len(messages)
        df = pd.DataFrame([json.loads(m.value() or b"{}") for m in messages])
        df["amount"] = df["amount"].map(lambda v: None if v is None else Decimal(v))
        df["created_at"] = pd.to_datetime(df["created_at"], format="ISO8601")
        df = df.merge(customers, how="left", on="customer_id")
        df["discounted"] = df["amount"] * df["discount"]  # Decimal objects: exact
        df["market"] = df["country"] + "-" + df["status"]
        df["month"] = df["created_at"].dt.to_period("M").dt.to_timestamp()
        df = df.drop(columns=["discount"])
        ok = (
            df["id"].notna()
            & ~df["id"].duplicated(keep=False)
            & ~(df["amount"].notna() & (df["amount"] < 0))
            & (df["status"].isna() | df["status"].isin(accepted))
            & df["country"].notna()
        )
        headers = [m.headers() for m in messages]  # merge keeps the left order
        for good, record, hdrs in zip(ok.tolist(), df.to_dict("records"), headers, strict=True):
            value = json.dumps(record, default=str).encode()
            key = json.dumps({"id": record["id"]}).encode()
            producer.produce(out_topic if good else failed_topic, value, key, headers=hdrs)
            producer.poll(0)
        good_rows = int(ok.sum())
        out += good_rows
        failed += len(df) - good_rows
        producer.flush()
        consumer.commit(asynchronous=False)
    seconds = time.perf_counter() - started
    consumer.close()
    return {"rows": rows, "out": out, "failed": failed, "seconds": seconds}


def run_spark(pipeline: str, batch: int, expected: int) -> dict[str, float]:
    """DataPlump with ``transform.engine: spark`` on ``local[2]``: the same steps and
    contract as Spark SQL and column expressions, one micro-batch of ``batch`` records per
    Kafka transaction. Session start-up is timed apart (``start_seconds``)."""
    from dataplump.config import load_config
    from dataplump.pipeline.spark_transform import SparkTransformer

    config = load_config(pipeline)
    settings = config.transform.spark.model_copy(
        update={"master": "local[2]", "ui": False, "log_level": "ERROR", "batch_records": batch}
    )
    transform = config.transform.model_copy(update={"engine": "spark", "spark": settings})
    config = config.model_copy(update={"transform": transform})
    # the DuckDB candidate committed the group's offsets at the end: start it over
    from confluent_kafka.admin import AdminClient

    from dataplump.pipeline import topics

    admin = AdminClient({"bootstrap.servers": config.kafka.bootstrap_servers or ""})
    for future in admin.delete_consumer_groups([topics.transform_group(config.name)]).values():
        future.result(30)
    started = time.perf_counter()
    transformer = SparkTransformer(config, config.kafka.bootstrap_servers or "")
    start_seconds = time.perf_counter() - started
    started = time.perf_counter()
    [counts] = transformer.run(once=True)
    return {**_measured(counts, time.perf_counter() - started), "start_seconds": start_seconds}


def _measured(counts: TransformCounts, seconds: float) -> dict[str, float]:
    """One DataPlump engine's result: records in, out and failed, and the seconds taken."""
    return {
        "rows": counts.consumed,
        "out": counts.processed,
        "failed": counts.failed,
        "seconds": seconds,
    }


CANDIDATES = {"dataplump": run_dataplump, "baseline": run_baseline, "spark": run_spark}
"""Every candidate; ``spark`` runs with ``--engine spark``."""


class TreeMemory:
    """Peak resident memory of this process and its children (Spark's JVM is one),
    sampled every 0.2 s in a thread."""

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            total = 0
            for process in [self._me, *self._me.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += process.memory_info().rss
            self.peak = max(self.peak, total)

    def stop(self) -> float:
        """The peak in MiB."""
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


PHASES = {
    "consume (poll)": ("kafka.py", "consume_batch"),
    "decode": ("transform.py", "_decode"),
    "steps (TableTransform.apply)": ("", "apply"),
    "contract (Contract.check)": ("", "check"),
    "lineage + contract rejects": ("transform.py", "_check_output"),
    "encode (encode_keys/rows)": ("records.py", "encode_"),
    "produce processed (produce_many)": ("kafka.py", "produce_many"),
    "failed store (_produce_failed)": ("transform.py", "_produce_failed"),
    "commit (send_offsets + commit)": ("kafka.py", "commit|send_offsets"),
    "drained check (committed)": ("transform.py", "_drained"),
}


def profile(pipeline: str, batch: int, expected: int) -> dict[str, Any]:
    """Run DataPlump under cProfile; the cumulative seconds of each phase."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    result: dict[str, Any] = dict(run_dataplump(pipeline, batch, expected))
    profiler.disable()
    stats: Any = pstats.Stats(profiler)
    phases: dict[str, float] = {}
    for label, (file, names) in PHASES.items():
        total = 0.0
        for (path, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
            wanted = names.split("|")
            if not path.endswith(file or ".py") or "dataplump" not in path:
                continue
            if any(func == n or (n.endswith("_") and func.startswith(n)) for n in wanted):
                total += ct
        phases[label] = total
    top = []
    for (path, line, func), (_cc, nc, tt, ct, _c) in sorted(
        stats.stats.items(), key=lambda kv: -kv[1][2]
    )[:15]:
        top.append(
            f"{tt:7.2f}s self {ct:7.2f}s cum {nc:>9,} calls  {Path(path).name}:{line} {func}"
        )
    result["phases"] = phases
    result["top"] = top
    return result


def child(name: str, pipeline: str, batch: int, expected: int) -> None:
    if name == "profile":
        result = profile(pipeline, batch, expected)
    else:
        memory = TreeMemory()
        result = dict(CANDIDATES[name](pipeline, batch, expected))
        result["tree_peak_rss_mb"] = memory.stop()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="records per poll")
    parser.add_argument("--profile", action="store_true", help="profile DataPlump only")
    parser.add_argument(
        "--engine",
        choices=["duckdb", "spark"],
        default="duckdb",
        help="spark: also run the Spark engine (local[2]) beside the DuckDB engine",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, pipeline, batch, expected = args.child
        child(name, pipeline, int(batch), int(expected))
        return

    from dataplump.config import load_config
    from dataplump.pipeline.extract import Extractor
    from dataplump.services.kafka import KafkaManager, free_port

    load_start = load()
    names = ["profile"] if args.profile else ["dataplump", "baseline"]
    if args.engine == "spark" and not args.profile:
        names.append("spark")
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        kafka = KafkaManager(Path(tmp) / "kafka", port=free_port())
        kafka.install()
        try:
            bootstrap = kafka.up().bootstrap
            started = time.perf_counter()
            pipeline = write_pipeline(Path(tmp), bootstrap, args.rows)
            source_seconds = time.perf_counter() - started
            config = load_config(pipeline)
            started = time.perf_counter()
            [extracted] = Extractor(config, bootstrap).run_once()
            extract_seconds = time.perf_counter() - started
            print(f"extracted {extracted.read:,} rows", file=sys.stderr, flush=True)
            for name in names:
                print(f"running {name}...", file=sys.stderr, flush=True)
                out = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "bench.transform",
                        "--child",
                        name,
                        str(pipeline),
                        str(args.batch),
                        str(extracted.read),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    check=False,
                )
                if out.returncode:
                    sys.exit(f"{name} failed (exit {out.returncode})")
                results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        finally:
            kafka.down()
    load_end = load()

    print(
        f"{args.rows:,} orders, SQLite -> .active (source {source_seconds:.1f}s, extract"
        f" {extracted.read:,} rows in {extract_seconds:.1f}s, not counted), then .active ->"
        f" 1 SQL step (join {REFERENCE_ROWS:,} customers, 3 derived columns) -> 5 rules,"
        f" {args.batch:,} records per poll"
    )
    print(
        f"{os.cpu_count()} CPUs shared with the Kafka broker and other work on this machine;"
        f" load average (1/5/15 min) at start {load_start}, at end {load_end}"
    )
    if args.profile:
        r = results["profile"]
        print(
            f"dataplump under cProfile: {r['rows']:,} rows in {r['seconds']:.1f}s"
            f" ({r['rows'] / r['seconds']:,.0f} rows/s with profiling overhead),"
            f" {r['out']:,} processed, {r['failed']:,} failed"
        )
        for label, seconds in r["phases"].items():
            print(f"  {label:<36}{seconds:7.2f}s {100 * seconds / r['seconds']:5.1f}%")
        print("top functions by own time:")
        for line in r["top"]:
            print(f"  {line}")
        return
    base = results["dataplump"]["rows"] / results["dataplump"]["seconds"]
    print(
        f"{'candidate':<12}{'rows':>11}{'out':>11}{'failed':>9}{'seconds':>9}{'rows/s':>11}"
        f"{'peak RSS':>12}{'with children':>15}{'ratio':>7}"
    )
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        print(
            f"{name:<12}{r['rows']:>11,}{r['out']:>11,}{r['failed']:>9,}{r['seconds']:>9.1f}"
            f"{rate:>11,.0f}{r['peak_rss_mb']:>8.0f} MiB{r['tree_peak_rss_mb']:>11.0f} MiB"
            f"{rate / base:>7.2f}"
        )
    if "spark" in results:
        print(
            f"spark: the session took {results['spark']['start_seconds']:.1f}s to start"
            " (not counted above); `seconds` is the run from the first micro-batch to the last"
        )
    outs = {name: r["out"] for name, r in results.items()}
    same = len(set(outs.values())) == 1
    print(
        "output rows: "
        + ", ".join(f"{name} {out:,}" for name, out in outs.items())
        + (": same" if same else ": DIFFERENT")
    )
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
