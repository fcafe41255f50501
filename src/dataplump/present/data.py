# ruff: noqa: S608 - SQL here is built from quoted identifiers of the config and fixed
# fragments; values are parameters; a declared chart's SQL is the user's own, run read-only.
"""What the dashboard shows, as plain JSON-able data: queries over a :class:`Snapshot` of
the curated and ops tables (DuckDB over the Arrow frames :mod:`dataplump.sinks.read`
gives), plus the row-accounting ledger read from Kafka.

A :class:`Snapshot` is read once and queried many times; :class:`DashboardData` keeps the
newest one and reads the lake again when it is older than ``present.refresh_seconds``.
Every query is a function of a snapshot (and ``now``), so it is tested on frames built in
the test, with no sink and no Kafka.

DuckDB sees only the registered frames: external access (files, URLs, extensions) is
switched off and the configuration locked, so a declared chart's SQL cannot read
anything else.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from dataplump.errors import DataPlumpError

if TYPE_CHECKING:
    from dataplump.config import PipelineConfig
    from dataplump.config.models import ChartConfig

log = logging.getLogger(__name__)

OPS_TABLES = ("_dlq", "_failed", "_alerts", "_runs")
LINEAGE = (
    "_dp_source",
    "_dp_pk",
    "_dp_extracted_at",
    "_dp_run",
    "_dp_topic",
    "_dp_partition",
    "_dp_offset",
)
REJECT_COLUMNS = (
    "kafka_timestamp",
    "store",
    "table",
    "key",
    "stage",
    "step",
    "rules",
    "message",
    "reasons",
    "contract",
    *LINEAGE,
)
LEDGER_FIGURES = (
    "extracted",
    "valid",
    "invalid",
    "failed",
    "filtered",
    "loaded",
    "in_flight",
    "gap",
)
"""Overview figures that come from the ledger (null when Kafka cannot be read)."""
MAX_PROFILE_COLUMNS = 24
"""Columns of a curated table whose distribution the profile draws (the first ones)."""


class DashboardError(DataPlumpError):
    """A dashboard query that cannot be answered (an unknown table or chart, bad SQL)."""


@dataclass
class Snapshot:
    """The curated and ops tables as read at ``loaded_at``, and the ledger at that time."""

    curated: dict[str, pl.DataFrame]
    ops: dict[str, pl.DataFrame]
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    ledger: dict[str, dict[str, Any]] | None = None
    """``status --json``'s ``tables`` (ledger and lag per table), or None without Kafka."""
    ledger_error: str | None = None
    """Why the ledger could not be read (Kafka down), or None."""
    delivery: dict[tuple[Any, ...], str] | None = None
    """How far the notifications of each incident got (:func:`read_delivery`), or None
    when the notifier's state was not read."""
    delivery_error: str | None = None
    """Why the notifier's state could not be read, or None."""
    read_seconds: float = 0.0
    errors: dict[str, str] = field(default_factory=dict)
    """Tables that could not be read, with the reason."""
    _db: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _memo: dict[Any, Any] = field(default_factory=dict, repr=False)

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """``compute()``, once per snapshot and key (the data does not change under it;
        ``now``-dependent figures such as freshness are as of the first call)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @contextmanager
    def db(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The snapshot's DuckDB connection (one query at a time), every curated table a
        view by its name, the ops tables as ``_dlq`` etc., all with their columns even when
        the table does not exist yet."""
        with self._lock:
            if self._db is None:
                self._db = _connect(self)
            yield self._db

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Rows of ``sql`` as JSON-able dicts (times in ISO 8601, decimals as floats)."""
        with self.db() as db:
            # through Arrow: DuckDB's own fetch of zoned timestamps needs pytz
            rows = db.sql(sql, params=params or None).to_arrow_table().to_pylist()
        return [{n: json_value(v) for n, v in row.items()} for row in rows]

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def _ident(name: str) -> str:
    """``name`` as a quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def json_value(value: Any) -> Any:
    """A DuckDB or polars value as JSON data."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


_OPS_SCHEMA: dict[str, dict[str, pl.DataType]] = {
    "_dlq": {
        "kafka_timestamp": pl.Datetime("ms", "UTC"),
        "table": pl.String(),
        "key": pl.String(),
        "stage": pl.String(),
        "step": pl.String(),
        "rules": pl.String(),
        "message": pl.String(),
        "reasons": pl.String(),
        "contract": pl.String(),
        "value": pl.String(),
    },
    "_alerts": {
        "kafka_timestamp": pl.Datetime("ms", "UTC"),
        "table": pl.String(),
        "stage": pl.String(),
        "kind": pl.String(),
        "rule": pl.String(),
        "fingerprint": pl.String(),
        "count": pl.Int64(),
        "counts_by_rule": pl.String(),
        "sample_keys": pl.String(),
        "owner": pl.String(),
        "first_seen": pl.Datetime("us", "UTC"),
        "last_seen": pl.Datetime("us", "UTC"),
        "run_id": pl.String(),
        "kept_in": pl.String(),
        "message": pl.String(),
    },
    "_runs": {
        "pipeline": pl.String(),
        "stage": pl.String(),
        "run_id": pl.String(),
        "started_at": pl.Datetime("us", "UTC"),
        "ended_at": pl.Datetime("us", "UTC"),
        "seconds": pl.Float64(),
        "rows": pl.Int64(),
        "rows_per_second": pl.Float64(),
        "counts": pl.String(),
        "status": pl.String(),
        "error": pl.String(),
    },
}
_OPS_SCHEMA["_failed"] = _OPS_SCHEMA["_dlq"]
_LINEAGE_SCHEMA: dict[str, pl.DataType] = {
    "_dp_source": pl.String(),
    "_dp_pk": pl.String(),
    "_dp_extracted_at": pl.Datetime("us", "UTC"),
    "_dp_run": pl.String(),
    "_dp_topic": pl.String(),
    "_dp_partition": pl.Int32(),
    "_dp_offset": pl.Int64(),
}


def with_columns(frame: pl.DataFrame, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """``frame`` with every column of ``schema`` (null where missing)."""
    missing = [
        pl.lit(None, dtype).alias(n) for n, dtype in schema.items() if n not in frame.columns
    ]
    if not missing:
        return frame
    if frame.width == 0:
        return pl.DataFrame(schema=schema)
    return frame.with_columns(missing)


def _connect(snapshot: Snapshot) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect(":memory:", config={"threads": 2})
    for name, frame in snapshot.curated.items():
        db.register(name, with_columns(frame, _LINEAGE_SCHEMA).to_arrow())
    for name in OPS_TABLES:
        frame = snapshot.ops.get(name, pl.DataFrame())
        schema = {**_OPS_SCHEMA[name], **_LINEAGE_SCHEMA}
        db.register(name, with_columns(frame, schema).to_arrow())
    db.execute("SET enable_external_access = false")
    db.execute("SET lock_configuration = true")
    return db


# --- reading ---------------------------------------------------------------------------


def read_snapshot(
    config: PipelineConfig, bootstrap: str | None, *, ledger: bool = True
) -> Snapshot:
    """Read every curated table (from its first sink) and the ops tables, and the ledger
    when ``bootstrap`` is given and Kafka answers."""
    from dataplump.sinks.read import read_table

    started = time.monotonic()
    errors: dict[str, str] = {}

    def read(sink: Any, table: str) -> pl.DataFrame:
        try:
            return read_table(sink, table)
        except DataPlumpError as exc:
            errors[table] = str(exc)
            return pl.DataFrame()

    curated = {}
    for table in config.tables:
        sink = next(iter(config.sinks_of(table).values()))
        curated[table] = read(sink, table)
    _, ops_sink = config.ops_sink
    ops = {name: read(ops_sink, name) for name in OPS_TABLES}
    snapshot = Snapshot(curated=curated, ops=ops, errors=errors)
    if ledger and bootstrap is not None:
        try:
            from dataplump.cli.status_cmd import collect

            snapshot.ledger = collect(config, bootstrap, None)["tables"]
        except (DataPlumpError, OSError) as exc:
            snapshot.ledger_error = f"{type(exc).__name__}: {exc}"
        try:
            snapshot.delivery = read_delivery(config, bootstrap)
        except (DataPlumpError, OSError) as exc:
            snapshot.delivery_error = f"the notifier's state could not be read: {exc}"
    elif ledger:
        snapshot.ledger_error = "no Kafka cluster to read the ledger from"
        snapshot.delivery_error = "no Kafka cluster to read the notifier's state from"
    snapshot.read_seconds = round(time.monotonic() - started, 3)
    return snapshot


INCIDENT_KEY = ("table", "stage", "kind", "rule", "fingerprint")
"""What identifies an incident (as :func:`incidents` and the notifier group events)."""


def read_delivery(config: PipelineConfig, bootstrap: str) -> dict[tuple[Any, ...], str]:
    """How far the notifications of each incident the notifier knows got, per channel:
    ``email: delivered; webhook: pending (3 failed attempts: ...)``. Keyed by the
    incident's :data:`INCIDENT_KEY`. Only incidents still open or with
    a notice pending are in the notifier's state."""
    from dataplump.notify.service import load_state

    client = config.kafka.client_config(bootstrap)
    state = load_state(bootstrap, config.name, kafka_config=client, timeout=20)
    found: dict[tuple[Any, ...], dict[str, str]] = {}

    def key(incident: Any) -> tuple[Any, ...]:
        return tuple(getattr(incident, k) for k in INCIDENT_KEY)

    for channel, channel_state in state.channels.items():
        for pending in channel_state.pending:
            incident = pending.notification.incident
            what = f"{pending.notification.kind} pending"
            if pending.attempts:
                what += f" ({pending.attempts} failed attempts"
                what += f": {pending.last_error})" if pending.last_error else ")"
            found.setdefault(key(incident), {})[channel] = what
    for incident in state.incidents.open:
        for channel, channel_state in state.channels.items():
            if incident.id in channel_state.paged:
                found.setdefault(key(incident), {}).setdefault(channel, "delivered")
    return {k: "; ".join(f"{c}: {v}" for c, v in sorted(v.items())) for k, v in found.items()}


