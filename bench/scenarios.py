"""Scenarios 1 and 2 of issue 9 (3 to 5: ``scenario_*.py``): one subprocess per candidate.

Every candidate is a command; :func:`measure` runs it, samples its peak RSS (its
processes', whatever language they are in: ``bench/memory.py``) and reads the JSON line
it prints last. DataPlump and the naive loop run in the project's ``.venv``; dlt and the
floor in the bench's own environment (``bench/peers/env.py``); the perf test in the JVM
with the Kafka jars DataPlump's managed broker uses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.memory import tree_peak
from bench.report import Result
from bench.scenario_latency import scenario_5
from bench.scenario_memory import scenario_4
from bench.scenario_transform import scenario_3
from bench.tpch import LINEITEM_CONTRACT

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Context:
    """What every scenario gets: the loaded database, the broker, a scratch folder."""

    url: str
    bootstrap: str
    kafka_libs: Path
    rows: int
    work: Path
    peers_python: Path | None
    """The bench env's python; None when peers are skipped (``--no-peers``)."""
    logs: Path
    """Where each candidate's stdout and stderr are kept, to see where its time went."""

    def log(self, tool: str) -> Path:
        return self.logs / f"{self.work.name}-{tool}.log"


def run_child(cmd: Sequence[str], log: Path | None = None) -> tuple[int, str, str, float]:
    """Run ``cmd``; return its exit code, stdout, stderr tail and peak RSS in MB.

    The peak is sampled over the child and every process it starts (``bench/memory.py``;
    not ``wait4``'s, which counts the harness's own memory); stderr goes to a file so a
    chatty child cannot block on a full pipe. With ``log``, the command, its stdout and
    its stderr are written there.
    """
    with tempfile.TemporaryFile("w+") as errors, tree_peak() as peak:
        proc = subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=errors, text=True,
            cwd=ROOT,
        )  # fmt: skip
        out = proc.stdout.read() if proc.stdout else ""
        code = proc.wait()
        errors.seek(0)
        err = errors.read()
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"$ {' '.join(cmd)}\n# exit {code}\n{out}\n# stderr\n{err}")
    return code, out, err[-3000:], peak.mb


def measure(cmd: Sequence[str], log: Path | None = None) -> tuple[dict[str, float], float]:
    """Run ``cmd``; return the JSON of its last JSON stdout line and its peak RSS in MB."""
    code, out, err, rss = run_child(cmd, log)
    if code != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {code}:\n{err}")
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON result:\n{out[-2000:]}")
    return json.loads(lines[-1]), rss


def result(tool: str, scenario: int, data: dict[str, float], rss: float) -> Result:
    return Result(
        tool, scenario, int(data["rows"]), float(data["seconds"]), rss, int(data.get("invalid", 0))
    )


def write_pipeline(
    ctx: Context, lake: Path | None, table: str = "", tail: str = "", framing: str = "row"
) -> Path:
    """A pipeline file for ``lineitem`` on the run's broker; with a Delta sink if ``lake``;
    ``table`` is more YAML for the table's block, ``tail`` more top-level sections,
    ``framing`` the active topic's (``kafka.topic.framing``)."""
    name = f"bench{uuid.uuid4().hex[:6]}"
    topic = f"{{partitions: 2, framing: {framing}}}"
    text = (
        f"pipeline: {{name: {name}}}\n"
        f"source: {{url: '{ctx.url}'}}\n"
        f"kafka: {{bootstrap_servers: '{ctx.bootstrap}', topic: {topic}}}\n"
        "tables:\n  lineitem:\n    primary_key: [l_orderkey, l_linenumber]\n"
        f"    batch_size: 50000\n    contract:{LINEITEM_CONTRACT}{table}"
    )
    if lake is not None:
        text += f"sinks:\n  lake: {{kind: delta, path: '{lake}', mode: append}}\n"
    text += tail
    file = ctx.work / f"{name}.yaml"
    file.write_text(text)
    return file


ARROW_TOOL = "dataplump-arrow"
"""DataPlump with ``kafka.topic.framing: arrow`` (many rows per ``.active`` record)."""

# -- scenario 1: PostgreSQL -> Delta, with validation --------------------------------


def delta_rows(table: Path) -> int:
    """Rows in the Delta table at ``table`` (DataPlump's curated table is ``<lake>/<name>``).

    Only the curated table counts: the sink's side tables (dead letters, failed ops)
    live beside it and are not rows delivered.
    """
    from deltalake import DeltaTable

    if not (table / "_delta_log").is_dir():
        found = sorted(
            str(p.parent.relative_to(table.parent)) for p in table.parent.rglob("_delta_log")
        )
        raise RuntimeError(f"no Delta table at {table}; found: {found}")
    return int(DeltaTable(str(table)).to_pyarrow_dataset().count_rows())


