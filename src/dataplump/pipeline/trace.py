"""The path of one source row through the pipeline, from what the lake and Kafka kept.

Every curated and ops row carries its lineage (``_dp_source``, ``_dp_pk``,
``_dp_extracted_at``, ``_dp_run`` and the Kafka topic, partition and offset of the record
it was loaded from), so the path is read back from the tables themselves:

- the source row now (read from the source database by its primary key);
- each time it was dead-lettered (``_dlq``: the rules it broke), failed (``_failed``:
  the step and reasons) or replayed (``<pipeline>.replays``);
- the curated row in each sink, and for Delta the table version whose commit holds it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from dataplump.config import PipelineConfig
from dataplump.errors import ConfigError, DataPlumpError
from dataplump.sinks.read import read_table

LINEAGE = ["_dp_run", "_dp_extracted_at", "_dp_topic", "_dp_partition", "_dp_offset"]


@dataclass
class Step:
    """One thing that happened to the row."""

    at: datetime | None
    stage: str
    """`extract`, `dead-letter`, `failed`, `replayed` or `loaded`."""
    what: str
    where: str
    """The Kafka record (topic[partition]@offset) or the table and version."""
    detail: dict[str, Any] = field(default_factory=dict)
    origin: datetime | None = None
    """When the extraction this step follows from read the row (what orders the steps:
    Kafka stamps a record a moment before its extraction time is written)."""


@dataclass
class Trace:
    table: str
    key: dict[str, str]
    source_row: dict[str, Any] | None
    steps: list[Step]

    @property
    def found(self) -> bool:
        return bool(self.steps)


def parse_key(config: PipelineConfig, table: str, values: list[str]) -> dict[str, str]:
    """``--key`` values as {column: text}: ``VALUE`` for a one-column key, or
    ``column=value`` for each column of a composite key."""
    primary_key = list(config.tables[table].primary_key)
    if len(values) == 1 and "=" not in values[0] and len(primary_key) == 1:
        return {primary_key[0]: values[0]}
    pairs = dict(v.split("=", 1) for v in values if "=" in v)
    if sorted(pairs) != sorted(primary_key) or len(pairs) != len(values):
        raise ConfigError(
            f"table `{table}` has the primary key ({', '.join(primary_key)}); give"
            + (
                " its value: --key VALUE"
                if len(primary_key) == 1
                else " every column: " + " ".join(f"--key {c}=VALUE" for c in primary_key)
            )
        )
    return pairs


def trace(
    config: PipelineConfig, table: str, key: dict[str, str], bootstrap: str | None = None
) -> Trace:
    """Everything the pipeline kept about the row of ``table`` with primary key ``key``
    (replays too when ``bootstrap`` names the Kafka cluster)."""
    steps: list[Step] = []
    _, ops = config.ops_sink
    for store, stage in (("_dlq", "dead-letter"), ("_failed", "failed")):
        for row in read_table(ops, store, where=_matching("key", key, table)).iter_rows(named=True):
            steps.append(_extracted(row))
            if stage == "dead-letter":
                what = f"broke {row.get('rules')}: {row.get('message')}"
                detail = {"contract": row.get("contract"), "reasons": row.get("reasons")}
            else:
                step, rules = row.get("step"), row.get("rules")
                what = f"step {step} failed it ({rules}): {row.get('message')}"
                detail = {"reasons": row.get("reasons")}
            origin = row.get("_dp_extracted_at")
            steps.append(
                Step(row.get("kafka_timestamp"), stage, what, _record(row), detail, origin)
            )
    if bootstrap is not None:
        steps += _replays(config, bootstrap, table, key)
    for sink_name, sink in config.sinks_of(table).items():
        rows = read_table(sink, table, where=_matching("_dp_pk", key))
        for row in rows.iter_rows(named=True):
            steps.append(_extracted(row))
            version, committed = (
                _delta_version(sink, table, row) if sink.kind == "delta" else (None, None)
            )
            at = f", version {version}" if version is not None else ""
            data = {k: v for k, v in row.items() if not k.startswith("_dp_")}
            steps.append(
                Step(
                    committed,
                    "loaded",
                    f"curated row in sink `{sink_name}` ({sink.kind}) table `{table}`{at}",
                    _record(row),
                    {"row": data, "version": version},
                    row.get("_dp_extracted_at"),
                )
            )
    unique = {(s.stage, s.where, s.what): s for s in steps}
    ordered = sorted(unique.values(), key=_order)
    return Trace(table, key, _source_row(config, table, key), ordered)


RANK = {"extract": 0, "dead-letter": 1, "failed": 1, "replayed": 2, "loaded": 3}


def _order(step: Step) -> tuple[datetime, int, datetime]:
    """Steps by the extraction they follow from, then stage, then time."""
    far = datetime.max.replace(tzinfo=UTC)
    at = step.at or far
    return (step.origin or at, RANK.get(step.stage, 9), at)


def _replays(config: PipelineConfig, bootstrap: str, table: str, key: dict[str, str]) -> list[Step]:
    from dataplump.pipeline.replay import replayed

    found = []
    for where, entry in replayed(config, bootstrap).items():
        if entry.get("table") != table or entry.get("status", "sent") != "sent":
            continue
        try:
            values = orjson.loads(entry.get("key") or "{}")
        except orjson.JSONDecodeError:
            continue
        if {k: str(v) for k, v in values.items()} == key:
            at = datetime.fromisoformat(entry["at"]) if entry.get("at") else None
            origin = entry.get("extracted_at")
            found.append(
                Step(
                    at,
                    "replayed",
                    f"{entry.get('replay')} sent it to {entry.get('to')}",
                    where,
                    origin=datetime.fromisoformat(origin) if origin else None,
                )
            )
    return found


def _matching(
    column: str, key: dict[str, str], table: str | None = None
) -> Callable[[list[str]], pl.Expr]:
    """The filter of the rows whose ``column`` (a JSON key) is ``key`` (of ``table``)."""

    def condition(columns: list[str]) -> pl.Expr:
        if column not in columns or (table is not None and "table" not in columns):
            return pl.lit(False)
        found = pl.lit(True) if table is None else pl.col("table") == table
        for name, value in key.items():
            found = found & (pl.col(column).str.json_path_match(f"$.{name}") == value)
        return found

    return condition


def _record(row: dict[str, Any]) -> str:
    return f"{row.get('_dp_topic')}[{row.get('_dp_partition')}]@{row.get('_dp_offset')}"


def _extracted(row: dict[str, Any]) -> Step:
    at = row.get("_dp_extracted_at")
    return Step(
        at,
        "extract",
        f"read from {row.get('_dp_source')} by run {row.get('_dp_run')}",
        "source",
        origin=at,
    )


def _delta_version(
    sink: Any, table: str, row: dict[str, Any]
) -> tuple[int | None, datetime | None]:
    """The first table version whose commit holds the row's Kafka offset (binary search
    over versions on the Delta application transaction of its topic-partition), and
    when it was committed."""
    from deltalake import DeltaTable

    from dataplump.sinks._lake import app_id, table_place

    place = table_place(sink, table)
    path, options = place.uri, place.storage_options
    ident = app_id(str(row["_dp_topic"]), int(row["_dp_partition"]))
    offset = int(row["_dp_offset"])
    try:
        low, high = 0, DeltaTable(path, storage_options=options).version()
        while low < high:
            middle = (low + high) // 2
            at_version = DeltaTable(path, version=middle, storage_options=options)
            stored = at_version.transaction_version(ident)
            if stored is not None and stored > offset:
                high = middle
            else:
                low = middle + 1
        stamp = DeltaTable(path, version=low, storage_options=options).history(1)[0]["timestamp"]
        return low, datetime.fromtimestamp(stamp / 1000, UTC)
    except Exception:  # an old version vacuumed away: the version is only a detail
        return None, None


def _source_row(config: PipelineConfig, table: str, key: dict[str, str]) -> dict[str, Any] | None:
    """The row as the source holds it now (None if it is gone)."""
    from dataplump.sources import open_source

    with open_source(config.source, table, config.tables[table]) as source:
        url = source.url  # with DataPlump's driver for the backend
    try:
        engine = sa.create_engine(url, poolclass=NullPool)
        with engine.connect() as conn:
            reflected = sa.Table(
                table, sa.MetaData(), autoload_with=conn, schema=config.source.db_schema
            )
            condition = []
            for name, text in key.items():
                column = reflected.c[name]
                try:
                    value: Any = column.type.python_type(text)
                except (NotImplementedError, TypeError, ValueError):
                    value = text
                condition.append(column == value)
            found = conn.execute(sa.select(reflected).where(*condition)).mappings().first()
        engine.dispose()
    except (sa.exc.SQLAlchemyError, KeyError) as exc:
        reason = type(exc).__name__  # its text may hold the URL
        raise DataPlumpError(f"could not read `{table}` from the source: {reason}") from None
    return None if found is None else {str(k): v for k, v in found.items()}


__all__ = ["Step", "Trace", "parse_key", "trace"]
