"""``dataplump notify`` end to end: a real broker, real HTTP and SMTP receivers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dataplump.bus.kafka import Producer
from dataplump.notify import (
    AlertEvent,
    GroupingPolicy,
    HttpWebhookChannel,
    LoggingChannel,
    Notifier,
    RetryPolicy,
    SmtpChannel,
    alert_topic,
    load_state,
    produce_alert,
)
from dataplump.notify.events import error_alert
from tests.integration.notify.servers import Mailbox, Request, WebhookServer
from tests.unit.notify.helpers import invalid

pytestmark = [pytest.mark.integration, pytest.mark.kafka, pytest.mark.slow]

TOKEN = "hook-T0KEN-kept-secret"
SMTP_PASSWORD = "s3cret-pw"


@pytest.fixture
def pipeline() -> str:
    return f"n{uuid.uuid4().hex[:10]}"


def retarget(event: AlertEvent, pipeline: str) -> AlertEvent:
    return event.model_copy(update={"pipeline": pipeline})


def produce(
    bootstrap: str, pipeline: str, events: Sequence[AlertEvent], *, garbage: bool = False
) -> None:
    """What a stage does: queue the batch's alert events in its transaction and commit."""
    producer = Producer(bootstrap, transactional_id=f"stage-{uuid.uuid4().hex}")
    with producer.transaction():
        for event in events:
            produce_alert(producer, retarget(event, pipeline))
        if garbage:
            producer.produce(alert_topic(pipeline), b"not json at all")


def write_config(
    folder: Path, pipeline: str, webhook: WebhookServer, mailbox: Mailbox | None, slack: bool = True
) -> Path:
    channels: list[dict[str, Any]] = [
        {"kind": "log"},
        {"kind": "webhook", "url": webhook.url(f"/hook?token={TOKEN}")},
    ]
    if slack:
        channels.append({"kind": "slack", "webhook_url": webhook.url(f"/services/{TOKEN}")})
    if mailbox is not None:
        channels.append(
            {
                "kind": "email",
                "smtp_host": "127.0.0.1",
                "smtp_port": mailbox.port,
                "username": "alerts",
                "password": SMTP_PASSWORD,
                "from": "dataplump@example.com",
                "to": ["data@example.com"],
            }
        )
    config = {
        "pipeline": {"name": pipeline},
        "source": {"url": "sqlite:///demo.db"},
        "tables": {"orders": {"primary_key": "id"}},
        "notify": {"channels": channels},
    }
    path = folder / "dataplump.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


