"""Extracted and transformed orders for loading tests, ``dataplump load`` as a process, and
independent readers of what the sinks committed (deltalake in this process, plain SQL).

The pipeline is the one of :mod:`tests.support.transformation` plus an input contract
whose ``max`` on ``id`` sends the last 5% of the orders to the dead-letter topic, so a
load has curated rows, ``_dlq`` rows and ``_failed`` rows to commit. The topics are filled
once; each test writes its own pipeline file (same pipeline name, so the same topics)
with its own sinks, and every load starts from the offsets its fresh sinks hold: nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from deltalake import DeltaTable
from sqlalchemy.engine import make_url

from dataplump.config import PipelineConfig, load_config
from dataplump.pipeline import topics
from dataplump.pipeline.extract import Extractor
from dataplump.pipeline.transform import Transformer
from dataplump.sinks.delta import read_delta
from tests.support.cli import CliResult, Command
from tests.support.topics import ids, read_committed
from tests.support.transformation import Expected, write_pipeline


@dataclass(frozen=True)
class Loadable:
    """Orders extracted and transformed onto the topics of one pipeline."""

    folder: Path
    config: dict[str, Any]
    """The pipeline file's content (sinks are added per test)."""
    name: str
    processed: frozenset[int]
    failed: frozenset[int]
    dlq: frozenset[int]
    records: dict[str, int]
    """Committed records per topic: ``processed``, ``failed``, ``dlq``."""

    def pipeline(
        self,
        folder: Path,
        sinks: dict[str, dict[str, Any]],
        *,
        table_sinks: list[str] | None = None,
        name: str = "dataplump.yaml",
    ) -> Path:
        """Write a pipeline file in ``folder`` loading into ``sinks``; return its path."""
        config = json.loads(json.dumps(self.config))
        config["sinks"] = sinks
        # a killed loader's partitions come back to its restart after 6 s (broker minimum)
        config["kafka"].setdefault("extra", {})["session.timeout.ms"] = "6000"
        if table_sinks is not None:
            config["tables"]["orders"]["sinks"] = table_sinks
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "steps.py").write_text((self.folder / "steps.py").read_text())
        path = folder / name
        path.write_text(json.dumps(config, indent=2))
        return path


def loadable(
    folder: Path,
    bootstrap: str,
    rows: int,
    partitions: int = 2,
    *,
    batch_size: int = 1000,
    framing: str = "row",
) -> Loadable:
    """Extract and transform ``rows`` orders (the last 5% rejected by the contract)."""
    path, name = write_pipeline(
        folder, bootstrap, rows=rows, batch_size=batch_size, partitions=partitions, framing=framing
    )
    config = json.loads(path.read_text())
    limit = rows - rows // 20
    config["tables"]["orders"]["contract"] = {
        "columns": {"id": {"type": "int64", "not_null": True, "max": limit}}
    }
    path.write_text(json.dumps(config, indent=2))
    pipeline = load_config(path)
    Extractor(pipeline, bootstrap).run_once()
    Transformer(pipeline, bootstrap).run(once=True)
    expected = Expected.of(rows)
    dlq = frozenset(i for i in range(1, rows + 1) if i > limit)
    counts = {
        "processed": sum(ids(read_committed(bootstrap, topics.processed(name, "orders"))).values()),
        "failed": len(read_committed(bootstrap, topics.failed(name))),
        "dlq": len(read_committed(bootstrap, topics.dlq(name, "orders"))),
    }
    loaded = Loadable(
        folder,
        config,
        name,
        expected.processed - dlq,
        expected.failed - dlq,
        dlq,
        counts,
    )
    assert counts == {
        "processed": len(loaded.processed),
        "failed": len(loaded.failed),
        "dlq": len(dlq),
    }, counts
    return loaded


# --- independent readers -----------------------------------------------------------


def key_ids(keys: list[str | None]) -> list[int]:
    return [int(json.loads(k)["id"]) for k in keys if k is not None]


