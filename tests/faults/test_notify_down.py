"""Notification channels down for a long stretch: data keeps moving, every alert lands once.

The design's promises: "the pipeline never blocks on a notification channel" (stages only
produce alert events to Kafka; ``notify`` delivers from one thread per channel, retrying
with backoff), and "no alert is lost" (a channel's undelivered notifications are kept in
the notifier's committed state and delivered once it answers again, each once).

Here a real ``dataplump run`` (forever) moves two source tables while its webhook answers
500 and its SMTP server refuses every mail (421) for :data:`DOWN` seconds — minutes in
production, scaled to 45 s so the test stays affordable; long enough for the channels'
backoff to grow past 30 s between attempts. Meanwhile rows are added, a new incident
opens and an open one gets a new rule. The test proves that:

- the curated tables hold every valid row, loaded within seconds of its insert, *before*
  the channels come back (nothing waits on them);
- the channels were tried and refused meanwhile (the outage was real);
- once they answer, each gets exactly one page per incident — none lost, none doubled —
  and the page of the incident that changed during the outage carries the newest content
  (the update that replaced the undelivered first page, shown as the first page);
- no notification stays pending in the notifier's state, and the incidents' counts equal
  the alert events on ``<pipeline>.alerts``, which equal the dead-letter rows.

And for a scheduled ``run --once`` (notify is its last stage): with both channels dead and
three incidents to tell, the run still ends with the data complete, after one
``--retry-for`` (60 s) of trying per channel — not 60 s per incident — keeping the pages;
the next run, with the channels back, delivers each page exactly once.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from email.utils import unquote
from pathlib import Path
from typing import Any

import pytest

from dataplump.config import load_config
from dataplump.notify import load_state
from dataplump.notify.events import alert_topic, decode
from dataplump.pipeline.ledger import read_ledger
from dataplump.pipeline.stages import NOTIFY_RETRY_FOR
from tests.integration.notify.servers import Mailbox, WebhookServer
from tests.support.extraction import OrdersDb, is_valid
from tests.support.running import Run, check_exact, lake_ids, wait_until, write_run_pipeline
from tests.support.topics import read_committed

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

DOWN = 45.0
"""Seconds the channels refuse everything, counted from their first refused attempt."""
LOAD_WITHIN = 30.0
"""Seconds rows added during the outage may take to reach the curated table."""


@pytest.fixture
def webhook() -> Iterator[WebhookServer]:
    server = WebhookServer()
    yield server
    server.close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    server = Mailbox()  # plain SMTP, no login
    yield server
    server.close()


def valid(ids: range) -> set[int]:
    return {i for i in ids if is_valid(i)}


def settled(lake: Path, expected: dict[str, set[int]]) -> bool:
    return all(sorted(lake_ids(lake, t)) == sorted(ids) for t, ids in expected.items())


def channels(webhook: WebhookServer, mailbox: Mailbox) -> list[dict[str, Any]]:
    return [
        {"kind": "log"},
        {"kind": "webhook", "name": "hook", "url": webhook.url("/hook")},
        {
            "kind": "email",
            "name": "mail",
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
            "from": "dataplump@example.com",
            "to": ["data@example.com"],
        },
    ]


@pytest.mark.timeout(300)
def test_run_moves_data_while_channels_are_down_then_delivers_every_alert_once(
    tmp_path: Path, kafka_bootstrap: str, sqlite_url: str, webhook: WebhookServer, mailbox: Mailbox
) -> None:
    webhook.fail(500)
    mailbox.refusing = True
    db = OrdersDb("sqlite", sqlite_url)
    db.create("orders")
    db.create("returns")
    db.insert(range(1, 2001), "orders")
    notify = {
        "grouping": {"group_wait": "0s", "group_interval": "3s"},
        "channels": channels(webhook, mailbox),
    }
    config = write_run_pipeline(
        tmp_path,
        url=db.url,
        bootstrap=kafka_bootstrap,
        tables=("orders", "returns"),
        notify=notify,
    )
    pipeline = load_config(config).name
    lake = tmp_path / "lake"
    run = Run(config, logs=tmp_path / "logs")
    timeline: list[str] = []
    try:
        # 1. the first rows, and the channels refusing the first page
        wait_until(lambda: settled(lake, {"orders": valid(range(1, 2001))}), "2000 rows", 120, run)
        wait_until(lambda: bool(webhook.failed() and mailbox.refused), "refusals", 60, run)
        first_refusal = time.monotonic()
        # 2. more rows while the channels are down: more orders, and a new incident (returns)
        db.insert(range(2001, 4001), "orders")
        db.insert(range(20, 41), "returns")  # breaks min(amount) only (id 27)
        expected = {"orders": valid(range(1, 4001)), "returns": valid(range(20, 41))}
        took = wait_until(lambda: settled(lake, expected), "the rows of the outage", 60, run)
        timeline.append(f"2,000 orders and 21 returns loaded {took:.1f}s after their insert")
        assert took < LOAD_WITHIN, timeline
        time.sleep(4)  # past group_interval: the next news of `returns` is an update
        # 3. something new in the open incident of returns: a second rule broken (id 67)
        db.insert(range(41, 101), "returns")
        expected["returns"] = valid(range(20, 101))
        took = wait_until(lambda: settled(lake, expected), "the new returns", 60, run)
        timeline.append(f"60 returns loaded {took:.1f}s after their insert")
        assert took < LOAD_WITHIN, timeline
        # 4. the outage goes on; nothing got through
        time.sleep(max(0.0, DOWN - (time.monotonic() - first_refusal)))
        outage = time.monotonic() - first_refusal
        assert settled(lake, expected), "rows lost while the channels were down"
        assert webhook.accepted() == [], "a POST got through during the outage"
        assert mailbox.mails == [], "a mail got through during the outage"
        refused = f"webhook answered 500 {len(webhook.failed())}x, smtp 421 {mailbox.refused}x"
        timeline.append(f"down {outage:.0f}s: {refused}")
        # 5. the channels come back: every incident paged once per channel
        webhook.recover()
        mailbox.refusing = False
        back = time.monotonic()

        def delivered() -> bool:
            state = load_state(kafka_bootstrap, pipeline)
            owed = any(c.pending for c in state.channels.values())
            return not owed and len(webhook.accepted()) >= 2 and len(mailbox.mails) >= 2

        took = wait_until(delivered, "every page delivered", 120, run)
        timeline.append(f"all delivered {took:.1f}s after the channels came back")
        time.sleep(5)  # a doubled delivery would come now
        stopped = run.stop(timeout=90)
        assert stopped.returncode == 130, stopped.describe()
    finally:
        if run.running():
            run.kill_everything()
        db.close()
    del back

    # every incident, exactly once per channel
    state = load_state(kafka_bootstrap, pipeline)
    incidents = {i.table or "": i for i in state.incidents.open}
    assert set(incidents) == {"orders", "returns"}, (state.incidents, timeline)
    ids = {i.id for i in incidents.values()}
    pages: list[dict[str, Any]] = [r.json() for r in webhook.accepted()]
    assert Counter(p["id"] for p in pages) == Counter({p["id"]: 1 for p in pages}), pages
    assert sorted(p["incident"]["id"] for p in pages) == sorted(ids), (pages, timeline)
    assert {p["notification"] for p in pages} == {"firing"}, pages
    message_ids = [unquote(m.message["Message-ID"]) for m in mailbox.mails]
    assert len(message_ids) == len(set(message_ids)) == 2, (message_ids, timeline)
    assert sorted(m.split("@")[0] for m in message_ids) == sorted(p["id"] for p in pages)
    for name in ("hook", "mail"):
        assert state.channels[name].pending == [], (name, state.channels[name])
        assert sorted(state.channels[name].paged) == sorted(ids), (name, state.channels[name])
    # the page of returns is the newest notice: both rules, though the first never got out
    page = next(p for p in pages if p["incident"]["table"] == "returns")
    assert set(page["incident"]["counts_by_rule"]) == {"min(amount)", "accepted_values(status)"}
    subjects = sorted(str(m.message["Subject"]) for m in mailbox.mails)
    assert all(s.startswith("[FIRING]") for s in subjects), subjects

    # no alert lost on the way: events on the topic = incidents' counts = dead-letter rows
    events = [decode(m.value()) for m in read_committed(kafka_bootstrap, alert_topic(pipeline))]
    per_table = Counter[str]()
    for event in events:
        assert event.kind == "invalid_records", event  # no stage failed
        per_table[event.table or ""] += event.count
    ledger = read_ledger(load_config(config), kafka_bootstrap)
    for table, incident in incidents.items():
        assert incident.count == per_table[table] == ledger[table].in_dlq, (table, timeline)
        assert ledger[table].gap == 0, ledger[table]
        assert ledger[table].in_flight_total == 0, ledger[table]
    print("; ".join(timeline))


TABLES = ("orders", "returns", "refunds")


@pytest.mark.timeout(400)
def test_run_once_with_channels_down_ends_in_time_and_the_next_run_pages_once(
    tmp_path: Path, kafka_bootstrap: str, sqlite_url: str, webhook: WebhookServer, mailbox: Mailbox
) -> None:
    webhook.fail(503)
    mailbox.refusing = True
    db = OrdersDb("sqlite", sqlite_url)
    for table in TABLES:
        db.create(table)
        db.insert(range(1, 301), table)
    notify = {"grouping": {"group_wait": "0s"}, "channels": channels(webhook, mailbox)}
    config = write_run_pipeline(
        tmp_path, url=db.url, bootstrap=kafka_bootstrap, tables=TABLES, notify=notify
    )
    pipeline = load_config(config).name
    logs = tmp_path / "logs"
    try:
        down = Run(config, "--once", logs=logs, label="down").wait(300)
        assert down.returncode == 0, down.describe()
        for table in TABLES:  # the data is all there, the pages are not
            check_exact(config, kafka_bootstrap, set(range(1, 301)), table=table)
        assert webhook.accepted() == [], "a POST got through during the outage"
        assert mailbox.mails == [], "a mail got through during the outage"
        state = load_state(kafka_bootstrap, pipeline)
        assert len(state.incidents.open) == len(TABLES), state.incidents
        for name in ("hook", "mail"):
            assert len(state.channels[name].pending) == len(TABLES), state.channels[name]
            assert f"{name}: gave up for this run after 60s of failures" in down.stderr
        # one budget per channel, not one per incident (3 x 60 s before the fix)
        assert down.seconds < NOTIFY_RETRY_FOR + 90, down.describe()

        webhook.recover()
        mailbox.refusing = False
        back = Run(config, "--once", logs=logs, label="back").wait(300)
        assert back.returncode == 0, back.describe()
    finally:
        db.close()
    state = load_state(kafka_bootstrap, pipeline)
    ids = sorted(i.id for i in state.incidents.open)
    pages = [r.json() for r in webhook.accepted()]
    assert sorted(p["incident"]["id"] for p in pages) == ids, pages
    assert len({p["id"] for p in pages}) == len(pages) == len(TABLES), pages
    assert {p["notification"] for p in pages} == {"firing"}, pages
    message_ids = sorted(unquote(m.message["Message-ID"]).split("@")[0] for m in mailbox.mails)
    assert message_ids == sorted(p["id"] for p in pages), message_ids
    for name in ("hook", "mail"):
        assert state.channels[name].pending == [], state.channels[name]
    print(
        f"run --once with the channels down: {down.seconds:.0f}s (notify retried"
        f" {len(webhook.failed())} POSTs, {mailbox.refused} mails); next run delivered"
        f" {len(pages)} pages and {len(mailbox.mails)} mails in {back.seconds:.0f}s"
    )
