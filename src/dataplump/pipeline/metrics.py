"""What the stages of one ``dataplump run`` did, as counts per table and as Prometheus
metrics.

The stage processes report their counts (:mod:`dataplump.pipeline.stages`); a restarted
stage starts counting from zero, so :class:`Tally` carries the counts of the processes
before it. :class:`RunMetrics` serves them, with batch times, consumer lag and stage
health, on an HTTP endpoint (``prometheus_client``) while ``run`` runs.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

FIELDS: dict[str, dict[str, str]] = {
    "extract": {"read": "read", "valid": "valid", "invalid": "invalid"},
    "transform": {
        "consumed": "consumed",
        "processed": "transformed",
        "failed": "failed",
        "filtered": "filtered",
    },
    "load": {"consumed": "load_consumed", "loaded": "loaded"},
}
"""Counts of each stage kept per table: the stage's field -> the tally's name."""


class Tally:
    """What the stages of this run did, per table, over restarts."""

    def __init__(self, tables: list[str]) -> None:
        self.tables = tables
        self.latest: dict[tuple[str, str], dict[str, int]] = {}
        """The counts of the running process of a stage, by (stage, table)."""
        self.carried: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        """The counts of the stage's earlier processes (before a restart)."""
        self.started = time.monotonic()

    def progress(self, stage: str, counts: Mapping[str, Any]) -> bool:
        """Take a stage's report of one table; False if it is not one of ours."""
        table = str(counts.get("table"))
        if table not in self.tables or stage not in FIELDS:
            return False
        values = {}
        for name, column in FIELDS[stage].items():
            value = counts.get(name, 0)
            if isinstance(value, dict):  # `loaded` is by sink (a row is in every sink once
                # the slowest has it); `filtered` by step
                value = min(value.values(), default=0) if name == "loaded" else sum(value.values())
            values[column] = int(value)
        self.latest[(stage, table)] = values
        return True

    def restarted(self, stage: str) -> None:
        """Carry the counts of ``stage``'s process that ended."""
        for (s, table), values in list(self.latest.items()):
            if s == stage:
                carried = self.carried[(s, table)]
                for column, n in values.items():
                    carried[column] = carried.get(column, 0) + n
                del self.latest[(s, table)]

    def row(self, table: str) -> dict[str, int]:
        """Every count of ``table`` in this run."""
        row = {column: 0 for fields in FIELDS.values() for column in fields.values()}
        for source in (self.latest, self.carried):
            for (_, t), values in source.items():
                if t == table:
                    for column, n in values.items():
                        row[column] += n
        return row

    def by_stage(self) -> Iterator[tuple[str, str, str, int]]:
        """(stage, table, count name, value) of every count."""
        for stage, fields in FIELDS.items():
            for table in self.tables:
                totals: dict[str, int] = {}
                for source in (self.latest, self.carried):
                    for column, n in source.get((stage, table), {}).items():
                        totals[column] = totals.get(column, 0) + n
                for column in fields.values():
                    yield stage, table, column, totals.get(column, 0)


class RunMetrics(Collector):
    """The Prometheus metrics of one ``run``."""

    def __init__(
        self,
        pipeline: str,
        tally: Tally,
        stages: Callable[[], Mapping[str, Any]],
        lag: Mapping[str, Mapping[str, int]],
    ) -> None:
        self.pipeline = pipeline
        self.tally = tally
        self.stages = stages
        self.lag = lag
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self.batch_seconds = Histogram(
            "dataplump_batch_seconds",
            "Seconds between two committed batches of a stage for one table.",
            ["pipeline", "stage", "table"],
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self._last_batch: dict[tuple[str, str], tuple[float, int]] = {}

    def observe(self, stage: str, counts: Mapping[str, Any]) -> None:
        """Time a stage's batch from its progress reports (one per committed batch)."""
        key = (stage, str(counts.get("table")))
        batches = int(counts.get("batches", 0))
        now = time.monotonic()
        previous = self._last_batch.get(key)
        if previous is not None and batches > previous[1]:
            per_batch = (now - previous[0]) / (batches - previous[1])
            for _ in range(batches - previous[1]):
                self.batch_seconds.labels(self.pipeline, *key).observe(per_batch)
        if previous is None or batches != previous[1]:
            self._last_batch[key] = (now, batches)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``host:port`` in a background thread."""
        start_http_server(port, addr=host, registry=self.registry)

    def collect(self) -> Iterator[Metric]:
        records = CounterMetricFamily(
            "dataplump_records",
            "Records each stage handled in this run, by outcome.",
            labels=["pipeline", "stage", "table", "outcome"],
        )
        for stage, table, outcome, n in self.tally.by_stage():
            records.add_metric([self.pipeline, stage, table, outcome], n)
        yield records
        lag = GaugeMetricFamily(
            "dataplump_consumer_lag",
            "Offsets a stage's consumer group is behind the end of its input topics.",
            labels=["pipeline", "stage", "table"],
        )
        for table, stages in self.lag.items():
            for stage, n in stages.items():
                lag.add_metric([self.pipeline, stage, table], n)
        yield lag
        up = GaugeMetricFamily(
            "dataplump_stage_up", "1 while the stage's process runs.", labels=["pipeline", "stage"]
        )
        restarts = CounterMetricFamily(
            "dataplump_stage_restarts",
            "Restarts of the stage's process in this run.",
            labels=["pipeline", "stage"],
        )
        for name, state in self.stages().items():
            up.add_metric([self.pipeline, name], 1.0 if state.status == "running" else 0.0)
            restarts.add_metric([self.pipeline, name], state.restarts_total)
        yield up
        yield restarts


__all__ = ["FIELDS", "RunMetrics", "Tally"]