def scenario_1(ctx: Context) -> list[Result]:
    """DataPlump ``run --once`` (through Kafka) vs dlt (ConnectorX, pyarrow) vs the floor."""
    import time

    cli = str(Path(sys.executable).parent / "dataplump")
    out = []
    for tool, framing in (("dataplump", "row"), (ARROW_TOOL, "arrow")):
        lake = ctx.work / f"lake-{tool}"
        pipeline = write_pipeline(ctx, lake, framing=framing)
        # Wall time of the whole command: stage processes start, drain, ledger check.
        started = time.perf_counter()
        code, _, err, rss = run_child(
            [cli, "run", "-c", str(pipeline), "--once", "--metrics-port", "0"], ctx.log(tool)
        )
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"{tool}: dataplump run --once exited {code}:\n{err}")
        out.append(Result(tool, 1, delta_rows(lake / "lineitem"), seconds, rss))
    if ctx.peers_python is None:
        return out
    peers = ROOT / "bench" / "peers"
    for tool, script, *extra in (
        ("dlt", "dlt_lake.py", "connectorx"),
        ("dlt-pyarrow", "dlt_lake.py", "pyarrow"),
        ("floor", "floor_lake.py"),
    ):
        folder = ctx.work / f"lake-{tool}"
        folder.mkdir()
        data, rss = measure(
            [str(ctx.peers_python), str(peers / script), ctx.url, str(folder), *extra],
            ctx.log(tool),
        )
        out.append(result(tool, 1, data, rss))
    return out


# -- scenario 2: PostgreSQL -> Kafka ---------------------------------------------------

PERF_LINE = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec")


def perf_test(ctx: Context, rows: int, record_size: int) -> tuple[dict[str, float], float]:
    """Kafka's ``ProducerPerformance`` for ``rows`` records of ``record_size`` bytes.

    Same broker, a 2-partition topic, idempotent producer with ``acks=all`` and
    ``linger.ms=20`` like the others. Its time is the one it reports (JVM start excluded).
    """
    from dataplump.bus.kafka import create_topics
    from dataplump.services.kafka import find_java

    topic = f"bench.perf.{uuid.uuid4().hex[:6]}"
    create_topics(ctx.bootstrap, [topic], partitions=2)
    cmd = [
        find_java(), "-Xmx512m", "-cp", str(ctx.kafka_libs / "*"),
        "org.apache.kafka.tools.ProducerPerformance",
        "--topic", topic, "--num-records", str(rows), "--record-size", str(record_size),
        "--throughput", "-1", "--producer-props", f"bootstrap.servers={ctx.bootstrap}",
        "acks=all", "linger.ms=20", "enable.idempotence=true",
    ]  # fmt: skip
    code, out, err, rss = run_child(cmd, ctx.log("kafka-perf-test"))
    last = [m for line in out.splitlines() if (m := PERF_LINE.match(line.strip()))]
    if code != 0 or not last:
        raise RuntimeError(f"ProducerPerformance failed ({code}):\n{err}")
    sent, rate = int(last[-1][1]), float(last[-1][2])
    return {"rows": sent, "seconds": sent / rate}, rss


def scenario_2(ctx: Context) -> list[Result]:
    """DataPlump ``extract --once`` vs the naive loop vs ``kafka-producer-perf-test``."""
    out = []
    size = 0
    for tool, framing in (("dataplump", "row"), (ARROW_TOOL, "arrow"), ("naive", "row")):
        pipeline = str(write_pipeline(ctx, None, framing=framing))
        child = "naive" if tool == "naive" else "dataplump"
        data, rss = measure(
            [sys.executable, "-m", "bench.extract", "--child", child, pipeline], ctx.log(tool)
        )
        out.append(result(tool, 2, data, rss))
        if tool == "naive":
            size = round(data["value_bytes"] / max(1, data["rows"]))
    data, rss = perf_test(ctx, out[0].rows, size)
    out.append(result("kafka-perf-test", 2, data, rss))
    return out


SCENARIOS: dict[int, Callable[[Context], list[Result]]] = {1: scenario_1, 2: scenario_2}
"""Every scenario of issue 9, by number (docs/benchmarks.md)."""

SCENARIOS[3] = scenario_3
SCENARIOS[4] = scenario_4
SCENARIOS[5] = scenario_5
