"""What people read: the summary line, titles, and the Slack, webhook and e-mail payloads."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from dataplump.notify.events import AlertEvent, error_alert
from dataplump.notify.incidents import GroupingPolicy, Incidents, Notification
from dataplump.notify.render import (
    details,
    email_message,
    slack_payload,
    summary,
    title,
    webhook_payload,
)
from tests.unit.notify.helpers import EPOCH0, T0, FakeClock, crash, invalid

RULES = {"not_null(customer_id)": 40, "min(amount)": 2}


def firing(*events: AlertEvent, clock: FakeClock | None = None) -> Notification:
    clock = clock or FakeClock(EPOCH0 + 300)
    incidents = Incidents(GroupingPolicy())
    for event in events:
        incidents.observe(event, clock())
    [notice] = incidents.due(clock(), flush=True)
    return notice


def lifecycle() -> tuple[Notification, Notification, Notification, Notification]:
    """firing, update (new rule), repeat and resolved notices of one incident."""
    clock = FakeClock(EPOCH0 + 300)
    incidents = Incidents(GroupingPolicy())
    incidents.observe(invalid(42, RULES, keys=(17, 23, 99), span=300), clock())
    [first] = incidents.due(clock(), flush=True)
    incidents.observe(invalid(1000, {"not_null(customer_id)": 998, "max(qty)": 2}), clock.tick(60))
    [update] = incidents.due(clock.tick(300))
    incidents.observe(invalid(8), clock.tick(3000))
    incidents.observe(invalid(8), clock.tick(3000))
    incidents.observe(invalid(8), clock.tick(3000))
    incidents.observe(invalid(8), clock.tick(3000))
    incidents.observe(invalid(8), clock.tick(3000))
    [repeat] = incidents.due(clock())
    [resolved] = incidents.due(clock.tick(3600))
    return first, update, repeat, resolved


def test_the_example_message() -> None:
    notice = firing(invalid(42, RULES, keys=(17, 23, 99), span=300))
    assert summary(notice) == (
        "shop.orders: 42 invalid records in the last 5 min (not_null(customer_id): 40,"
        " min(amount): 2) — contract v3 — sample keys 17, 23, 99 — records kept in"
        " shop.orders.dlq; fix the source or the contract, then replay"
    )
    assert title(notice) == "[FIRING] shop.orders: 42 invalid records"


def test_update_repeat_and_resolved_say_what_changed() -> None:
    first, update, repeat, resolved = lifecycle()
    assert first.kind == "firing"
    assert summary(update) == (
        "shop.orders: update — 1,042 invalid records since 10:02 UTC, +1,000 since the last"
        " notice (not_null(customer_id): 1,038, new max(qty): 2, min(amount): 2) — contract v3"
        " — sample keys 17, 23, 99 — records kept in shop.orders.dlq; fix the source or the"
        " contract, then replay"
    )
    assert summary(repeat).startswith(
        "shop.orders: still happening — 1,082 invalid records since 10:02 UTC, +40 since the"
        " last notice (not_null(customer_id): 1,078,"
    )
    assert title(repeat) == "[STILL FIRING] shop.orders: 1,082 invalid records"
    assert summary(resolved) == (
        "shop.orders: resolved — no new invalid records since 10:07 UTC; 1,082 invalid records"
        " between 10:02 and 10:07 UTC (not_null(customer_id): 1,078, max(qty): 2,"
        " min(amount): 2) — contract v3 — sample keys 17, 23, 99 — records kept in"
        " shop.orders.dlq; replay them once the cause is fixed"
    )
    assert title(resolved) == "[RESOLVED] shop.orders: 1,082 invalid records"


def test_stage_errors_and_warnings() -> None:  # the latest message is shown
    notice = firing(crash(), crash("connection reset after 31s", at=60))
    assert summary(notice) == (
        "shop.orders: extract failed 2 times in the last minute: ConnectionError: connection"
        " reset after 31s — run run-7; see the extract log, fix the cause, then rerun extract"
    )
    assert title(notice) == "[FIRING] shop.orders: extract failed 2 times"
    warning = error_alert(
        "shop",
        stage="extract",
        table="orders",
        kind="source_warning",
        rule="clock_skew",
        error="the source clock is 40 s ahead",
        count=3,
        at=T0,
    )
    assert summary(firing(warning)) == (
        "shop.orders: 3 source warnings in the last minute (clock_skew): the source clock is"
        " 40 s ahead — check the source"
    )


def test_failed_records_name_their_stage_and_the_fix() -> None:
    event = invalid(7, {"step enrich": 7}, stage="transform", version=None, keys=())
    event = event.model_copy(update={"kind": "failed_records", "kept_in": "shop.failed"})
    assert summary(firing(event)) == (
        "shop.orders: 7 failed records at transform in the last minute (step enrich: 7) —"
        " records kept in shop.failed; fix the transform step or the output contract, then replay"
    )


def test_many_rules_end_with_and_n_more() -> None:
    rules = {f"rule_{i}": 10 - i for i in range(8)}
    text = summary(firing(invalid(20, rules)))
    assert "(rule_0: 10, rule_1: 9, rule_2: 8, rule_3: 7, rule_4: 6, ... and 3 more)" in text


def test_dates_appear_when_the_day_differs() -> None:
    notice = firing(invalid(1), clock=FakeClock(EPOCH0 + 2 * 86400))
    _, _, _, resolved = lifecycle()
    assert "2026-03-02" not in summary(resolved)
    late = Incidents(GroupingPolicy(resolve_after=0))
    late.observe(invalid(1), EPOCH0 + 2 * 86400)
    [gone] = late.due(EPOCH0 + 2 * 86400)
    assert "since 2026-03-02 10:02 UTC" in summary(gone)
    assert notice.kind == "firing"


def test_slack_payload_shape() -> None:
    event = invalid(42, {"matches(<a&b>)": 42}, keys=("<script>",))
    payload = slack_payload(firing(event))
    assert set(payload) == {"text", "blocks"}
    assert payload["text"].startswith("shop.orders: 42 invalid records")
    assert "matches(&lt;a&amp;b&gt;)" in payload["text"]
    header, section, fields, context = payload["blocks"]
    assert header["type"] == "header"
    assert header["text"] == {
        "type": "plain_text",
        "text": "[FIRING] shop.orders: 42 invalid records",
        "emoji": True,
    }
    assert section["type"] == "section"
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith(":rotating_light: shop.orders: 42 invalid")
    assert "matches(&lt;a&amp;b&gt;)" in section["text"]["text"]
    assert "<script>" not in orjson.dumps(payload["blocks"]).decode()
    assert fields["type"] == "section"
    assert 1 <= len(fields["fields"]) <= 10
    assert all(f["type"] == "mrkdwn" and len(f["text"]) <= 2000 for f in fields["fields"])
    assert {"type": "mrkdwn", "text": "*count*\n42"} in fields["fields"]
    assert context["type"] == "context"
    assert "incident" in context["elements"][0]["text"]


def test_slack_limits_hold_for_huge_text() -> None:
    event = error_alert("shop" * 20, stage="extract", table="t" * 150, error="x" * 499)
    payload = slack_payload(firing(event))
    assert len(payload["blocks"][0]["text"]["text"]) <= 150
    assert len(payload["blocks"][1]["text"]["text"]) <= 3000
    assert len(payload["text"]) <= 3000


def test_webhook_payload() -> None:
    notice = firing(invalid(42, RULES, keys=(17, 23, 99), span=300))
    payload = webhook_payload(notice)
    assert orjson.loads(orjson.dumps(payload)) == payload
    assert payload["schema"] == "dataplump.notification/v1"
    assert payload["id"] == notice.id
    assert (payload["notification"], payload["status"]) == ("firing", "firing")
    assert payload["summary"] == summary(notice)
    incident = payload["incident"]
    assert incident["counts_by_rule"] == RULES
    assert incident["sample_keys"] == ["17", "23", "99"]
    assert incident["first_seen"] == "2026-03-02T10:02:00Z"
    assert incident["last_seen"] == "2026-03-02T10:07:00Z"
    assert incident["resolved_at"] is None
    *_, resolved = lifecycle()
    assert webhook_payload(resolved)["status"] == "resolved"
    assert webhook_payload(resolved)["incident"]["resolved_at"] is not None


def test_email_message() -> None:
    notice = firing(invalid(42, RULES, keys=(17, 23, 99), span=300))
    message = email_message(notice, sender="dp@example.com", to=("a@example.com", "b@example.com"))
    assert message["Subject"] == "[FIRING] shop.orders: 42 invalid records"
    assert message["To"] == "a@example.com, b@example.com"
    assert message["Message-ID"] == f"<{notice.id}@dataplump>"
    assert message["References"] == f"<{notice.incident.id}@dataplump>"
    body = message.get_content()
    assert body.startswith(summary(notice) + "\n\n")
    assert "sample keys: 17, 23, 99" in body
    assert "kept in:     shop.orders.dlq" in body


@pytest.mark.parametrize("notice", lifecycle(), ids=lambda n: n.kind)
def test_every_notice_renders_everywhere(notice: Notification) -> None:
    assert summary(notice)
    assert details(notice)
    orjson.dumps(slack_payload(notice))
    orjson.dumps(webhook_payload(notice))
    assert email_message(notice, sender="a@b", to=["c@d"])["Subject"] == title(notice)


def test_docs_show_the_messages_as_rendered() -> None:
    docs = (Path(__file__).parents[3] / "docs" / "notify.md").read_text(encoding="utf-8")
    first, update, repeat, resolved = lifecycle()
    for notice in (first, update, repeat, resolved):
        assert summary(notice) + "\n" in docs
    assert summary(firing(crash(), crash("connection reset after 31s", at=60))) in docs