def twice(values: list[Any]) -> list[Any]:
    return sorted(v for v, n in Counter(values).items() if n > 1)[:10]


def delta_rows(path: Path, columns: list[str]) -> dict[str, list[Any]]:
    """Columns of the Delta table at ``path``, read by deltalake in this process."""
    table = read_delta(DeltaTable(str(path)), columns)
    return {c: table[c].to_pylist() for c in columns}


def check_lake(lake: Path, data: Loadable, report: str = "") -> None:
    """``orders`` holds every processed order once; ``_dlq`` and ``_failed`` every record."""
    orders = delta_rows(lake / "orders", ["id", "_dp_topic", "_dp_partition", "_dp_offset"])
    assert not twice(orders["id"]), f"orders twice in the lake: {twice(orders['id'])} {report}"
    missing = sorted(data.processed - set(orders["id"]))[:10]
    extra = sorted(set(orders["id"]) - data.processed)[:10]
    assert (missing, extra) == ([], []), f"lake orders: missing, extra {report}"
    for table, wanted, count in (
        ("_dlq", data.dlq, data.records["dlq"]),
        ("_failed", data.failed, data.records["failed"]),
    ):
        rows = delta_rows(lake / table, ["key", "_dp_topic", "_dp_partition", "_dp_offset"])
        where = list(zip(rows["_dp_topic"], rows["_dp_partition"], rows["_dp_offset"], strict=True))
        assert not twice(where), f"{table}: records twice {twice(where)} {report}"
        assert len(where) == count, f"{table}: {len(where)} rows, {count} records {report}"
        assert set(key_ids(rows["key"])) == wanted, f"{table}: wrong keys {report}"


def warehouse_ids(url: str, table: str = "orders") -> list[int]:
    """``SELECT id FROM <table>`` on the warehouse, as psql would."""
    with connect(url) as conn:
        return [int(r[0]) for r in conn.execute(f'SELECT id FROM "{table}"').fetchall()]  # noqa: S608


def check_warehouse(url: str, data: Loadable, report: str = "") -> None:
    ids = warehouse_ids(url)
    assert not twice(ids), f"orders twice in the warehouse: {twice(ids)} {report}"
    missing = sorted(data.processed - set(ids))[:10]
    extra = sorted(set(ids) - data.processed)[:10]
    assert (missing, extra) == ([], []), f"warehouse: missing, extra {report}"
    with connect(url) as conn:
        ahead = conn.execute(
            "SELECT o.topic, o.partition, o.next_offset, max(t._dp_offset) FROM"
            " _dataplump_offsets o JOIN orders t ON t._dp_topic = o.topic AND"
            " t._dp_partition = o.partition WHERE o.sink_table = 'orders'"
            " GROUP BY 1, 2, 3 HAVING max(t._dp_offset) >= o.next_offset"
        ).fetchall()
    assert not ahead, f"rows beyond the stored offsets: {ahead} {report}"


def connect(url: str) -> psycopg.Connection[Any]:
    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
        autocommit=True,
    )


def delta_commits(table: Path) -> int:
    """Commits in the Delta log of ``table`` (cheap: counts the log's JSON files)."""
    log = table / "_delta_log"
    return len(list(log.glob("*.json"))) if log.is_dir() else 0


# --- ``dataplump load`` as a process ------------------------------------------------


class Loading(Command):
    """One ``dataplump load`` process; output goes to files (no pipe to fill)."""

    def __init__(self, config: Path, *args: str, logs: Path, label: str = "load") -> None:
        super().__init__(
            "load", "-c", str(config), *args, logs=logs, cwd=config.parent, label=label
        )


def run_load(config: Path, *args: str, logs: Path, timeout: float = 120.0) -> CliResult:
    """Run ``dataplump load ARGS`` to its end."""
    return Loading(config, *args, logs=logs).wait(timeout)


def pipeline_config(path: Path) -> PipelineConfig:
    return load_config(path)
