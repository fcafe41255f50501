"""Channels: where notifications go — the log, a webhook, Slack, e-mail.

A channel is the seam of the notifier: one method, :meth:`Channel.send`, called from
that channel's own delivery thread with one :class:`Notification`. It returns when
the receiver accepted it, or raises

- :class:`TransientNotifyError` when trying again later may work (the notifier
  retries with exponential backoff), or
- :class:`TerminalNotifyError` when it cannot (the notification stays pending and
  is tried again much later and after a restart, so fixing the config delivers it).

Anything else a channel raises is treated as terminal. Channels never put a secret
(webhook URL, SMTP password) into an error: they name the receiver by its origin
(``https://hooks.slack.com``) and scrub third-party error text.

``build_channels(config.notify)`` makes them from the pipeline file; the ``log``
channel is always there.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from abc import ABC, abstractmethod
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any, ClassVar, Literal

import httpx
import orjson
from pydantic import SecretStr

from dataplump import __version__
from dataplump.config import models as config_models
from dataplump.notify.errors import NotifyError, TerminalNotifyError, TransientNotifyError
from dataplump.notify.incidents import Incident, Notification
from dataplump.notify.render import email_message, slack_payload, summary, webhook_payload

log = logging.getLogger("dataplump.notify")

SmtpTls = Literal["auto", "starttls", "ssl", "none"]
"""``auto``: implicit TLS on port 465, else STARTTLS when the server offers it (and a
login is refused without it); ``starttls``: STARTTLS required; ``ssl``: implicit TLS;
``none``: plain text (no login allowed)."""


class Channel(ABC):
    """Delivers notifications to one place. Subclasses implement :meth:`send` only.

    ``name`` identifies the channel in logs and in the notifier's persisted delivery
    state (``webhook``, ``webhook#2``): keep it stable, or its pending notifications
    are dropped on restart.
    """

    kind: ClassVar[str]

    owners: frozenset[str] | None = None
    """Deliver only incidents of one of these owners; None (the default): every incident."""

    def __init__(self, name: str | None = None) -> None:
        self.name = name or self.kind

    def wants(self, incident: Incident) -> bool:
        """Whether this channel delivers ``incident`` (routing by owner)."""
        return self.owners is None or not self.owners.isdisjoint(incident.everyone)

    @abstractmethod
    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise a transient or terminal :class:`NotifyError`.

        Called from this channel's delivery thread only, one call at a time. Must
        return or raise within a bounded time (use timeouts).
        """

    def describe(self) -> str:
        """Where it delivers, without secrets (for logs)."""
        return self.name

    def close(self) -> None:  # noqa: B027 (a documented no-op hook, not abstract on purpose)
        """Release connections; called once when the notifier stops. No-op by default."""


class LoggingChannel(Channel):
    """Writes the summary line to the ``dataplump.notify`` logger (WARNING; INFO when resolved)."""

    kind = "log"

    def __init__(self, name: str | None = None, logger: logging.Logger | None = None) -> None:
        super().__init__(name)
        self._log = logger or log

    def send(self, notification: Notification) -> None:
        level = logging.INFO if notification.resolved else logging.WARNING
        label = notification.kind.upper()
        self._log.log(
            level,
            "%s %s",
            label,
            summary(notification),
            extra={"dp_incident": notification.incident.id, "dp_notification": notification.id},
        )


def _origin(url: str) -> str:
    """``https://host[:port]`` of a URL: what may be shown of a secret URL."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return "<invalid URL>"
    port = f":{parsed.port}" if parsed.port else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _secret_parts(url: str) -> list[str]:
    """The URL, its path and its query: each may hold a token."""
    parts = [url]
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        return parts
    path = parsed.raw_path.decode("ascii", "replace")
    if path not in ("", "/"):
        parts.append(path)
    if parsed.query:
        parts.append(parsed.query.decode("ascii", "replace"))
    return parts


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class HttpWebhookChannel(Channel):
    """POSTs each notification as JSON (:func:`~dataplump.notify.render.webhook_payload`).

    Sends ``Idempotency-Key: <notification id>`` so a receiver can drop a repeat.
    2xx is success; 408, 425, 429 and 5xx, timeouts and connection errors are
    transient; any other status is terminal. Redirects are not followed.
    """

    kind = "webhook"

    def __init__(
        self,
        url: str | SecretStr,
        *,
        name: str | None = None,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
    ) -> None:
        super().__init__(name)
        self._url = url.get_secret_value() if isinstance(url, SecretStr) else url
        self._origin = _origin(self._url)
        self._secrets = _secret_parts(self._url)
        self._timeout = timeout
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def describe(self) -> str:
        return f"{self.name} ({self._origin})"

    def payload(self, notification: Notification) -> dict[str, Any]:
        return webhook_payload(notification)

    def send(self, notification: Notification) -> None:
        body = orjson.dumps(self.payload(notification))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"dataplump/{__version__}",
            "Idempotency-Key": notification.id,
        }
        where = f"{self.name}: {self._origin}"
        try:
            response = self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException:
            raise TransientNotifyError(
                f"{where} did not answer within {self._timeout:g}s; will retry",
                channel=self.name,
            ) from None
        except httpx.TransportError as exc:
            reason = _scrub(str(exc), self._secrets) or type(exc).__name__
            raise TransientNotifyError(
                f"{where} cannot be reached ({reason}); will retry", channel=self.name
            ) from None
        except httpx.HTTPError as exc:
            raise TerminalNotifyError(
                f"{where}: the request failed ({type(exc).__name__}); check the URL",
                channel=self.name,
            ) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        said = _scrub(response.text[:200].strip(), self._secrets)
        answer = f"HTTP {status}" + (f" {said!r}" if said else "")
        if status in (408, 425, 429) or status >= 500:
            raise TransientNotifyError(
                f"{where} answered {answer}; will retry",
                channel=self.name,
                retry_after=_retry_after(response),
            )
        raise TerminalNotifyError(
            f"{where} refused the notification: {answer}; check the URL and the receiver",
            channel=self.name,
        )

    def close(self) -> None:
        self._client.close()


class SlackWebhookChannel(HttpWebhookChannel):
    """Posts to a Slack incoming webhook (or a compatible one: Mattermost, Rocket.Chat).

    Body: ``{"text": <summary>, "blocks": [...]}`` (:func:`~dataplump.notify.render.slack_payload`).
    """

    kind = "slack"

    def payload(self, notification: Notification) -> dict[str, Any]:
        return slack_payload(notification)


class SmtpChannel(Channel):
    """Sends each notification as a plain-text e-mail over SMTP (``smtplib``).

    ``tls`` (see :data:`SmtpTls`) decides encryption; a password is never sent over
    an unencrypted connection. Certificates are verified against the system's trust
    store (``SSL_CERT_FILE`` adds one) unless ``ssl_context`` says otherwise.
    """

    kind = "email"

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str,
        to: Sequence[str],
        username: str | None = None,
        password: str | SecretStr | None = None,
        tls: SmtpTls = "auto",
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        name: str | None = None,
    ) -> None:
        super().__init__(name)
        if not to:
            raise ValueError("an e-mail channel needs at least one recipient")
        self.host, self.port, self.sender, self.to = host, port, sender, tuple(to)
        self.username = username
        self._password = (
            password.get_secret_value() if isinstance(password, SecretStr) else password
        )
        self.tls: SmtpTls = tls
        self._context = ssl_context
        self._timeout = timeout

    def describe(self) -> str:
        return f"{self.name} (smtp://{self.host}:{self.port} to {', '.join(self.to)})"

    def _implicit_tls(self) -> bool:
        return self.tls == "ssl" or (self.tls == "auto" and self.port == 465)

    def send(self, notification: Notification) -> None:
        self.send_message(email_message(notification, sender=self.sender, to=self.to))

    def send_message(self, message: EmailMessage) -> None:
        """Send a message made elsewhere (a report with its attachment) the way
        :meth:`send` sends a notification: same TLS rules, same errors."""
        where = f"{self.name}: smtp://{self.host}:{self.port}"
        secrets = [self._password or ""]
        try:
            self._deliver(message)
        except NotifyError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise TerminalNotifyError(
                f"{where} refused the login of {self.username!r} ({exc.smtp_code});"
                " check username and password",
                channel=self.name,
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise TerminalNotifyError(
                f"{where} does not support what was asked (AUTH or STARTTLS); check `tls`"
                " and whether the server wants a login",
                channel=self.name,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            retriable = all(400 <= c < 500 for c in codes)
            kind = TransientNotifyError if retriable else TerminalNotifyError
            refused = ", ".join(f"{rcpt} ({code})" for rcpt, (code, _) in exc.recipients.items())
            raise kind(f"{where} refused recipients {refused}", channel=self.name) from None
        except smtplib.SMTPResponseException as exc:
            said = _scrub(_text(exc.smtp_error), secrets)[:200]
            kind = TransientNotifyError if 400 <= exc.smtp_code < 500 else TerminalNotifyError
            raise kind(f"{where} answered {exc.smtp_code} {said!r}", channel=self.name) from None
        except ssl.SSLCertVerificationError as exc:
            raise TerminalNotifyError(
                f"{where}: its TLS certificate is not trusted ({exc.verify_message});"
                " add its CA with SSL_CERT_FILE or fix the host name",
                channel=self.name,
            ) from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPException, OSError) as exc:
            reason = _scrub(str(exc), secrets) or type(exc).__name__
            raise TransientNotifyError(
                f"{where} cannot be reached or dropped the connection ({reason}); will retry",
                channel=self.name,
            ) from None

    def _deliver(self, message: EmailMessage) -> None:
        context = self._context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self._implicit_tls():
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self._timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self._timeout)
        with smtp:
            smtp.ehlo()
            if not self._implicit_tls() and self.tls != "none":
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif self.tls == "starttls" or self.username:
                    raise TerminalNotifyError(
                        f"{self.name}: smtp://{self.host}:{self.port} does not offer STARTTLS;"
                        " refusing to send the login unencrypted (set `tls`, or use port 465)",
                        channel=self.name,
                    )
            if self.username:
                if self.tls == "none":
                    raise TerminalNotifyError(
                        f"{self.name}: a login needs TLS; refusing to send the password in clear",
                        channel=self.name,
                    )
                smtp.login(self.username, self._password or "")
            smtp.send_message(message)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def build_channels(config: config_models.NotifyConfig) -> list[Channel]:
    """The channels of ``notify.channels``, the ``log`` channel first and always.

    Names are the configured ``name``, else the kind, with ``#2``, ``#3`` for more
    channels of one kind, in file order. A channel with ``owners`` delivers only the
    incidents of those owners.
    """
    channels: list[Channel] = [LoggingChannel()]
    seen: dict[str, int] = {"log": 1}
    for entry in config.channels:
        if isinstance(entry, config_models.LogChannel):
            continue
        seen[entry.kind] = seen.get(entry.kind, 0) + 1
        name = entry.name or (
            entry.kind if seen[entry.kind] == 1 else f"{entry.kind}#{seen[entry.kind]}"
        )
        if isinstance(entry, config_models.WebhookChannel):
            channels.append(HttpWebhookChannel(entry.url, name=name))
        elif isinstance(entry, config_models.SlackChannel):
            channels.append(SlackWebhookChannel(entry.webhook_url, name=name))
        else:
            channels.append(
                SmtpChannel(
                    entry.smtp_host,
                    entry.smtp_port,
                    sender=entry.sender,
                    to=entry.to,
                    username=entry.username,
                    password=entry.password,
                    name=name,
                )
            )
        if entry.owners is not None:
            channels[-1].owners = frozenset(entry.owners)
    return channels


class _RedactHttpxUrls(logging.Filter):
    """httpx logs ``HTTP Request: POST <full URL>`` at INFO; keep only the URL's origin."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(
                f"{a.scheme}://{a.host}/***" if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


if not any(isinstance(f, _RedactHttpxUrls) for f in logging.getLogger("httpx").filters):
    logging.getLogger("httpx").addFilter(_RedactHttpxUrls())
