"""Issue 9's harness: DataPlump side by side with its peers, one table.

    .venv/bin/python -m bench [--scenario 1 2] [--rows N | --scale SF | --quick]
                              [--no-peers] [--no-docs]

Loads TPC-H ``lineitem`` and ``orders`` (``tpchgen-cli``) into a fresh database on the
local PostgreSQL test server, starts a managed Kafka broker, runs each scenario's
candidates one after the other, each in its own subprocess, and prints one table
(tool, scenario, rows, seconds, rows/s, peak RSS, ratio to DataPlump). The same goes
to ``bench/results/<UTC timestamp>.json`` and between the markers of
``docs/benchmarks.md`` (with ``docs/benchmarks.svg``). Peers run from the bench's
own environment ``.cache/bench-venv``, installed on first use (``bench/peers/env.py``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
from pathlib import Path

from bench import report, scenario_latency
from bench.peers import env
from bench.scenarios import ROOT, SCENARIOS, Context

QUICK_ROWS = 100_000


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenario", type=int, nargs="+", choices=sorted(SCENARIOS), default=sorted(SCENARIOS)
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--rows", type=int, help="exact lineitem rows (cut from the next scale)")
    size.add_argument("--scale", type=float, help="TPC-H scale factor (SF 1: 6M lineitem rows)")
    size.add_argument("--quick", action="store_true", help=f"smoke size: {QUICK_ROWS:,} rows")
    parser.add_argument(
        "--no-peers",
        action="store_true",
        help="skip peers that need .cache/bench-venv (dlt, floor)",
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument(
        "--latency-rate", type=float, default=1000.0, help="scenario 5: new orders per second"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=60.0, help="scenario 5: measured window"
    )
    parser.add_argument(
        "--latency-warmup", type=float, default=10.0, help="scenario 5: seconds before it"
    )
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from bench.tpch import load, scale_for
    from dataplump.services.kafka import KafkaManager, free_port
    from dataplump.testing.databases import PostgresServer

    args = parse(argv)
    scenario_latency.configure(
        scenario_latency.Settings(args.latency_rate, args.latency_seconds, args.latency_warmup)
    )
    rows = QUICK_ROWS if args.quick else args.rows
    scale = args.scale if args.scale else scale_for(rows or 1_000_000)
    if rows is None and not args.scale:
        rows = 1_000_000
    # tpchgen-cli lives in the bench env, so the env is needed even without peers.
    peers_python = env.ensure()
    server = PostgresServer.from_env()
    server.ensure_running()
    url = server.create_database()
    results: list[report.Result] = []
    started = dt.datetime.now(dt.UTC)
    logs = ROOT / ".cache" / "bench-logs" / f"{started:%Y%m%dT%H%M%SZ}"
    try:
        loaded = load(url, env.tpchgen(), scale, rows)
        print(f"TPC-H SF {scale}: {loaded:,} lineitem rows in PostgreSQL", flush=True)
        with tempfile.TemporaryDirectory(prefix="dp-bench-") as tmp:
            kafka = KafkaManager(Path(tmp) / "kafka", port=free_port())
            kafka.install()
            try:
                bootstrap = kafka.up().bootstrap
                for number in args.scenario:
                    work = Path(tmp) / f"scenario-{number}"
                    work.mkdir()
                    ctx = Context(
                        url, bootstrap, kafka.libs_dir, loaded, work,
                        None if args.no_peers else peers_python, logs,
                    )  # fmt: skip
                    print(f"scenario {number} ...", flush=True)
                    results += SCENARIOS[number](ctx)
            finally:
                kafka.down()
    finally:
        server.drop_database(url)

    print(report.text_table(results))
    meta: dict[str, object] = {
        "started": started.isoformat(timespec="seconds"),
        "scale": scale,
        "rows": loaded,
        "scenarios": args.scenario,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "peers": list(env.PINS),
    }
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"{started:%Y%m%dT%H%M%SZ}.json"
    out.write_text(report.to_json(results, meta) + "\n")
    print(f"wrote {out} (each candidate's output in {logs})")
    if not args.no_docs:
        doc = ROOT / "docs" / "benchmarks.md"
        chart = doc.with_suffix(".svg")
        chart.write_text(report.chart_svg(results))
        note = (
            f"Measured {meta['started']} on {meta['cpus']} cores, TPC-H SF {scale}"
            f" ({loaded:,} lineitem rows), by `python -m bench` ({out.name})."
        )
        report.write_docs(doc, results, note, chart)
        print(f"wrote {doc}")


if __name__ == "__main__":
    main()
