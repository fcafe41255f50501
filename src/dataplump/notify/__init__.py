"""Alerts and notifications: stages raise alert events, ``dataplump notify`` tells people.

Producing side (every stage), one event per batch, never per row::

    from dataplump.notify import produce_alert, records_alert

    event = records_alert(
        "shop", "orders", stage="extract", count=42,
        counts_by_rule={"not_null(customer_id)": 40, "min(amount)": 2},
        sample_keys=[17, 23, 99], contract_version="3", kept_in="shop.orders.dlq",
    )
    produce_alert(producer, event)  # queued in the stage's own transaction

Delivering side: :class:`Notifier` (``dataplump notify``) reads ``<pipeline>.alerts``,
groups events into :class:`Incident` objects (:class:`GroupingPolicy`), and delivers
each :class:`Notification` to every :class:`Channel` (log, webhook, Slack, e-mail),
each in its own thread with retries. See ``docs/notify.md``.
"""

from dataplump.notify.channels import (
    Channel,
    HttpWebhookChannel,
    LoggingChannel,
    SlackWebhookChannel,
    SmtpChannel,
    SmtpTls,
    build_channels,
)
from dataplump.notify.errors import (
    MalformedAlertError,
    NotifyError,
    TerminalNotifyError,
    TransientNotifyError,
)
from dataplump.notify.events import (
    ALERT_KINDS,
    AlertEvent,
    AlertKind,
    alert_topic,
    decode,
    encode,
    error_alert,
    fingerprint,
    produce_alert,
    records_alert,
    redact,
)
from dataplump.notify.incidents import (
    GroupingPolicy,
    Incident,
    Incidents,
    Notification,
    NotificationKind,
)
from dataplump.notify.render import slack_payload, summary, title, webhook_payload
from dataplump.notify.service import (
    Notifier,
    NotifyState,
    RetryPolicy,
    RunReport,
    load_state,
    state_topic,
)

__all__ = [
    "ALERT_KINDS",
    "AlertEvent",
    "AlertKind",
    "Channel",
    "GroupingPolicy",
    "HttpWebhookChannel",
    "Incident",
    "Incidents",
    "LoggingChannel",
    "MalformedAlertError",
    "Notification",
    "NotificationKind",
    "Notifier",
    "NotifyError",
    "NotifyState",
    "RetryPolicy",
    "RunReport",
    "SlackWebhookChannel",
    "SmtpChannel",
    "SmtpTls",
    "TerminalNotifyError",
    "TransientNotifyError",
    "alert_topic",
    "build_channels",
    "decode",
    "encode",
    "error_alert",
    "fingerprint",
    "load_state",
    "produce_alert",
    "records_alert",
    "redact",
    "slack_payload",
    "state_topic",
    "summary",
    "title",
    "webhook_payload",
]
