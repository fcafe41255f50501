"""Shared builders for notifier unit tests: events at given times, and a fake clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dataplump.notify.events import AlertEvent, error_alert, records_alert

T0 = datetime(2026, 3, 2, 10, 2, tzinfo=UTC)
"""Monday 10:02 UTC: when the test events are seen."""
EPOCH0 = T0.timestamp()


@dataclass
class FakeClock:
    """A clock the test moves by hand: ``clock()`` is the time, ``clock.tick(30)`` moves it."""

    now: float = EPOCH0

    def __call__(self) -> float:
        return self.now

    def tick(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def invalid(
    count: int = 2,
    rules: Mapping[str, int] | None = None,
    *,
    table: str = "orders",
    keys: tuple[object, ...] = (17,),
    at: float = 0.0,
    span: float = 0.0,
    version: str | None = "3",
    stage: str = "extract",
) -> AlertEvent:
    """An `invalid_records` event of pipeline `shop`, seen ``at`` seconds after T0."""
    first = T0 + timedelta(seconds=at)
    return records_alert(
        "shop",
        table,
        stage=stage,
        count=count,
        counts_by_rule=rules if rules is not None else {"not_null(customer_id)": count},
        sample_keys=keys,
        contract_version=version,
        kept_in=f"shop.{table}.dlq",
        first_seen=first,
        last_seen=first + timedelta(seconds=span),
        run_id="run-7",
    )


def crash(message: str = "connection reset after 30s", at: float = 0.0) -> AlertEvent:
    return error_alert(
        "shop",
        stage="extract",
        table="orders",
        error=ConnectionError(message),
        run_id="run-7",
        at=T0 + timedelta(seconds=at),
    )
