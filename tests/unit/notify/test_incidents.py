"""Grouping events into incidents and deciding when to notify, on a fake clock."""

from __future__ import annotations

import pytest

from dataplump.notify.events import cleared_alert
from dataplump.notify.incidents import GroupingPolicy, Incidents, Notification
from tests.unit.notify.helpers import FakeClock, crash, invalid

POLICY = GroupingPolicy(
    group_wait=30, group_interval=300, repeat_interval=4 * 3600, resolve_after=3600
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def kinds(notices: list[Notification]) -> list[str]:
    return [n.kind for n in notices]


def run_until(
    incidents: Incidents, clock: FakeClock, seconds: float, step: float = 1.0
) -> list[Notification]:
    """Every notice ``due`` returns while the clock moves ``seconds`` in ``step``s."""
    notices: list[Notification] = []
    end = clock.now + seconds
    while clock.now < end:
        clock.tick(step)
        notices += incidents.due(clock())
    return notices


def test_group_wait_collects_events_into_one_firing(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2, {"not_null(customer_id)": 2}, keys=(17, 23)), clock())
    assert incidents.due(clock()) == []
    assert run_until(incidents, clock, 10) == []
    incidents.observe(
        invalid(40, {"not_null(customer_id)": 38, "min(amount)": 2}, keys=(23, 99, 5, 6, 7), at=10),
        clock(),
    )
    assert run_until(incidents, clock, 19) == []
    [firing] = run_until(incidents, clock, 1)
    assert firing.kind == "firing"
    assert clock.now == pytest.approx(incidents.open[0].opened_at + 30)
    inc = firing.incident
    assert inc.count == 42
    assert inc.events == 2
    assert inc.counts_by_rule == {"not_null(customer_id)": 40, "min(amount)": 2}
    assert inc.sample_keys == ["17", "23", "99", "5", "6"]
    assert inc.contract_versions == ["3"]
    assert (inc.first_seen.isoformat(), inc.last_seen.isoformat()) == (
        "2026-03-02T10:02:00+00:00",
        "2026-03-02T10:02:10+00:00",
    )
    assert firing.id == f"{inc.id}.1"