def cli_env(certificate: tuple[Path, Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAPLUMP")}
    return {**env, "NO_COLOR": "1", "SSL_CERT_FILE": str(certificate[0])}


def notify_cli(*args: str, env: dict[str, str]) -> list[str]:
    return [sys.executable, "-m", "dataplump.cli.notify_cmd", *args]


def run_once(config: Path, bootstrap: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        notify_cli("-c", str(config), "--bootstrap", bootstrap, "--once", env=env),
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )


def by_path(requests: list[Request], prefix: str) -> list[Any]:
    return [r.json() for r in requests if r.path.startswith(prefix)]


def test_events_become_one_grouped_notification_per_channel(
    kafka_bootstrap: str,
    pipeline: str,
    tmp_path: Path,
    webhook: WebhookServer,
    mailbox: Mailbox,
    certificate: tuple[Path, Path],
) -> None:
    batches = [
        invalid(20, {"not_null(customer_id)": 19, "min(amount)": 1}, keys=(17, 23)),
        invalid(20, {"not_null(customer_id)": 20}, keys=(99,), at=60),
        invalid(2, {"not_null(customer_id)": 1, "min(amount)": 1}, keys=(5,), at=300),
    ]
    crash = error_alert(
        "x", stage="extract", table="customers", error=TimeoutError("read timed out")
    )
    produce(kafka_bootstrap, pipeline, [*batches, crash], garbage=True)
    config = write_config(tmp_path, pipeline, webhook, mailbox)
    env = cli_env(certificate)

    first = run_once(config, kafka_bootstrap, env)
    assert first.returncode == 0, first.stderr
    assert (
        "notify: 4 events, 1 malformed skipped, 3 notifications, 3 open incidents" in first.stdout
    )
    assert "delivered: log 3, webhook 3, slack 3, email 3" in first.stdout

    hooks = by_path(webhook.accepted(), "/hook")
    assert len(hooks) == 3  # one per incident: the 3 batches are one
    orders = next(h for h in hooks if h["incident"]["table"] == "orders")
    assert orders["notification"] == "firing"
    assert orders["incident"]["count"] == 42
    assert orders["incident"]["counts_by_rule"] == {"not_null(customer_id)": 40, "min(amount)": 2}
    assert orders["incident"]["sample_keys"] == ["17", "23", "99", "5"]
    assert orders["summary"].startswith(
        f"{pipeline}.orders: 42 invalid records in the last 5 min (not_null(customer_id): 40,"
        " min(amount): 2) — contract v3 — sample keys 17, 23, 99, 5"
    )
    assert {h["incident"]["kind"] for h in hooks} == {"invalid_records", "stage_error"}
    assert any(h["incident"]["rule"] == "malformed_alert_event" for h in hooks)

    slacks = by_path(webhook.accepted(), "/services")
    assert len(slacks) == 3
    assert all(set(s) == {"text", "blocks"} for s in slacks)
    assert sorted(s["text"] for s in slacks) == sorted(h["summary"] for h in hooks)

    mails = mailbox.wait_for(3)
    assert all(m.tls and m.login == "alerts" for m in mails)
    subjects = sorted(str(m.message["Subject"]) for m in mails)
    assert f"[FIRING] {pipeline}.orders: 42 invalid records" in subjects

    assert f"FIRING {orders['summary']}" in first.stderr  # the log channel
    for output in (first.stdout, first.stderr):
        assert TOKEN not in output
        assert SMTP_PASSWORD not in output

    again = run_once(config, kafka_bootstrap, env)
    assert again.returncode == 0, again.stderr
    assert "notify: 0 events, 0 notifications, 3 open incidents" in again.stdout
    assert "FIRING" not in again.stderr
    assert len(webhook.accepted()) == 6
    assert len(mailbox.mails) == 3

    produce(kafka_bootstrap, pipeline, [invalid(5, {"not_null(customer_id)": 5})])
    more = run_once(config, kafka_bootstrap, env)
    assert more.returncode == 0, more.stderr
    assert "notify: 1 events, 0 notifications" in more.stdout  # more of the same: no page
    assert len(webhook.accepted()) == 6
    state = load_state(kafka_bootstrap, pipeline)
    [open_orders] = [i for i in state.incidents.open if i.table == "orders"]
    assert open_orders.count == 47


def test_dead_webhook_is_retried_while_email_is_delivered(
    kafka_bootstrap: str,
    pipeline: str,
    webhook: WebhookServer,
    mailbox: Mailbox,
    client_tls: Any,
) -> None:
    down_for = 3.0
    first_try: list[float] = []

    def flaky(request: Request) -> tuple[int, bytes, dict[str, str]]:
        first_try.append(first_try[0] if first_try else request.at)
        return (500, b"down", {}) if request.at < first_try[0] + down_for else (200, b"ok", {})

    webhook.respond = flaky
    produce(kafka_bootstrap, pipeline, [invalid(42, keys=(17, 23, 99))])
    notifier = Notifier(
        pipeline,
        kafka_bootstrap,
        [
            LoggingChannel(),
            HttpWebhookChannel(webhook.url(f"/hook/{TOKEN}")),
            SmtpChannel(
                "127.0.0.1",
                mailbox.port,
                sender="dataplump@example.com",
                to=["data@example.com"],
                username="alerts",
                password=SMTP_PASSWORD,
                ssl_context=client_tls,
            ),
        ],
        retry=RetryPolicy(initial=0.2, maximum=1.0, give_up_after=60),
    )
    report = notifier.run(once=True)
    notifier.close()

    assert report.complete, report
    assert report.delivered == {"log": 1, "webhook": 1, "email": 1}
    failures = [r for r in webhook.requests if r.status == 500]
    [delivered] = webhook.accepted()
    assert len(failures) >= 3  # retried with backoff
    assert delivered.json()["incident"]["count"] == 42
    [mail] = mailbox.mails
    assert mail.at < failures[0].at + down_for  # e-mail did not wait for the webhook
    assert delivered.at >= failures[0].at + down_for
    state = load_state(kafka_bootstrap, pipeline)
    assert all(not channel.pending for channel in state.channels.values())


def test_killed_notify_keeps_undelivered_alerts_and_does_not_page_twice(
    kafka_bootstrap: str,
    pipeline: str,
    tmp_path: Path,
    webhook: WebhookServer,
    mailbox: Mailbox,
    certificate: tuple[Path, Path],
) -> None:
    dead = True
    webhook.respond = lambda _r: (503, b"maintenance", {}) if dead else (200, b"ok", {})
    config = write_config(tmp_path, pipeline, webhook, mailbox, slack=False)
    env = cli_env(certificate)
    log = (tmp_path / "notify.log").open("w")
    running = subprocess.Popen(
        notify_cli(
            "-c", str(config), "--bootstrap", kafka_bootstrap, "--group-wait", "0.5s", env=env
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        produce(kafka_bootstrap, pipeline, [invalid(42, keys=(17, 23, 99))])
        [mail] = mailbox.wait_for(1, timeout=90)
        # Wait until the delivery to e-mail (and the log) is in the committed state.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = load_state(kafka_bootstrap, pipeline)
            channels = state.channels
            if channels and not channels["email"].pending and not channels["log"].pending:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the e-mail delivery never reached the committed state")
        assert len(channels["webhook"].pending) == 1
        assert [r.status for r in webhook.requests][:1] == [503]
    finally:
        running.kill()  # kill -9: no chance to save anything
        running.wait(timeout=30)
        log.close()
    output = (tmp_path / "notify.log").read_text()
    assert f"FIRING {pipeline}.orders: 42 invalid records" in output
    assert TOKEN not in output
    assert SMTP_PASSWORD not in output

    dead = False
    restarted = run_once(config, kafka_bootstrap, env)
    assert restarted.returncode == 0, restarted.stderr
    assert "delivered: log 0, webhook 1, email 0" in restarted.stdout
    [hook] = webhook.accepted()
    assert hook.json()["notification"] == "firing"
    assert hook.json()["incident"]["count"] == 42
    assert len(mailbox.mails) == 1  # not paged twice
    assert mail.message["Subject"] == f"[FIRING] {pipeline}.orders: 42 invalid records"
    assert "FIRING" not in restarted.stderr
    final = load_state(kafka_bootstrap, pipeline)
    assert all(not channel.pending for channel in final.channels.values())
    assert final.channels["webhook"].paged == final.channels["email"].paged != []


@pytest.fixture
def running_notifier(
    kafka_bootstrap: str, pipeline: str, webhook: WebhookServer
) -> Iterator[threading.Event]:
    """``dataplump notify`` forever, in a thread, with short timers; set the event to stop it."""
    notifier = Notifier(
        pipeline,
        kafka_bootstrap,
        [HttpWebhookChannel(webhook.url())],
        policy=GroupingPolicy(
            group_wait=0.5, group_interval=1, repeat_interval=3600, resolve_after=4
        ),
    )
    stop = threading.Event()
    outcome: list[object] = []
    thread = threading.Thread(target=lambda: outcome.append(notifier.run(stop=stop)))
    thread.start()
    yield stop
    stop.set()
    thread.join(timeout=60)
    notifier.close()
    assert not thread.is_alive()
    assert outcome, "the notifier died"


def test_forever_mode_fires_updates_and_resolves(
    kafka_bootstrap: str, pipeline: str, webhook: WebhookServer, running_notifier: threading.Event
) -> None:
    produce(kafka_bootstrap, pipeline, [invalid(2, {"not_null(customer_id)": 2})])
    [firing] = webhook.wait_for(1)
    produce(kafka_bootstrap, pipeline, [invalid(3, {"not_null(customer_id)": 3})])
    produce(kafka_bootstrap, pipeline, [invalid(1, {"min(amount)": 1})])
    webhook.wait_for(2)
    webhook.wait_for(3, timeout=30)  # 4 s quiet: resolved
    time.sleep(1.5)
    kinds = [r.json()["notification"] for r in webhook.accepted()]
    assert kinds == ["firing", "update", "resolved"]
    update = webhook.accepted()[1].json()
    assert update["new_rules"] == ["min(amount)"]
    assert update["incident"]["count"] == 6
    assert firing.json()["incident"]["count"] == 2
    assert webhook.accepted()[2].json()["incident"]["id"] == firing.json()["incident"]["id"]


def test_alerts_go_to_the_channels_of_their_owners(
    kafka_bootstrap: str,
    pipeline: str,
    tmp_path: Path,
    webhook: WebhookServer,
    certificate: tuple[Path, Path],
) -> None:
    """A channel with `owners` gets the incidents of those owners (the table's, or a broken
    rule's); a channel without gets every incident."""
    orders = invalid(3, table="orders").model_copy(
        update={"owner": "@orders-team", "owners": ("@finance",)}
    )
    refunds = invalid(2, table="refunds").model_copy(update={"owner": "@logistics"})
    nobody = invalid(1, table="returns")
    produce(kafka_bootstrap, pipeline, [orders, refunds, nobody])
    config = {
        "pipeline": {"name": pipeline},
        "source": {"url": "sqlite:///demo.db"},
        "tables": {"orders": {"primary_key": "id"}},
        "notify": {
            "channels": [
                {"kind": "log"},
                {
                    "kind": "webhook",
                    "name": "finance",
                    "url": webhook.url("/finance"),
                    "owners": ["@finance"],
                },
                {
                    "kind": "webhook",
                    "name": "logistics",
                    "url": webhook.url("/logistics"),
                    "owners": ["@logistics", "@orders-team"],
                },
                {"kind": "webhook", "name": "everything", "url": webhook.url("/all")},
            ]
        },
    }
    path = tmp_path / "dataplump.yaml"
    path.write_text(json.dumps(config))

    done = run_once(path, kafka_bootstrap, cli_env(certificate))
    assert done.returncode == 0, done.stderr
    assert "delivered: log 3, finance 1, logistics 2, everything 3" in done.stdout

    def tables(prefix: str) -> set[str]:
        return {h["incident"]["table"] for h in by_path(webhook.accepted(), prefix)}

    assert tables("/finance") == {"orders"}
    assert tables("/logistics") == {"orders", "refunds"}
    assert tables("/all") == {"orders", "refunds", "returns"}
    [hook] = by_path(webhook.accepted(), "/finance")
    assert hook["incident"]["owners"] == ["@orders-team", "@finance"]
