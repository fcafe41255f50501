"""Channels against real receivers on 127.0.0.1: status handling, TLS, login, secrets."""

from __future__ import annotations

import logging
import ssl

import pytest

from dataplump.config.models import NotifyConfig
from dataplump.notify.channels import (
    HttpWebhookChannel,
    LoggingChannel,
    SlackWebhookChannel,
    SmtpChannel,
    build_channels,
)
from dataplump.notify.errors import NotifyError, TerminalNotifyError, TransientNotifyError
from dataplump.notify.incidents import GroupingPolicy, Incidents, Notification
from dataplump.notify.render import summary
from dataplump.services.kafka import free_port
from tests.integration.notify.servers import Mailbox, WebhookServer
from tests.unit.notify.helpers import EPOCH0, invalid

pytestmark = [pytest.mark.integration]

TOKEN = "T0KEN-never-shown"


def notice() -> Notification:
    incidents = Incidents(GroupingPolicy())
    incidents.observe(invalid(42, {"not_null(customer_id)": 40, "min(amount)": 2}), EPOCH0)
    [firing] = incidents.due(EPOCH0, flush=True)
    return firing


def secret_free(error: BaseException, caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    seen = str(error) + repr(error) + caplog.text + repr(error.__cause__) + repr(error.__context__)
    for secret in secrets:
        assert secret not in seen


def test_webhook_posts_json_with_an_idempotency_key(
    webhook: WebhookServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    note = notice()
    channel = HttpWebhookChannel(webhook.url(f"/hook/{TOKEN}?token={TOKEN}"))
    channel.send(note)
    [request] = webhook.accepted()
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Idempotency-Key"] == note.id
    body = request.json()
    assert body["id"] == note.id
    assert body["summary"] == summary(note)
    assert body["incident"]["count"] == 42
    assert TOKEN not in caplog.text  # httpx logs the request line: its URL is cut
    assert "http://127.0.0.1/***" in caplog.text
    assert TOKEN not in channel.describe()


def test_slack_gets_text_and_blocks(webhook: WebhookServer) -> None:
    SlackWebhookChannel(webhook.url("/services/T0/B0/" + TOKEN)).send(notice())
    [request] = webhook.accepted()
    body = request.json()
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("shop.orders: 42 invalid records")
    assert [block["type"] for block in body["blocks"]] == [
        "header",
        "section",
        "section",
        "context",
    ]


@pytest.mark.parametrize(
    ("status", "error", "retry_after"),
    [
        (500, TransientNotifyError, None),
        (503, TransientNotifyError, 7.0),
        (429, TransientNotifyError, 7.0),
        (408, TransientNotifyError, None),
        (404, TerminalNotifyError, None),
        (400, TerminalNotifyError, None),
        (301, TerminalNotifyError, None),
    ],
)
def test_webhook_status_decides_transient_or_terminal(
    webhook: WebhookServer,
    caplog: pytest.LogCaptureFixture,
    status: int,
    error: type[NotifyError],
    retry_after: float | None,
) -> None:
    headers = {} if retry_after is None else {"Retry-After": "7"}
    webhook.respond = lambda request: (status, f"no_service for {request.path}".encode(), headers)
    channel = SlackWebhookChannel(webhook.url(f"/hook/{TOKEN}"), name="slack#2")
    with pytest.raises(error) as caught:
        channel.send(notice())
    text = str(caught.value)
    assert text.startswith(f"slack#2: http://127.0.0.1:{webhook.port} ")
    assert f"HTTP {status} 'no_service for ***'" in text  # the receiver's words, scrubbed
    assert caught.value.channel == "slack#2"
    if isinstance(caught.value, TransientNotifyError):
        assert caught.value.retry_after == retry_after
    secret_free(caught.value, caplog, TOKEN)


def test_unreachable_webhook_is_transient(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    channel = HttpWebhookChannel(f"http://127.0.0.1:{port}/hook/{TOKEN}", timeout=2)
    with pytest.raises(TransientNotifyError, match="cannot be reached") as caught:
        channel.send(notice())
    secret_free(caught.value, caplog, TOKEN)


def test_email_over_starttls_with_auth_login(mailbox: Mailbox, client_tls: ssl.SSLContext) -> None:
    note = notice()
    channel = SmtpChannel(
        "127.0.0.1",
        mailbox.port,
        sender="dataplump@example.com",
        to=["data@example.com", "oncall@example.com"],
        username="alerts",
        password="s3cret-pw",
        ssl_context=client_tls,
    )
    channel.send(note)
    [mail] = mailbox.mails
    assert mail.tls
    assert mail.login == "alerts"
    assert mailbox.logins == [("LOGIN", "alerts", True)]
    assert mail.recipients == ["data@example.com", "oncall@example.com"]
    assert mail.message["Subject"] == "[FIRING] shop.orders: 42 invalid records"
    assert mail.message["Message-ID"] == f"<{note.id}@dataplump>"
    body = mail.message.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert summary(note) in body.decode()


def test_wrong_smtp_password_is_terminal_and_not_shown(
    mailbox: Mailbox, client_tls: ssl.SSLContext, caplog: pytest.LogCaptureFixture
) -> None:
    channel = SmtpChannel(
        "127.0.0.1",
        mailbox.port,
        sender="a@example.com",
        to=["b@example.com"],
        username="alerts",
        password="Wr0ng-Passw0rd",
        ssl_context=client_tls,
    )
    with pytest.raises(TerminalNotifyError, match="refused the login of 'alerts' \\(535\\)") as c:
        channel.send(notice())
    secret_free(c.value, caplog, "Wr0ng-Passw0rd")
    assert mailbox.mails == []


def test_untrusted_certificate_is_terminal(mailbox: Mailbox) -> None:
    channel = SmtpChannel(
        "127.0.0.1",
        mailbox.port,
        sender="a@example.com",
        to=["b@example.com"],
        username="alerts",
        password="s3cret-pw",
        ssl_context=ssl.create_default_context(cafile=None, capath=None, cadata=None),
    )
    with pytest.raises(TerminalNotifyError, match="TLS certificate is not trusted"):
        channel.send(notice())


def test_no_login_without_tls(plain_mailbox: Mailbox) -> None:
    channel = SmtpChannel(
        "127.0.0.1",
        plain_mailbox.port,
        sender="a@example.com",
        to=["b@example.com"],
        username="alerts",
        password="s3cret-pw",
    )
    with pytest.raises(TerminalNotifyError, match="does not offer STARTTLS; refusing"):
        channel.send(notice())
    assert plain_mailbox.mails == []


def test_plain_smtp_without_login(plain_mailbox: Mailbox) -> None:
    channel = SmtpChannel(
        "127.0.0.1", plain_mailbox.port, sender="a@example.com", to=["b@example.com"]
    )
    channel.send(notice())
    [mail] = plain_mailbox.mails
    assert not mail.tls
    assert mail.login is None


def test_unreachable_smtp_is_transient() -> None:
    channel = SmtpChannel("127.0.0.1", free_port(), sender="a@b.c", to=["d@e.f"], timeout=2)
    with pytest.raises(TransientNotifyError, match="cannot be reached"):
        channel.send(notice())


def test_log_channel(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dataplump.notify")
    note = notice()
    LoggingChannel().send(note)
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage() == f"FIRING {summary(note)}"


def test_build_channels_names_and_always_logs() -> None:
    config = NotifyConfig.model_validate(
        {
            "channels": [
                {"kind": "webhook", "url": f"https://a.example.com/{TOKEN}"},
                {"kind": "slack", "webhook_url": f"https://hooks.slack.com/services/{TOKEN}"},
                {"kind": "webhook", "url": "https://b.example.com/x"},
                {
                    "kind": "email",
                    "smtp_host": "smtp.example.com",
                    "from": "a@example.com",
                    "to": ["b@example.com"],
                    "password": TOKEN,
                    "username": "u",
                },
            ]
        }
    )
    channels = build_channels(config)
    assert [c.name for c in channels] == ["log", "webhook", "slack", "webhook#2", "email"]
    described = " ".join(c.describe() for c in channels)
    assert TOKEN not in described
    assert "https://hooks.slack.com" in described
    assert [c.name for c in build_channels(NotifyConfig(channels=()))] == ["log"]
