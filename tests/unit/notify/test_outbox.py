"""Per-channel delivery state, and the snapshot that persists it with the incidents."""

from __future__ import annotations

import math

import pytest

from dataplump.notify.errors import TerminalNotifyError
from dataplump.notify.incidents import GroupingPolicy, Incidents, Notification
from dataplump.notify.outbox import ChannelState, Delivery, Outbox
from dataplump.notify.service import NotifyState, decode_state, encode_state
from tests.unit.notify.helpers import EPOCH0, FakeClock, crash, invalid


class Story:
    """One incident's notices, made on demand."""

    def __init__(self) -> None:
        self.clock = FakeClock(EPOCH0)
        self.incidents = Incidents(GroupingPolicy(group_wait=0, group_interval=0))

    def firing(self) -> Notification:
        self.incidents.observe(invalid(2), self.clock())
        [notice] = self.incidents.due(self.clock())
        return notice

    def update(self, rule: str) -> Notification:
        self.incidents.observe(invalid(1, {rule: 1}), self.clock.tick(1))
        [notice] = self.incidents.due(self.clock())
        return notice

    def resolved(self) -> Notification:
        [notice] = self.incidents.due(self.clock.tick(10_000))
        return notice


def take(outbox: Outbox, channel: str) -> Delivery:
    item = outbox.next(channel, EPOCH0)
    assert isinstance(item, Delivery), item
    return item


def test_nothing_is_delivered_before_it_is_persisted() -> None:
    outbox = Outbox(["log", "webhook"])
    story = Story()
    outbox.add([story.firing()])
    assert outbox.next("webhook", EPOCH0) is None
    _, generation, _ = outbox.snapshot()
    outbox.persisted(generation)
    assert take(outbox, "log").notification.kind == "firing"
    assert take(outbox, "webhook").notification.kind == "firing"


def test_delivered_leaves_only_that_channel() -> None:
    outbox = Outbox(["log", "webhook"])
    outbox.add([Story().firing()])
    outbox.persisted(outbox.snapshot()[1])
    outbox.delivered(take(outbox, "log"))
    assert outbox.next("log", EPOCH0) is None
    assert isinstance(outbox.next("webhook", EPOCH0), Delivery)
    pending = outbox.pending()
    assert (len(pending["log"]), len(pending["webhook"])) == (0, 1)


def test_a_newer_notice_replaces_the_queued_one_and_is_shown_as_the_first_page() -> None:
    outbox = Outbox(["webhook"])
    story = Story()
    first = story.firing()
    other = Incidents(GroupingPolicy(group_wait=0))
    other.observe(crash(), EPOCH0)
    [crash_notice] = other.due(EPOCH0)
    outbox.add([first, crash_notice])
    outbox.add([story.update("min(amount)")])
    outbox.persisted(outbox.snapshot()[1])
    shown = take(outbox, "webhook")
    assert shown.incident_id == first.incident.id  # kept its place in line
    assert shown.notification.kind == "firing"  # the firing never reached this channel
    assert shown.notification.incident.count == 3  # but it says what the update knows
    assert len(outbox.pending()["webhook"]) == 2
    outbox.delivered(shown)
    outbox.add([story.update("max(qty)")])
    outbox.persisted(outbox.snapshot()[1])
    assert take(outbox, "webhook").notification.kind == "firing"  # the crash is still first
    outbox.delivered(take(outbox, "webhook"))
    assert take(outbox, "webhook").notification.kind == "update"  # paged: a real update now


def test_a_notice_replaced_during_delivery_stays_queued() -> None:
    outbox = Outbox(["webhook"])
    story = Story()
    outbox.add([story.firing()])
    outbox.persisted(outbox.snapshot()[1])
    in_flight = take(outbox, "webhook")
    outbox.add([story.update("min(amount)")])
    # not persisted yet: a retry still sends what Kafka has
    assert outbox.still_queued(in_flight) == in_flight
    outbox.delivered(in_flight)
    outbox.persisted(outbox.snapshot()[1])
    after = take(outbox, "webhook")
    assert after.notification.kind == "update"
    assert after.notification.new_rules == ("min(amount)",)


def test_resolved_delivery_forgets_the_page() -> None:
    outbox = Outbox(["webhook"])
    story = Story()
    outbox.add([story.firing()])
    outbox.persisted(outbox.snapshot()[1])
    outbox.delivered(take(outbox, "webhook"))
    assert outbox.snapshot()[0]["webhook"].paged == [story.incidents.open[0].id]
    outbox.add([story.resolved()])
    outbox.persisted(outbox.snapshot()[1])
    resolved = take(outbox, "webhook")
    assert resolved.notification.kind == "resolved"
    outbox.delivered(resolved)
    assert outbox.snapshot()[0]["webhook"] == ChannelState()


def test_failed_waits_until_retry_at_and_inf_means_not_in_this_run() -> None:
    outbox = Outbox(["webhook"])
    outbox.add([Story().firing()])
    outbox.persisted(outbox.snapshot()[1])
    item = take(outbox, "webhook")
    outbox.failed(item, "webhook: HTTP 500", EPOCH0 + 60)
    assert outbox.next("webhook", EPOCH0) == EPOCH0 + 60
    assert isinstance(outbox.next("webhook", EPOCH0 + 60), Delivery)
    outbox.failed(item, "webhook: HTTP 500", math.inf)
    assert outbox.next("webhook", EPOCH0 + 10**9) == math.inf
    [entry] = outbox.pending()["webhook"]
    assert (entry.attempts, entry.last_error) == (2, "webhook: HTTP 500")


def test_versions_count_changes_to_persist() -> None:
    outbox = Outbox(["log"])
    assert outbox.version == 0
    outbox.add([Story().firing()])
    outbox.persisted(outbox.snapshot()[1])
    outbox.delivered(take(outbox, "log"))
    assert outbox.snapshot()[2] == outbox.version == 2


def test_state_round_trip_and_channels_that_left() -> None:
    story = Story()
    outbox = Outbox(["log", "webhook", "email"])
    outbox.add([story.firing()])
    outbox.persisted(outbox.snapshot()[1])
    outbox.delivered(take(outbox, "log"))
    channels, _, _ = outbox.snapshot()
    state = NotifyState(saved_at=EPOCH0, incidents=story.incidents.state(), channels=channels)
    restored = decode_state(encode_state(state))
    assert restored == state
    again = Outbox(["log", "webhook", "slack"], restored.channels)
    assert again.dropped == {"email": 1}
    assert again.next("log", EPOCH0) is None
    assert take(again, "webhook").notification == channels["webhook"].pending[0].notification
    assert again.next("slack", EPOCH0) is None
    assert Incidents(story.incidents.policy, restored.incidents).open == story.incidents.open


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"{", "the notifier state is unreadable"),
        (b'{"v": 9}', r"written by a newer DataPlump \(v9\)"),
    ],
)
def test_unreadable_state(value: bytes, message: str) -> None:
    with pytest.raises(TerminalNotifyError, match=message):
        decode_state(value)
