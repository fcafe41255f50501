"""A pipeline with transform steps on SQLite, and ``dataplump transform`` as a process.

Order ``i`` is a pure function of ``i``, so a test knows where each one must end without
reading the database back (the steps and the data of ``tests/integration/pipeline/
test_transform.py``, at any size):

- a null customer (``i % 10 == 3``): dropped on purpose by ``drop_null``, written nowhere;
- an impossible date (``i % 97 == 0``): failed by the ``parse_dates`` step;
- a negative amount (``i % 50 == 0``): breaks the output contract's ``min: 0``;
- every other order: on ``.processed``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from dataplump.config import PipelineConfig
from dataplump.pipeline import topics
from tests.support.cli import CliResult, Command
from tests.support.topics import _consumer, duplicates, ids, read_committed

STEP_MODULE = """
import pandas as pd

def add_size(df: pd.DataFrame) -> pd.DataFrame:
    df["size"] = (df["amount"].astype("float64") >= 500).map({True: "large", False: "small"})
    return df
"""


def customer(i: int) -> str | None:
    return None if i % 10 == 3 else f"  cust{i % 7} "


def status(i: int) -> str:
    return ["  NEW", "Paid  ", " shipped "][i % 3]


def amount(i: int) -> str:
    return f"-{i}.50" if i % 50 == 0 else f"{i}.25"


def ordered_on(i: int) -> str:
    return "31/02/2024" if i % 97 == 0 else f"{1 + i % 28:02d}/03/2024"


@dataclass(frozen=True)
class Expected:
    """Where the orders ``1..rows`` must end."""

    processed: frozenset[int]
    failed: frozenset[int]
    dropped: frozenset[int]

    @classmethod
    def of(cls, rows: int) -> Expected:
        every = range(1, rows + 1)
        dropped = {i for i in every if customer(i) is None}
        failed = {i for i in every if i % 97 == 0 or i % 50 == 0} - dropped
        return cls(frozenset(set(every) - dropped - failed), frozenset(failed), frozenset(dropped))

    @property
    def total(self) -> int:
        """Records the stage writes: processed + failed."""
        return len(self.processed) + len(self.failed)


def make_source(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE customers (name TEXT PRIMARY KEY, country TEXT NOT NULL)")
        db.executemany(
            "INSERT INTO customers VALUES (?, ?)", [(f"cust{k}", f"C{k}") for k in range(7)]
        )
        db.execute(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount NUMERIC(10,2),"
            " status TEXT, ordered_on TEXT)"
        )
        db.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
            [(i, customer(i), amount(i), status(i), ordered_on(i)) for i in range(1, rows + 1)],
        )


def write_pipeline(
    folder: Path,
    bootstrap: str,
    *,
    rows: int,
    batch_size: int = 1000,
    partitions: int = 1,
    pandas_step: str = "steps.py:add_size",
    transaction_timeout_ms: int | None = None,
    framing: str = "row",
) -> tuple[Path, str]:
    """The source database, the step module and the pipeline file; returns (file, name)."""
    folder.mkdir(parents=True, exist_ok=True)
    name = f"tf{uuid.uuid4().hex[:8]}"
    make_source(folder / "shop.db", rows)
    (folder / "steps.py").write_text(STEP_MODULE)
    kafka: dict[str, object] = {
        "bootstrap_servers": bootstrap,
        "topic": {"partitions": partitions, "framing": framing},
    }
    if transaction_timeout_ms is not None:
        kafka["extra"] = {"transaction.timeout.ms": str(transaction_timeout_ms)}
    config = {
        "pipeline": {"name": name},
        "source": {"url": f"sqlite:///{folder / 'shop.db'}"},
        "kafka": kafka,
        "tables": {
            "orders": {
                "primary_key": "id",
                "batch_size": batch_size,
                "output_contract": {
                    "version": "2",
                    "columns": {
                        "id": {"type": "int64", "not_null": True, "unique": True},
                        "amount": {"type": "decimal(10,2)", "min": 0},
                        "status": {"type": "string", "accepted_values": ["new", "paid", "shipped"]},
                        "country": {"type": "string", "not_null": True},
                        "size": {"type": "string"},
                    },
                },
            }
        },
        "transform": {
            "references": {"customers": {"table": "customers", "key": "name"}},
            "steps": {
                "orders": [
                    {"trim": ["status", "customer"]},
                    {"lowercase": ["status"]},
                    {"drop_null": ["customer"]},
                    {"parse_dates": {"ordered_on": "%d/%m/%Y"}},
                    {
                        "sql": "SELECT o.id, o.amount, o.status, o.ordered_on, c.country"
                        " FROM batch o JOIN customers c ON c.name = o.customer"
                    },
                    {"pandas": pandas_step},
                ]
            },
        },
    }
    path = folder / "dataplump.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path, name


def check_exactly_once(
    bootstrap: str, config: PipelineConfig, expected: Expected, report: str
) -> None:
    """Every active record once across ``.processed`` + failed, on the side it belongs."""
    processed = ids(read_committed(bootstrap, topics.processed(config.name, "orders")))
    failed = ids(read_committed(bootstrap, topics.failed(config.name)))
    both = processed + failed
    assert not duplicates(both), f"records twice: {duplicates(both)} ({report})"
    assert set(processed) == expected.processed, (
        f"processed: missing {sorted(expected.processed - set(processed))[:10]},"
        f" unexpected {sorted(set(processed) - expected.processed)[:10]} ({report})"
    )
    assert set(failed) == expected.failed, (
        f"failed: missing {sorted(expected.failed - set(failed))[:10]},"
        f" unexpected {sorted(set(failed) - expected.failed)[:10]} ({report})"
    )


class OutputWatcher:
    """Counts the committed records of ``.processed`` + failed as they appear."""

    def __init__(self, bootstrap: str, topic_names: list[str]) -> None:
        self._reader = _consumer(bootstrap, "read_committed")
        partitions = []
        for topic in topic_names:
            meta = self._reader.list_topics(topic, timeout=10).topics[topic]
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
        self._reader.assign(partitions)
        self.seen: Counter[int] = Counter()

    @classmethod
    def of(cls, bootstrap: str, config: PipelineConfig) -> OutputWatcher:
        names = [topics.processed(config.name, "orders"), topics.failed(config.name)]
        return cls(bootstrap, names)

    @property
    def total(self) -> int:
        return sum(self.seen.values())

    def poll(self, wait: float = 0.0) -> int:
        """Take in the records committed since the last call; return how many."""
        new = 0
        for msg in self._reader.consume(5000, wait):
            if msg.error() is None and msg.key() is not None:
                self.seen[int(json.loads(msg.key() or b"{}")["id"])] += 1
                new += 1
        return new

    def wait_for(self, total: int, timeout: float) -> bool:
        """Poll until ``total`` records were seen; False at the timeout."""
        deadline = time.monotonic() + timeout
        while self.total < total and time.monotonic() < deadline:
            self.poll(0.2)
        return self.total >= total

    def close(self) -> None:
        self._reader.close()


class Transformation(Command):
    """One ``dataplump transform`` process; output goes to files (no pipe to fill)."""

    def __init__(self, config: Path, *args: str, logs: Path, label: str = "transform") -> None:
        super().__init__(
            "transform", "-c", str(config), *args, logs=logs, cwd=config.parent, label=label
        )


def run_transform(config: Path, *args: str, logs: Path, timeout: float = 120.0) -> CliResult:
    """Run ``dataplump transform ARGS`` to its end."""
    return Transformation(config, *args, logs=logs).wait(timeout)
