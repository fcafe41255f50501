"""Pure parts of `run`, `status`, `trace` and `replay`: counting over restarts, the
metrics served, the ledger's arithmetic, key and time parsing, log redaction."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import typer
from prometheus_client import generate_latest

from dataplump.cli.replay_cmd import parse_since
from dataplump.config import PipelineConfig
from dataplump.errors import ConfigError
from dataplump.logs import RedactSecrets, setup_logging
from dataplump.pipeline.ledger import SinkRows, TableLedger
from dataplump.pipeline.metrics import RunMetrics, Tally
from dataplump.pipeline.supervisor import _backoff
from dataplump.pipeline.trace import parse_key


def test_tally_carries_the_counts_of_a_restarted_stage() -> None:
    tally = Tally(["orders"])
    tally.progress(
        "transform", {"table": "orders", "processed": 90, "failed": 3, "filtered": {"a": 2, "b": 1}}
    )
    tally.restarted("transform")
    tally.progress("transform", {"table": "orders", "processed": 10, "failed": 0})
    tally.progress("load", {"table": "orders", "loaded": {"lake": 100, "dw": 60}, "consumed": 100})
    assert not tally.progress("load", {"table": "_dlq", "loaded": {"lake": 5}})
    row = tally.row("orders")
    assert (row["transformed"], row["failed"], row["filtered"]) == (100, 3, 3)
    assert row["loaded"] == 60  # in every sink: the slowest one's count


def test_metrics_expose_counts_lag_and_stage_health() -> None:
    tally = Tally(["orders"])
    tally.progress("extract", {"table": "orders", "read": 50, "valid": 45, "invalid": 5})
    states = {"extract": SimpleNamespace(status="running", restarts_total=2)}
    metrics = RunMetrics("shop", tally, lambda: states, {"orders": {"transform": 7}})
    metrics.observe("load", {"table": "orders", "batches": 1})
    metrics.observe("load", {"table": "orders", "batches": 3})
    text = generate_latest(metrics.registry).decode()
    invalid = 'outcome="invalid",pipeline="shop",stage="extract",table="orders"} 5.0'
    assert "dataplump_records_total{" + invalid in text
    assert 'dataplump_consumer_lag{pipeline="shop",stage="transform",table="orders"} 7.0' in text
    assert 'dataplump_stage_up{pipeline="shop",stage="extract"} 1.0' in text
    assert 'dataplump_stage_restarts_total{pipeline="shop",stage="extract"} 2.0' in text
    assert 'dataplump_batch_seconds_count{pipeline="shop",stage="load",table="orders"} 2.0' in text


def test_backoff_doubles_up_to_a_minute() -> None:
    assert [_backoff(n) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_ledger_gap_counts_every_bucket() -> None:
    ledger = TableLedger(
        "orders", read=100, in_dlq=10, in_failed=5, filtered={"drop_null": 3}, loaded=80,
        in_flight={"transform": 1, "load": 1},
    )  # fmt: skip
    assert ledger.gap == 0
    assert not ledger.settled
    ledger.loaded = 79
    assert ledger.gap == 1
    assert ledger.as_dict()["gap"] == 1
    ledger.loaded = 85
    assert ledger.gap == -5  # rows out that were never read: doubled somewhere


def test_the_ledger_of_one_run_is_the_difference_of_two() -> None:
    before = TableLedger(
        "orders", read=100, in_dlq=10, in_failed=5, filtered={"drop_null": 3}, loaded=80,
        in_flight={"transform": 2}, sinks={"lake": SinkRows("delta", "merge", 80)},
    )  # fmt: skip
    after = TableLedger(
        "orders", read=150, in_dlq=12, in_failed=5, filtered={"drop_null": 4, "dedupe": 1},
        loaded=128, in_flight={}, sinks={"lake": SinkRows("delta", "merge", 128)},
    )  # fmt: skip
    run = after.since(before)
    assert (run.read, run.in_dlq, run.in_failed, run.loaded) == (50, 2, 0, 48)
    assert run.filtered == {"drop_null": 1, "dedupe": 1}
    assert run.in_flight == {"transform": -2}  # what was in flight before landed in this run
    assert run.sinks["lake"].rows == 48
    assert run.gap == after.gap - before.gap == 0


@pytest.fixture
def config(tmp_path) -> PipelineConfig:  # type: ignore[no-untyped-def]
    return PipelineConfig.model_validate(
        {
            "pipeline": {"name": "shop"},
            "source": {"url": "sqlite:///x.db"},
            "tables": {"orders": {"primary_key": "id"}, "lines": {"primary_key": ["order", "n"]}},
        }
    )


def test_trace_key_forms(config: PipelineConfig) -> None:
    assert parse_key(config, "orders", ["42"]) == {"id": "42"}
    assert parse_key(config, "orders", ["id=42"]) == {"id": "42"}
    assert parse_key(config, "lines", ["n=2", "order=7"]) == {"n": "2", "order": "7"}
    with pytest.raises(ConfigError, match="--key order=VALUE --key n=VALUE"):
        parse_key(config, "lines", ["7"])
    with pytest.raises(ConfigError, match="primary key"):
        parse_key(config, "orders", ["nope=1"])


def test_since_takes_a_time_or_a_duration() -> None:
    assert parse_since("2026-11-27T10:00") == datetime(2026, 11, 27, 10, tzinfo=UTC)
    ago = datetime.now(UTC) - parse_since("2h")
    assert timedelta(hours=2, seconds=-1) <= ago < timedelta(hours=2, seconds=5)
    with pytest.raises(typer.BadParameter, match="neither a time"):
        parse_since("yesterday-ish")


def test_logs_mask_secrets_in_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging("json")
    log = logging.getLogger("dataplump.test")
    log.warning("cannot reach %s", "postgresql://app:hunter2@db/x")
    try:
        raise RuntimeError("password=hunter2 refused")
    except RuntimeError:
        log.exception("connect failed")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["level"] for line in lines] == ["WARNING", "ERROR"]
    assert "hunter2" not in json.dumps(lines)
    assert lines[0]["message"] == "cannot reach postgresql://app:***@db/x"
    assert "password=***" in lines[1]["message"]
    record = logging.LogRecord("x", logging.INFO, "", 0, "token=%s", ("abc",), None)
    RedactSecrets().filter(record)
    assert record.getMessage() == "token=***"


class _Record:
    def __init__(self, key: bytes | None, n: int) -> None:
        self._key, self.n = key, n

    def key(self) -> bytes | None:
        return self._key


def test_only_the_newest_version_of_a_key_in_a_poll_is_transformed() -> None:
    from dataplump.pipeline.transform import _newest_versions

    records = [_Record(b'{"id":1}', 0), _Record(b'{"id":2}', 1), _Record(None, 2)]
    records += [_Record(b'{"id":1}', 3), _Record(None, 4), _Record(b'{"id":1}', 5)]
    kept, dropped = _newest_versions(records)  # type: ignore[arg-type]
    assert [r.n for r in kept] == [1, 2, 4, 5]  # type: ignore[attr-defined]
    assert dropped == 2
    same, none = _newest_versions(records[:2])  # type: ignore[arg-type]
    assert (len(same), none) == (2, 0)


class _Flag:
    def __init__(self, value: bool = False) -> None:
        self.value = value

    def is_set(self) -> bool:
        return self.value


def test_a_standby_stage_reports_nothing_before_its_turn_and_nothing_if_stopped() -> None:
    from dataplump.pipeline.stages import _Gated

    class Events:
        def __init__(self) -> None:
            self.sent: list[object] = []

        def put(self, event: object) -> None:
            self.sent.append(event)

    events, go, stop = Events(), _Flag(), _Flag()
    gated = _Gated(events, "transform", go, stop)
    stop.value = True  # stopped while waiting: the event is dropped, the stage did nothing
    gated.put(("fatal", "transform", "bad config"))
    assert not gated.wait()
    assert events.sent == []

    events, go, stop = Events(), _Flag(True), _Flag()
    gated = _Gated(events, "transform", go, stop)
    gated.put(("done", "transform", ""))
    assert gated.wait()
    assert events.sent == [("done", "transform", "")]