def delivery_state(snapshot: Snapshot, incident: dict[str, Any]) -> str:
    """How far the notifications of ``incident`` (a row of :func:`incidents`) got."""
    if snapshot.delivery is None:
        return f"unknown ({snapshot.delivery_error or 'the notifier was not read'})"
    found = snapshot.delivery.get(tuple(incident[k] for k in INCIDENT_KEY))
    if found is not None:
        return found
    return "not notified yet" if incident["status"] == "open" else "done (resolved)"


def with_effects(
    config: PipelineConfig, snapshot: Snapshot, found: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The incidents with how far their notifications got (``delivery``) and what they
    make incomplete: the declared ``charts`` over their table and the scheduled
    ``reports`` that cover it (an incident of no table touches them all)."""
    tables = list(config.tables)
    over = {c.name: chart_tables(c, tables) for c in config.present.charts}
    shown = []
    for incident in found:
        table = incident["table"]
        charts = [name for name, used in over.items() if table is None or table in used]
        reports = [
            r.name for r in config.present.reports
            if table is None or r.tables is None or table in r.tables
        ]  # fmt: skip
        effects = {"delivery": delivery_state(snapshot, incident), "charts": charts}
        shown.append({**incident, **effects, "reports": reports})
    return shown


class DashboardData:
    """The newest snapshot, read again when older than ``refresh_seconds`` (thread-safe:
    one reader at a time; requests meanwhile get the previous snapshot)."""

    def __init__(
        self,
        config: PipelineConfig,
        bootstrap: str | None,
        *,
        refresh_seconds: float | None = None,
        reader: Callable[[bool], Snapshot] | None = None,
    ) -> None:
        self.config = config
        self.bootstrap = bootstrap
        self.refresh_seconds = (
            config.present.refresh_seconds if refresh_seconds is None else refresh_seconds
        )
        self._reader = reader or (lambda ledger: read_snapshot(config, bootstrap, ledger=ledger))
        self._snapshot: Snapshot | None = None
        self._read_at = -math.inf
        self._reading = threading.Lock()

    def snapshot(self) -> Snapshot:
        """The current snapshot. The first call reads the lake without the ledger (fast)
        and starts a background read with it; later, a stale snapshot is served while a
        background thread reads the next one (the ledger reads Kafka: seconds)."""
        if self._snapshot is None:
            with self._reading:
                if self._snapshot is None:
                    self._snapshot = self._reader(False)
                    self._read_at = -math.inf  # stale at once: the ledger comes next
        stale = time.monotonic() - self._read_at >= self.refresh_seconds
        if stale and self._reading.acquire(blocking=False):
            threading.Thread(target=self._refresh_locked, daemon=True).start()
        assert self._snapshot is not None
        return self._snapshot

    def _refresh_locked(self) -> None:
        try:
            self.refresh()
        except Exception:  # a failed read keeps the previous snapshot
            log.exception("could not read the lake for the dashboard")
            self._read_at = time.monotonic()
        finally:
            self._reading.release()

    def refresh(self) -> Snapshot:
        """Read the lake and the ledger now."""
        fresh = self._reader(True)
        self._snapshot, self._read_at = fresh, time.monotonic()
        return fresh  # the previous one may still be queried: its connection closes with it


# --- queries ---------------------------------------------------------------------------


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def period_clause(
    column: str, since: datetime | None = None, until: datetime | None = None
) -> tuple[str, list[Any]]:
    """``WHERE`` conditions (without the keyword; ``true`` for none) keeping the rows whose
    ``column`` is in ``[since, until)``, and their parameters."""
    where, params = [], []
    if since is not None:
        where.append(f"{column} >= ?")
        params.append(since)
    if until is not None:
        where.append(f"{column} < ?")
        params.append(until)
    return (" AND ".join(where) or "true"), params


def rejected_counts(
    snapshot: Snapshot, since: datetime | None = None, until: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Per table, the rows in ``_dlq`` (``invalid``) and ``_failed`` (``failed``); with
    ``since``/``until``, those kept in ``[since, until)`` (by ``kafka_timestamp``: when the
    stage rejected them)."""
    where, params = period_clause("kafka_timestamp", since, until)
    rows = snapshot.query(
        f"SELECT 'invalid' AS what, \"table\", count(*) AS n FROM _dlq WHERE {where} GROUP BY ALL"
        f" UNION ALL SELECT 'failed', \"table\", count(*) FROM _failed WHERE {where} GROUP BY ALL",
        params * 2,
    )
    counts: dict[str, dict[str, int]] = {}
    for row in rows:
        counts.setdefault(str(row["table"]), {})[row["what"]] = int(row["n"])
    return counts


def incidents(
    snapshot: Snapshot,
    resolve_after: float,
    now: datetime | None = None,
    before: datetime | None = None,
) -> list[dict[str, Any]]:
    """Alert events grouped into incidents as ``notify`` groups them: events of one
    (table, stage, kind, rule, fingerprint); a silence longer than ``resolve_after``
    closes one and the next event opens a new one. Open: its last event is younger than
    ``resolve_after`` at ``now``. Newest first. With ``before``, only the events seen
    before it count (the incidents as they stood then: pass ``now=before`` too)."""
    where, params = period_clause("coalesce(first_seen, kafka_timestamp)", None, before)
    rows = snapshot.query(
        f"""
        WITH events AS (
            SELECT "table", stage, kind, rule, fingerprint, owner, message, run_id, kept_in,
                   coalesce("count", 0) AS n,
                   coalesce(first_seen, kafka_timestamp) AS first_seen,
                   coalesce(last_seen, kafka_timestamp) AS last_seen
            FROM _alerts WHERE {where}
        ), marked AS (
            SELECT *, CASE WHEN epoch(first_seen) - epoch(lag(last_seen) OVER w) <= ?
                           THEN 0 ELSE 1 END AS opens
            FROM events
            WINDOW w AS (PARTITION BY "table", stage, kind, rule, fingerprint ORDER BY last_seen)
        ), numbered AS (
            SELECT *, sum(opens) OVER (PARTITION BY "table", stage, kind, rule, fingerprint
                                       ORDER BY last_seen ROWS UNBOUNDED PRECEDING) AS seq
            FROM marked
        )
        SELECT "table", stage, kind, rule, fingerprint, CAST(seq AS BIGINT) AS seq,
               min(first_seen) AS first_seen, max(last_seen) AS last_seen,
               count(*) AS events, CAST(sum(n) AS BIGINT) AS "count",
               arg_max(message, last_seen) AS message, arg_max(owner, last_seen) AS owner,
               arg_max(run_id, last_seen) AS last_run, arg_max(kept_in, last_seen) AS kept_in
        FROM numbered GROUP BY ALL ORDER BY last_seen DESC
        """,
        [*params, resolve_after],
    )
    at = _now(now)
    for row in rows:
        last = datetime.fromisoformat(row["last_seen"]) if row["last_seen"] else at
        open_ = (at - last).total_seconds() < resolve_after
        row["status"] = "open" if open_ else "resolved"
        row["resolved_at"] = (
            None if open_ else (last + timedelta(seconds=resolve_after)).isoformat()
        )
        row["id"] = f"{row['table']}:{row['stage']}:{row['kind']}:{row['fingerprint']}:{row['seq']}"
    return rows


def freshness(
    snapshot: Snapshot, now: datetime | None = None, before: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Per curated table, the newest ``_dp_extracted_at`` (before ``before``, if given)
    and its age in seconds at ``now``."""
    at = _now(now)
    where, params = period_clause("_dp_extracted_at", None, before)
    found: dict[str, dict[str, Any]] = {}
    for table in snapshot.curated:
        row = snapshot.query(
            f"SELECT max(_dp_extracted_at) AS newest FROM {_ident(table)} WHERE {where}", params
        )[0]
        newest = row["newest"]
        age = (at - datetime.fromisoformat(newest)).total_seconds() if newest else None
        found[table] = {"newest": newest, "age_seconds": None if age is None else round(age, 1)}
    return found


def overview(
    snapshot: Snapshot, config: PipelineConfig, now: datetime | None = None
) -> dict[str, Any]:
    """The overview page: per table the row accounting, freshness, open incidents and
    the quarantined share; last runs; the ledger's state."""
    at = _now(now)
    rejected = rejected_counts(snapshot)
    fresh = freshness(snapshot, at)
    open_incidents = [
        i
        for i in incidents(snapshot, config.notify.grouping.resolve_after, at)
        if i["status"] == "open"
    ]
    tables = {}
    for table, frame in snapshot.curated.items():
        ledger = (snapshot.ledger or {}).get(table)
        invalid = rejected.get(table, {}).get("invalid", 0)
        failed = rejected.get(table, {}).get("failed", 0)
        entry: dict[str, Any] = {
            "table": table,
            "curated_rows": frame.height,
            "in_dlq": invalid,
            "in_failed": failed,
            "open_incidents": sum(1 for i in open_incidents if i["table"] == table),
            **fresh[table],
        }
        if ledger is not None:
            entry |= {
                "extracted": ledger["read"],
                "valid": ledger["valid"],
                "invalid": ledger["invalid"],
                "failed": ledger["failed"],
                "filtered": ledger["filtered_total"],
                "loaded": ledger["loaded"],
                "in_flight": ledger["in_flight_total"],
                "gap": ledger["gap"],
                "lag": ledger.get("lag", {}),
                "in_dlq": ledger["in_dlq"],
                "in_failed": ledger["in_failed"],
            }
            read = ledger["read"]
        else:
            entry |= dict.fromkeys(LEDGER_FIGURES)
            entry["lag"] = {}
            read = invalid + failed + frame.height
        quarantined = entry["in_dlq"] + entry["in_failed"]
        entry["quarantined_share"] = round(quarantined / read, 4) if read else 0.0
        tables[table] = entry
    runs = snapshot.query(
        "SELECT stage, arg_max(run_id, ended_at) AS run_id, max(ended_at) AS ended_at,"
        " arg_max(status, ended_at) AS status, arg_max(rows, ended_at) AS rows,"
        " arg_max(seconds, ended_at) AS seconds, arg_max(error, ended_at) AS error,"
        " count(*) AS runs FROM _runs GROUP BY stage ORDER BY stage"
    )
    gaps = [t["gap"] for t in tables.values() if t["gap"] is not None]
    return {
        "pipeline": config.name,
        "loaded_at": snapshot.loaded_at.isoformat(),
        "now": at.isoformat(),
        "ledger_ok": None if snapshot.ledger is None else not any(gaps),
        "ledger_error": snapshot.ledger_error,
        "read_errors": snapshot.errors,
        "tables": tables,
        "last_runs": {r["stage"]: r for r in runs},
        "open_incidents": len(open_incidents),
    }


def throughput(snapshot: Snapshot, limit: int = 500) -> list[dict[str, Any]]:
    """The newest ``limit`` stage runs from ``_runs`` (oldest first)."""
    return snapshot.query(
        "SELECT * FROM (SELECT ended_at, started_at, stage, run_id, rows, rows_per_second,"
        " seconds, status FROM _runs ORDER BY ended_at DESC LIMIT ?) ORDER BY ended_at",
        [limit],
    )


_REJECTS = """
    (SELECT 'dlq' AS store, * FROM _dlq UNION ALL BY NAME SELECT 'failed' AS store, * FROM _failed)
"""


def time_bucket(snapshot: Snapshot) -> str:
    """A bucket width that gives a few dozen bars over the rejected records' time span."""
    row = snapshot.query(
        f"SELECT epoch(max(kafka_timestamp)) - epoch(min(kafka_timestamp)) AS span FROM {_REJECTS}"
    )[0]
    span = row["span"] or 0
    for width, seconds in (("1 minute", 3600 * 2), ("1 hour", 86400 * 3), ("1 day", 86400 * 90)):
        if span <= seconds:
            return width
    return "7 days"


def rejects_over_time(snapshot: Snapshot, bucket: str | None = None) -> list[dict[str, Any]]:
    """Rejected records per time bucket, table and store (``dlq``: invalid, ``failed``)."""
    width = bucket or time_bucket(snapshot)
    if width not in ("1 minute", "1 hour", "1 day", "7 days"):
        raise DashboardError(f"unknown bucket `{width}` (1 minute, 1 hour, 1 day, 7 days)")
    return snapshot.query(
        f"SELECT time_bucket(INTERVAL '{width}', kafka_timestamp) AS time, \"table\", store,"
        f' count(*) AS records FROM {_REJECTS} GROUP BY ALL ORDER BY time, "table", store'
    )


def rejects_by_rule(
    snapshot: Snapshot, since: datetime | None = None, until: datetime | None = None
) -> list[dict[str, Any]]:
    """Rejected records per rule (one record counts under each rule it broke), table and
    store; the rules that fire most first. With ``since``/``until``, the records kept in
    ``[since, until)`` (by ``kafka_timestamp``)."""
    where, params = period_clause("kafka_timestamp", since, until)
    return snapshot.query(
        f"""SELECT trim(rule) AS rule, "table", store, count(*) AS records
        FROM (SELECT unnest(string_split(coalesce(rules, 'unknown'), ',')) AS rule, "table", store
              FROM {_REJECTS} WHERE {where})
        GROUP BY ALL ORDER BY records DESC, rule, "table", store""",
        params,
    )


def extracted_counts(
    snapshot: Snapshot, since: datetime | None = None, until: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Per table, the rows the extraction ``read`` (and found ``valid`` and ``invalid``),
    added up over the extract runs of ``_runs`` that ended in ``[since, until)`` (each
    run's own counts: a run that failed half way counts what it committed)."""
    where, params = period_clause("ended_at", since, until)
    rows = snapshot.query(
        f"""SELECT t AS "table",
               CAST(sum(CAST(json_extract_string(counts, '$."' || t || '".read') AS BIGINT))
                    AS BIGINT) AS "read",
               CAST(sum(CAST(json_extract_string(counts, '$."' || t || '".valid') AS BIGINT))
                    AS BIGINT) AS valid,
               CAST(sum(CAST(json_extract_string(counts, '$."' || t || '".invalid') AS BIGINT))
                    AS BIGINT) AS invalid,
               count(DISTINCT run_id) AS runs
        FROM (SELECT counts, run_id, unnest(json_keys(counts)) AS t FROM _runs
              WHERE stage = 'extract' AND counts IS NOT NULL AND json_valid(counts) AND {where})
        GROUP BY ALL ORDER BY 1""",
        params,
    )
    return {
        str(r["table"]): {k: int(r[k] or 0) for k in ("read", "valid", "invalid", "runs")}
        for r in rows
    }


def curated_counts(
    snapshot: Snapshot, since: datetime | None = None, until: datetime | None = None
) -> dict[str, int]:
    """Per curated table, its rows whose ``_dp_extracted_at`` is in ``[since, until)`` (in
    a merge-mode table a row counts once, at the extraction of its newest version)."""
    where, params = period_clause("_dp_extracted_at", since, until)
    found = {}
    for table in snapshot.curated:
        row = snapshot.query(f"SELECT count(*) AS n FROM {_ident(table)} WHERE {where}", params)
        found[table] = int(row[0]["n"])
    return found


_REASON_SHAPE = '[{"rule": "VARCHAR", "column": "VARCHAR"}]'


def rejects_by_column(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Broken rules per column (from each record's reasons), table and store."""
    return snapshot.query(
        f"""SELECT coalesce(r.column, '(row)') AS "column", "table", store, count(*) AS records
        FROM (SELECT unnest(CAST(try(from_json(reasons, '{_REASON_SHAPE}'))
                              AS STRUCT("rule" VARCHAR, "column" VARCHAR)[])) AS r, "table", store
              FROM {_REJECTS} WHERE reasons IS NOT NULL)
        GROUP BY ALL ORDER BY records DESC, "column" """
    )


def rejected_records(
    snapshot: Snapshot,
    *,
    table: str | None = None,
    store: str | None = None,
    rule: str | None = None,
    search: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Recent rejected records, newest first, filtered; with their reasons and lineage."""
    where, params = [], []
    if table:
        where.append('"table" = ?')
        params.append(table)
    if store:
        where.append("store = ?")
        params.append(store)
    if rule:
        where.append(
            "list_contains(list_transform(string_split(rules, ','), lambda x: trim(x)), ?)"
        )
        params.append(rule)
    if search:
        where.append("(key ILIKE ? OR message ILIKE ? OR value ILIKE ?)")
        params += [f"%{search}%"] * 3
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    total = snapshot.query(f"SELECT count(*) AS n FROM {_REJECTS} {clause}", params)[0]["n"]
    columns = ", ".join(f'"{c}"' for c in (*REJECT_COLUMNS, "value"))
    rows = snapshot.query(
        f"SELECT {columns} FROM {_REJECTS} {clause}"
        " ORDER BY kafka_timestamp DESC, _dp_offset DESC LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    for row in rows:
        row["reasons"] = _json_or_text(row.get("reasons"))
    return {"total": int(total), "limit": limit, "offset": offset, "records": rows}


def _json_or_text(text: str | None) -> Any:
    import orjson

    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def quality(snapshot: Snapshot) -> dict[str, Any]:
    """The data-quality page: rejected records over time, by rule and by column."""
    return {
        "bucket": time_bucket(snapshot),
        "over_time": rejects_over_time(snapshot),
        "by_rule": rejects_by_rule(snapshot),
        "by_column": rejects_by_column(snapshot),
        "totals": rejected_counts(snapshot),
    }


def profile(snapshot: Snapshot, table: str) -> dict[str, Any]:
    """An automatic profile of a curated table: per column its type, nulls and distinct
    values (exact), range and mean; a histogram of each numeric column and the top values of the
    others (the first :data:`MAX_PROFILE_COLUMNS` columns that are not lineage)."""
    if table not in snapshot.curated:
        raise DashboardError(f"no curated table `{table}`")
    frame = snapshot.curated[table]
    if frame.width == 0:
        return {"table": table, "rows": 0, "columns": [], "distributions": {}}
    summary = snapshot.query(f"SUMMARIZE {_ident(table)}")
    names = [row["column_name"] for row in summary]
    exact = snapshot.query(
        "SELECT "
        + ", ".join(
            f"count(*) - count({_ident(n)}) AS {_ident('n' + str(i))},"
            f" count(DISTINCT {_ident(n)}) AS {_ident('d' + str(i))}"
            for i, n in enumerate(names)
        )
        + f" FROM {_ident(table)}"
    )[0]
    rows = frame.height
    columns = []
    for i, row in enumerate(summary):
        nulls = int(exact[f"n{i}"])
        columns.append(
            {
                "column": row["column_name"],
                "type": row["column_type"],
                "nulls": nulls,
                "null_share": round(nulls / rows, 4) if rows else 0.0,
                "distinct": int(exact[f"d{i}"]),
                "min": row.get("min"),
                "max": row.get("max"),
                "mean": row.get("avg"),
                "lineage": row["column_name"].startswith("_dp_"),
            }
        )
    distributions = {}
    shown = [c for c in columns if not c["lineage"]][:MAX_PROFILE_COLUMNS]
    for column in shown:
        distributions[column["column"]] = distribution(snapshot, table, column["column"])
    return {
        "table": table,
        "rows": frame.height,
        "columns": columns,
        "distributions": distributions,
    }


def distribution(snapshot: Snapshot, table: str, column: str, bins: int = 20) -> dict[str, Any]:
    """A numeric or time column as a histogram of ``bins`` bins, another as its 10 most
    frequent values (``kind`` says which)."""
    dtype = snapshot.curated[table].schema[column]
    ident, source = _ident(column), _ident(table)
    if dtype.is_numeric() and dtype != pl.Boolean:
        rows = snapshot.query(
            f"""WITH v AS (SELECT CAST({ident} AS DOUBLE) AS v FROM {source}
                           WHERE {ident} IS NOT NULL),
                   b AS (SELECT min(v) AS lo, max(v) AS hi FROM v)
            SELECT lo + (hi - lo) / {bins} * k AS start, lo + (hi - lo) / {bins} * (k + 1) AS stop,
                   count(*) AS rows
            FROM (SELECT least(CAST(floor((v - lo) / nullif(hi - lo, 0) * {bins}) AS INT),
                               {bins - 1}) AS k, lo, hi FROM v, b)
            GROUP BY ALL ORDER BY start"""
        )
        return {"kind": "histogram", "bins": rows}
    if dtype.is_temporal():
        rows = snapshot.query(
            f"""SELECT time_bucket(INTERVAL '1 day', CAST({ident} AS TIMESTAMP)) AS start,
                   count(*) AS rows
            FROM {source} WHERE {ident} IS NOT NULL GROUP BY ALL ORDER BY start"""
        )
        return {"kind": "timeline", "bins": rows}
    rows = snapshot.query(
        f"""SELECT CAST({ident} AS VARCHAR) AS value, count(*) AS rows FROM {source}
        GROUP BY ALL ORDER BY rows DESC, value LIMIT 10"""
    )
    return {"kind": "top", "values": rows}


def chart_tables(chart: ChartConfig, tables: list[str]) -> list[str]:
    """The curated tables a chart's SQL reads (parsed: a column or alias of the same name
    is not a table). SQL that does not parse names none; its chart shows the error."""
    import sqlglot
    from sqlglot import exp

    try:
        read = {t.name for t in sqlglot.parse_one(chart.sql, read="duckdb").find_all(exp.Table)}
    except sqlglot.errors.ParseError:
        return []
    return [t for t in tables if t in read]


def chart_rows(snapshot: Snapshot, chart: ChartConfig) -> list[dict[str, Any]]:
    """The rows of a declared chart's query (at most ``chart.limit``)."""
    try:
        rows = snapshot.query(f"SELECT * FROM ({chart.sql}) LIMIT {int(chart.limit)}")
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise DashboardError(f"chart `{chart.name}`: its SQL failed: {first}") from None
    if rows:
        for key in ("x", "y", "color"):
            column = getattr(chart, key)
            if column is not None and column not in rows[0]:
                raise DashboardError(
                    f"chart `{chart.name}`: `{key}: {column}` is not a column of its query"
                    f" (columns: {', '.join(rows[0])})"
                )
    return rows


def warnings_for(tables: list[str], overview_data: dict[str, Any], threshold: float) -> list[str]:
    """Warnings to show beside a chart over ``tables``: open incidents, and a quarantined
    share above ``threshold``."""
    found = []
    for table in tables:
        entry = overview_data["tables"].get(table)
        if entry is None:
            continue
        if entry["open_incidents"]:
            n = entry["open_incidents"]
            found.append(f"`{table}` has {n} open incident{'s' if n > 1 else ''}")
        if entry["quarantined_share"] > threshold:
            found.append(
                f"{entry['quarantined_share']:.1%} of `{table}`'s rows are quarantined"
                f" (dead-letter or failed; above {threshold:.0%})"
            )
    return found


__all__ = [
    "DashboardData",
    "DashboardError",
    "Snapshot",
    "chart_rows",
    "incidents",
    "overview",
    "profile",
    "quality",
    "read_snapshot",
    "rejected_records",
    "throughput",
]