def test_more_of_the_same_updates_the_incident_without_paging(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    assert kinds(run_until(incidents, clock, 30)) == ["firing"]
    for minute in range(1, 59):  # a batch a minute, for an hour less a minute
        clock.tick(60 - 1)
        incidents.observe(invalid(2, at=minute * 60), clock())
        assert run_until(incidents, clock, 1) == []
    assert incidents.open[0].count == 2 * 59
    assert len(incidents.open) == 1


def test_something_new_sends_one_update_per_group_interval(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    [firing] = run_until(incidents, clock, 30)
    clock.tick(60)
    incidents.observe(invalid(3, {"min(amount)": 3}, at=90), clock())
    # 60 s after the firing: the update waits for group_interval (300 s after the firing)
    assert run_until(incidents, clock, 239) == []
    [update] = run_until(incidents, clock, 1)
    assert update.kind == "update"
    assert update.at == pytest.approx(firing.at + 300)
    assert update.new_rules == ("min(amount)",)
    assert update.previous_count == 2
    assert update.incident.count == 5
    assert update.id == f"{firing.incident.id}.2"
    # the same new rule again is no longer new
    incidents.observe(invalid(3, {"min(amount)": 3}, at=400), clock())
    assert run_until(incidents, clock, 600) == []
    # a new contract version is new
    incidents.observe(invalid(1, version="4", at=1000), clock())
    [again] = run_until(incidents, clock, 300)
    assert again.kind == "update"
    assert again.new_rules == ()
    assert again.incident.contract_versions == ["3", "4"]


def test_open_incident_repeats_after_repeat_interval(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    [firing] = run_until(incidents, clock, 30)
    notices: list[Notification] = []
    for _ in range(int(4 * 3600 / 600)):  # an event every 10 min keeps it open
        clock.tick(600)
        incidents.observe(invalid(1), clock())
        notices += incidents.due(clock())
    notices += run_until(incidents, clock, 60)
    [repeat] = notices
    assert repeat.kind == "repeat"
    assert repeat.at >= firing.at + 4 * 3600
    assert repeat.at < firing.at + 4 * 3600 + 60
    assert repeat.previous_count == 2
    assert repeat.incident.count == 2 + 24


def test_quiet_incident_resolves_and_the_next_event_opens_a_new_one(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    [firing] = run_until(incidents, clock, 30)
    last_event = clock.tick(100)
    incidents.observe(invalid(1, at=130), clock())
    assert run_until(incidents, clock, 3599.5, step=0.5) == []
    [resolved] = run_until(incidents, clock, 0.5, step=0.5)
    assert resolved.kind == "resolved"
    assert resolved.resolved
    assert resolved.incident.resolved_at == pytest.approx(last_event + 3600)
    assert resolved.incident.count == 3
    assert incidents.open == []
    assert incidents.next_due() is None

    incidents.observe(invalid(5, at=7200), clock())
    [reopened] = run_until(incidents, clock, 30)
    assert reopened.kind == "firing"
    assert reopened.incident.id != firing.incident.id
    assert reopened.incident.count == 5


def test_a_backlog_after_downtime_keeps_the_incident_open(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    [firing] = run_until(incidents, clock, 30)
    clock.tick(5 * 3600)  # the notifier was down; events waited on the topic
    incidents.observe(invalid(1), clock())  # the notifier observes a poll's events first
    assert kinds(incidents.due(clock())) == ["repeat"]  # not resolved, not a new page
    assert incidents.open[0].id == firing.incident.id
    clock.tick(5 * 3600)  # down again, and nothing happened meanwhile
    assert kinds(incidents.due(clock())) == ["resolved"]


def test_flush_skips_group_wait_only(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    assert kinds(incidents.due(clock(), flush=True)) == ["firing"]
    incidents.observe(invalid(2, {"min(amount)": 2}), clock.tick(10))
    assert incidents.due(clock(), flush=True) == []  # updates still wait for group_interval


def test_different_problems_are_different_incidents(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    for event in (
        invalid(),
        invalid(table="customers"),
        invalid(stage="transform"),
        crash(),
        crash("disk full"),
    ):
        incidents.observe(event, clock())
    incidents.observe(crash("connection reset after 31s"), clock())
    notices = incidents.due(clock.tick(30))
    assert len(notices) == 5
    assert len({n.incident.id for n in notices}) == 5
    assert sorted(n.incident.count for n in notices) == [1, 2, 2, 2, 2]  # one crash twice


def test_next_due_says_when_to_wake(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    assert incidents.next_due() is None
    start = clock()
    incidents.observe(invalid(), start)
    assert incidents.next_due() == start + 30
    incidents.due(clock.tick(30))
    assert incidents.next_due() == start + 3600  # resolve (after the last event) before repeat
    incidents.observe(invalid(1, {"min(amount)": 1}), clock.tick(10))
    assert incidents.next_due() == start + 30 + 300  # the update


def test_state_round_trip_continues_without_paging_again(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    run_until(incidents, clock, 30)
    restored = Incidents(POLICY, incidents.state())
    restored.observe(invalid(2), clock.tick(5))
    assert run_until(restored, clock, 600) == []
    assert restored.open[0].count == 4
    restored.observe(invalid(2, table="customers"), clock())
    [new] = run_until(restored, clock, 30)
    assert new.incident.id.endswith("-2")  # the id counter survived


def test_notification_is_a_snapshot(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    [firing] = run_until(incidents, clock, 30)
    incidents.observe(invalid(7), clock())
    assert firing.incident.count == 2


def test_as_firing_shows_a_later_notice_as_the_first_page(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    incidents.observe(invalid(2), clock())
    run_until(incidents, clock, 30)
    incidents.observe(invalid(1, {"min(amount)": 1}), clock())
    [update] = run_until(incidents, clock, 300)
    shown = update.as_firing()
    assert (shown.kind, shown.previous_count, shown.new_rules, shown.id) == (
        "firing",
        0,
        (),
        update.id,
    )


@pytest.mark.parametrize(
    "field", ["group_wait", "group_interval", "repeat_interval", "resolve_after"]
)
@pytest.mark.parametrize("value", [-1.0, float("inf"), float("nan")])
def test_policy_refuses_nonsense(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"{field} must be a finite number of seconds >= 0"):
        GroupingPolicy(**{field: value})


def test_a_cleared_event_resolves_its_incident_at_once(clock: FakeClock) -> None:
    """A replay that empties the dead-letter store resolves the incident, and says so."""
    incidents = Incidents(POLICY)
    incidents.observe(invalid(5, {"max(id)": 5}), clock())
    assert kinds(run_until(incidents, clock, 31)) == ["firing"]
    other = invalid(1, {"max(id)": 1}, table="customers")
    incidents.observe(other, clock())
    cleared = cleared_alert("shop", "orders", stage="extract", cleared="invalid_records", count=5)
    assert incidents.observe(cleared, clock()) is not None
    [resolved] = incidents.due(clock())
    assert resolved.kind == "resolved"
    assert resolved.incident.table == "orders"
    assert "nothing of orders is left" in (resolved.incident.message or "")
    assert [i.table for i in incidents.open] == ["customers"]


def test_a_cleared_event_for_no_open_incident_opens_nothing(clock: FakeClock) -> None:
    incidents = Incidents(POLICY)
    cleared = cleared_alert("shop", "orders", stage="transform", cleared="failed_records", count=1)
    assert incidents.observe(cleared, clock()) is None
    assert incidents.open == []
    assert incidents.due(clock()) == []
