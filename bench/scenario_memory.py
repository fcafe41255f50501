"""Scenario 4 of issue 9: peak RSS of each stage at two sizes (it must stay flat).

Each stage runs alone, to the end of its input, as its own command, one after the
other: ``dataplump extract --once``, ``transform --once``, ``load --once`` (Delta,
append), and each one's peak RSS is sampled by :func:`run_child`.
That is done twice, on ``lineitem`` cut to a tenth of the run's rows (a copy,
``lineitem_small``) and on all of it, each with its own pipeline and topics. Batches
are bounded (50,000 rows, as in scenarios 1 and 2), so a stage's peak should not grow
with the rows: the ratio column is the stage's peak RSS over its own at the smaller
size (1.00: flat). Then the same again with ``kafka.topic.framing: arrow``
(``dataplump-arrow <stage>``): frames hold up to a batch, polls about ``--max-records``
rows, so the stages must stay flat with frames too.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from bench.report import Result
from bench.tpch import LINEITEM_CONTRACT

if TYPE_CHECKING:  # bench.scenarios imports this module to register it
    from bench.scenarios import Context

STAGES = ("extract", "transform", "load")
SMALL_SHARE = 10
"""The smaller size is the run's rows divided by this."""


def small_copy(url: str, rows: int) -> str:
    """``lineitem_small``: the first ``rows`` rows of ``lineitem`` by key, as a table."""
    import psycopg
    from sqlalchemy import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE IF EXISTS lineitem_small")
        conn.execute(
            "CREATE TABLE lineitem_small AS SELECT * FROM lineitem"
            " ORDER BY l_orderkey, l_linenumber LIMIT %s",
            (rows,),
        )
        conn.execute("ALTER TABLE lineitem_small ADD PRIMARY KEY (l_orderkey, l_linenumber)")
    return "lineitem_small"


def pipeline_for(ctx: Context, table: str, lake: Path, framing: str) -> Path:
    """A pipeline over ``table`` (lineitem's columns) with its own name, into ``lake``."""
    name = f"mem{uuid.uuid4().hex[:6]}"
    file = ctx.work / f"{name}.yaml"
    topic = f"{{partitions: 2, framing: {framing}}}"
    file.write_text(
        f"pipeline: {{name: {name}}}\n"
        f"source: {{url: '{ctx.url}'}}\n"
        f"kafka: {{bootstrap_servers: '{ctx.bootstrap}', topic: {topic}}}\n"
        f"tables:\n  {table}:\n    primary_key: [l_orderkey, l_linenumber]\n"
        f"    batch_size: 50000\n    contract:{LINEITEM_CONTRACT}"
        f"sinks:\n  lake: {{kind: delta, path: '{lake}', mode: append}}\n"
    )
    return file


def stages(ctx: Context, table: str, rows: int, framing: str) -> list[Result]:
    """Each stage of a pipeline over ``table`` alone, ``--once``; one result per stage."""
    from bench.scenarios import ARROW_TOOL, delta_rows, run_child

    lake = ctx.work / f"lake-{table}-{framing}"
    pipeline = pipeline_for(ctx, table, lake, framing)
    cli = str(Path(sys.executable).parent / "dataplump")
    tool = ARROW_TOOL if framing == "arrow" else "dataplump"
    out = []
    for stage in STAGES:
        started = time.perf_counter()
        code, _, err, rss = run_child(
            [cli, stage, "-c", str(pipeline), "--once"], ctx.log(f"{stage}-{rows}-{framing}")
        )
        seconds = time.perf_counter() - started
        if code != 0:
            raise RuntimeError(f"{tool} {stage} --once on {table} exited {code}:\n{err}")
        out.append(Result(f"{tool} {stage}", 4, rows, seconds, rss))
    landed = delta_rows(lake / table)
    if landed != rows:
        raise RuntimeError(f"{table}: {rows:,} rows read but {landed:,} in the curated table")
    return out


def scenario_4(ctx: Context) -> list[Result]:
    """Peak RSS of extract, transform and load at a tenth of the rows and at all of them."""
    small_rows = max(1, ctx.rows // SMALL_SHARE)
    small_table = small_copy(ctx.url, small_rows)
    results: list[Result] = []
    for framing in ("row", "arrow"):
        small = stages(ctx, small_table, small_rows, framing)
        full = stages(ctx, "lineitem", ctx.rows, framing)
        results += [
            Result(r.tool, 4, r.rows, r.seconds, r.peak_rss_mb, own_ratio=1.0) for r in small
        ]
        results += [
            Result(
                r.tool, 4, r.rows, r.seconds, r.peak_rss_mb, own_ratio=r.peak_rss_mb / s.peak_rss_mb
            )
            for r, s in zip(full, small, strict=True)
        ]
    return results
