"""The row-accounting ledger: every source row read is curated, dead-lettered, failed or
filtered on purpose by a step — or still in flight — and nothing else.

Per table, over every run::

    read = in _dlq + in _failed + filtered by steps + loaded + in flight      (+ gap)

Where each figure comes from, so that none is taken on trust from the stage it checks:

- ``read``, ``valid``, ``invalid``: the extraction's totals, committed in the table's
  extract state in the same Kafka transaction as the rows (exact after any crash);
- ``consumed``, ``processed``, ``failed``, ``filtered``: the transformation's totals, in
  ``<pipeline>.transform-state``, in the same transaction as its output;
- ``in _dlq``, ``in _failed``: rows counted in the ops tables of the lake, less the
  records ``replay`` sent back (counted in ``<pipeline>.replays``, written in the same
  transaction as the copies: they are in flight or loaded now);
- ``loaded``: rows counted in the curated table of the table's first sink when it
  appends; in merge mode a later version of a row replaces the earlier one, so there the
  processed records the sink holds are counted (processed minus those not loaded yet);
- ``in flight``: records the next stage has not committed yet — active records not
  transformed (``valid + replayed - consumed``), and processed, DLQ and failed records beyond the
  loader group's offsets (read and counted: offsets are not a count).

A gap is a row lost or doubled somewhere; ``run --once`` and ``status`` flag it as an
error. A step that adds rows (a join that fans out) shows as a negative gap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson
from confluent_kafka import Message

from dataplump.bus.frames import rows_in
from dataplump.bus.kafka import count_records, existing_topics, group_offsets, log_bounds
from dataplump.config import PipelineConfig
from dataplump.pipeline import topics
from dataplump.pipeline.state import read_states
from dataplump.sinks.read import count_rows


@dataclass
class SinkRows:
    """A curated table in one sink."""

    kind: str
    mode: str
    rows: int
    """Rows the table holds now."""


@dataclass
class TableLedger:
    """The ledger of one table (all runs; :meth:`since` gives the part of one run)."""

    table: str
    read: int = 0
    valid: int = 0
    invalid: int = 0
    consumed: int = 0
    processed: int = 0
    failed: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    in_dlq: int = 0
    """Rows of the table in the ops table ``_dlq``, less those replayed."""
    in_failed: int = 0
    """Rows of the table in the ops table ``_failed``, less those replayed."""
    replayed: dict[str, int] = field(default_factory=dict)
    """Kept records sent back to ``.active`` by ``replay``, by store (``dlq``, ``failed``)."""
    loaded: int = 0
    sinks: dict[str, SinkRows] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    """Records a stage has not committed yet: ``transform``, ``load``, ``dlq``, ``failed``."""

    @property
    def filtered_total(self) -> int:
        return sum(self.filtered.values())

    @property
    def in_flight_total(self) -> int:
        return sum(self.in_flight.values())

    @property
    def gap(self) -> int:
        """Rows read but in no bucket (negative: more rows out than read)."""
        accounted = (
            self.in_dlq + self.in_failed + self.filtered_total + self.loaded + self.in_flight_total
        )
        return self.read - accounted

    @property
    def settled(self) -> bool:
        """Nothing in flight: every read row has reached its final place."""
        return self.in_flight_total == 0

    def since(self, earlier: TableLedger) -> TableLedger:
        """This ledger less ``earlier`` (of the same table): what happened in between.

        Every figure is a sum over rows, so the difference balances exactly when both
        ledgers do: read in between = its dead-letter + failed + filtered + loaded, plus
        the change of what is in flight.
        """
        delta = TableLedger(self.table)
        for item in fields(self):
            now, then = getattr(self, item.name), getattr(earlier, item.name)
            if isinstance(now, int):
                setattr(delta, item.name, now - then)
            elif item.name == "sinks":
                delta.sinks = {
                    n: SinkRows(s.kind, s.mode, s.rows - (then[n].rows if n in then else 0))
                    for n, s in now.items()
                }
            elif isinstance(now, dict):
                keys = dict.fromkeys([*now, *then])
                setattr(delta, item.name, {k: now.get(k, 0) - then.get(k, 0) for k in keys})
        return delta

    def as_dict(self) -> dict[str, Any]:
        """The ledger as plain JSON-able data (the stable shape of ``status --json``)."""
        data = asdict(self)
        data["filtered_total"] = self.filtered_total
        data["in_flight_total"] = self.in_flight_total
        data["gap"] = self.gap
        data["settled"] = self.settled
        return data


def read_ledger(
    config: PipelineConfig, bootstrap: str, tables: list[str] | None = None
) -> dict[str, TableLedger]:
    """The ledger of every table (or ``tables``) of the pipeline, read now."""
    name = config.name
    client = config.kafka.client_config(bootstrap)
    client.pop("bootstrap.servers")
    selected = list(tables or config.tables)
    ledgers = {t: TableLedger(t) for t in selected}
    present = existing_topics(bootstrap, extra=client)

    wanted = [topics.extract_state(name, t) for t in selected]
    wanted += [topics.transform_state(name), topics.replays(name)]
    states = read_states(bootstrap, [t for t in wanted if t in present], extra=client)
    for table, ledger in ledgers.items():
        extract_state = states.get(topics.extract_state(name, table), {})
        totals = (extract_state.get(table) or {}).get("totals") or {}
        for key in ("read", "valid", "invalid"):
            setattr(ledger, key, int(totals.get(key, 0)))
    for key, totals in states.get(topics.transform_state(name), {}).items():
        table = key.rpartition("@")[0]
        if table in ledgers:
            _add_transform(ledgers[table], totals)

    _, ops = config.ops_sink
    in_dlq = count_rows(ops, "_dlq", ["table"])
    in_failed = count_rows(ops, "_failed", ["table"])
    for table, ledger in ledgers.items():
        ledger.in_dlq = in_dlq.get((table,), 0)
        ledger.in_failed = in_failed.get((table,), 0)
        for sink_name, sink in config.sinks_of(table).items():
            rows = count_rows(sink, table).get((), 0)
            ledger.sinks[sink_name] = SinkRows(sink.kind, sink.mode, rows)

    for entry in states.get(topics.replays(name), {}).values():
        owner = ledgers.get(str(entry.get("table")))
        if owner is not None and entry.get("status", "sent") == "sent":
            kind = str(entry.get("kind"))
            owner.replayed[kind] = owner.replayed.get(kind, 0) + 1
    for ledger in ledgers.values():
        ledger.in_dlq -= ledger.replayed.get("dlq", 0)
        ledger.in_failed -= ledger.replayed.get("failed", 0)

    _in_flight(config, bootstrap, client, present, ledgers)
    for ledger in ledgers.values():
        first = next(iter(ledger.sinks.values()), None)
        pending = ledger.in_flight.get("load", 0)
        if first is not None and first.mode == "append":
            ledger.loaded = first.rows
        else:
            ledger.loaded = ledger.processed - pending
    return ledgers


def consumer_lag(
    config: PipelineConfig, bootstrap: str, tables: list[str] | None = None
) -> dict[str, dict[str, int]]:
    """Per table, how far the transformation (on ``.active``) and the loader (on
    ``.processed``) are behind the log end, in offsets (commit markers included)."""
    client = config.kafka.client_config(bootstrap)
    client.pop("bootstrap.servers")
    present = existing_topics(bootstrap, extra=client)
    name = config.name
    lag: dict[str, dict[str, int]] = {}
    for stage, group, topic_of in (
        ("transform", topics.transform_group(name), topics.active),
        ("load", topics.load_group(name), topics.processed),
    ):
        of_topic = {topic_of(name, t): t for t in tables or config.tables}
        wanted = [topic for topic in of_topic if topic in present]
        if not wanted:
            continue
        bounds = log_bounds(bootstrap, wanted, extra=client)
        done = group_offsets(bootstrap, group, bounds, extra=client)
        for (topic, partition), (low, end) in bounds.items():
            behind = end - max(done.get((topic, partition), low), low)
            per_table = lag.setdefault(of_topic[topic], {})
            per_table[stage] = per_table.get(stage, 0) + behind
    return lag


def _add_transform(ledger: TableLedger, totals: dict[str, Any]) -> None:
    ledger.consumed += int(totals.get("consumed", 0))
    ledger.processed += int(totals.get("processed", 0))
    ledger.failed += int(totals.get("failed", 0))
    for step, n in (totals.get("filtered") or {}).items():
        ledger.filtered[step] = ledger.filtered.get(step, 0) + int(n)


def _in_flight(
    config: PipelineConfig,
    bootstrap: str,
    client: dict[str, Any],
    present: set[str],
    ledgers: dict[str, TableLedger],
) -> None:
    """Fill ``in_flight`` of every ledger from the transform totals and the loader's lag."""
    name = config.name
    for ledger in ledgers.values():
        to_transform = ledger.valid + sum(ledger.replayed.values())
        ledger.in_flight["transform"] = max(to_transform - ledger.consumed, 0)
    kinds: dict[str, tuple[str, str | None]] = {}
    for table in ledgers:
        kinds[topics.processed(name, table)] = ("load", table)
        kinds[topics.dlq(name, table)] = ("dlq", table)
    kinds[topics.failed(name)] = ("failed", None)
    wanted = [topic for topic in kinds if topic in present]
    if not wanted:
        return
    bounds = log_bounds(bootstrap, wanted, extra=client)
    done = group_offsets(bootstrap, topics.load_group(name), bounds, extra=client)
    ranges = {key: (max(done.get(key, low), low), end) for key, (low, end) in bounds.items()}

    def classify(message: Message) -> str:
        kind, table = kinds[str(message.topic())]
        if table is None:  # the shared failed store: the record names its table
            table = _failed_table(message.value())
        return f"{kind}\t{table}"

    counted: Counter[str] = count_records(
        bootstrap, ranges, classify=classify, weigh=rows_in, extra=client
    )
    for label, n in counted.items():
        kind, _, table = label.partition("\t")
        if table in ledgers:
            ledgers[table].in_flight[kind] = ledgers[table].in_flight.get(kind, 0) + n


def _failed_table(value: bytes | None) -> str:
    try:
        return str(orjson.loads(value or b"{}").get("table", ""))
    except (orjson.JSONDecodeError, AttributeError):
        return ""


__all__ = ["SinkRows", "TableLedger", "consumer_lag", "read_ledger"]
