"""Errors of the notifier, under DataPlump's root error::

    DataPlumpError
    └── NotifyError                    a notification was not delivered, or an alert is unreadable
        ├── TransientNotifyError       retry later: refused or reset connection, timeout,
        │                              HTTP 408/429/5xx, SMTP 4xx (TransientError)
        └── TerminalNotifyError        retrying the same thing cannot help: HTTP 4xx, SMTP 5xx,
            │                          login refused, untrusted certificate (TerminalError)
            └── MalformedAlertError    a record on ``<pipeline>.alerts`` is not an alert event

A :class:`~dataplump.notify.channels.Channel` raises only these; the third-party
error (httpx, smtplib, ssl) is wrapped where it enters, and its text is scrubbed of
the channel's secrets first: a webhook URL or an SMTP password never appears in a
message, a log line or a traceback.
"""

from __future__ import annotations

from dataplump.errors import DataPlumpError, TerminalError, TransientError


class NotifyError(DataPlumpError):
    """A notification could not be delivered, or an alert event could not be read.

    ``channel`` names the channel (``webhook``, ``email#2``) when one is involved.
    """

    def __init__(self, message: str, *, channel: str | None = None) -> None:
        super().__init__(message)
        self.channel = channel


class TransientNotifyError(NotifyError, TransientError):
    """The channel may take the notification later; it is retried with backoff.

    ``retry_after`` is the wait the receiver asked for (HTTP ``Retry-After``), if any.
    """

    def __init__(
        self, message: str, *, channel: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, channel=channel)
        self.retry_after = retry_after


class TerminalNotifyError(NotifyError, TerminalError):
    """The channel refused the notification in a way retrying cannot fix (config, payload).

    The notification stays pending for that channel: it is tried again after
    ``terminal_retry_after`` and after every restart, so fixing the config and
    restarting ``dataplump notify`` delivers it.
    """


class MalformedAlertError(TerminalNotifyError):
    """A record on ``<pipeline>.alerts`` is not a valid alert event; it is skipped and reported."""
