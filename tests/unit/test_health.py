"""The health model: each rule, its order, the staleness threshold from the schedule, and recovery by itself."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.domain.conditions import Health, HealthState, conditions_for
from azsnap.domain.health import BackupFacts, assess, freshness
from azsnap.domain.models import ScheduleSpec

HOURLY = ScheduleSpec(cron="0 * * * *")
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
OK = Health(HealthState.READY, "Succeeded", "3 snapshot(s) held")
RETRY = Health(
    HealthState.RETRYING, "Throttled", "Azure answered 429 while changing snapshots; azsnap retries in 300s."
)


def facts(**changes: Any) -> BackupFacts:
    base: dict[str, Any] = {
        "schedule": HOURLY,
        "offset": timedelta(0),
        "suspended": False,
        "created": T0 - timedelta(days=1),
        "last_success": T0 + timedelta(seconds=5),
        "last_snapshot_name": "disk-0-abc-20260302t1000z",
        "last_snapshot_state": "Succeeded",
        "accounted_until": T0,
        "missed_now": (),
        "over_budget": "",
    }
    base.update(changes)
    return BackupFacts(**base)


def ready(status: str, reason: str, since: datetime, message: str = "") -> list[dict[str, Any]]:
    return [
        {
            "type": "Ready",
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ]


def test_steady_state_keeps_the_reconciles_verdict() -> None:
    assert assess(OK, facts(), [], T0 + timedelta(minutes=30)) is OK


def test_throttled_for_hours_is_stalled_with_slots_missed_then_recovers_by_itself() -> None:
    # Creates throttled since 11:00: at 12:00 the 11:00 slot's window closed and the reconcile counted it missed.
    at = T0 + timedelta(hours=2, seconds=3)
    f = facts(missed_now=(T0 + timedelta(hours=1),), accounted_until=T0 + timedelta(hours=2) - timedelta(seconds=1))
    verdict = assess(RETRY, f, [], at)
    assert (verdict.state, verdict.reason) == (HealthState.STALLED, "SlotsMissed")
    assert "1 scheduled slot(s) missed, the latest 2026-03-02T11:00:00Z" in verdict.message
    assert "2026-03-02T10:00:05Z (1h59m ago)" in verdict.message
    assert "Meanwhile: Azure answered 429" in verdict.message
    conditions = conditions_for(verdict, [], now=at, generation=1)

    # Six hours on, nothing newly missed in this round: the Ready condition remembers.
    later = at + timedelta(hours=4)
    still = assess(RETRY, facts(accounted_until=later - timedelta(hours=1)), conditions, later)
    assert (still.state, still.reason) == (HealthState.STALLED, "SlotsMissed")
    assert "missed since 2026-03-02T12:00:03Z" in still.message

    # A good snapshot after Ready turned False: back to the reconcile's own verdict, by itself.
    healed = facts(last_success=later + timedelta(minutes=1), accounted_until=later)
    assert assess(OK, healed, conditions, later + timedelta(minutes=2)) is OK
    # lastSuccessfulSnapshotTime is a slot time: the 12:00 slot's catch-up snapshot, taken at 12:30, heals too ...
    catch_up = facts(last_success=T0 + timedelta(hours=2), accounted_until=T0 + timedelta(hours=2))
    assert assess(OK, catch_up, conditions, T0 + timedelta(hours=2, minutes=30)) is OK
    # ... while the last good one, from before the hole, does not.
    before = facts(last_success=T0, accounted_until=T0 + timedelta(hours=2))
    assert assess(OK, before, conditions, T0 + timedelta(hours=2, minutes=30)).reason == "SlotsMissed"


def test_a_missed_slot_healed_in_the_same_round_leaves_ready() -> None:
    # The reconcile at 12:00 counts 11:00 missed and takes 12:00: the newest good snapshot is after the hole.
    at = T0 + timedelta(hours=2, seconds=5)
    f = facts(missed_now=(T0 + timedelta(hours=1),), last_success=T0 + timedelta(hours=2, seconds=2))
    assert assess(OK, f, [], at) is OK


def test_a_snapshot_that_ended_failed_after_its_create() -> None:
    at = T0 + timedelta(minutes=20)
    f = facts(last_snapshot_state="Failed", last_success=T0 - timedelta(hours=1))
    verdict = assess(OK, f, [], at)
    assert (verdict.state, verdict.reason) == (HealthState.STALLED, "SnapshotFailed")
    assert "Snapshot disk-0-abc-20260302t1000z ended Failed in Azure" in verdict.message
    # The next slot succeeds: the newest snapshot is no longer the Failed one.
    assert assess(OK, facts(last_success=T0 + timedelta(hours=1)), [], at + timedelta(hours=1)) is OK


def test_over_budget_names_the_figure_and_stays_until_a_good_snapshot() -> None:
    at = T0 + timedelta(hours=1, minutes=2)
    why = "The 11:00 slot's create could not be sent before its deadline: 4,200 creates due, the budget holds 3,725."
    verdict = assess(OK, facts(over_budget=why, missed_now=(T0 + timedelta(hours=1),)), [], at)
    assert (verdict.state, verdict.reason) == (HealthState.STALLED, "OverBudget")
    assert verdict.message.startswith(f"Slot missed, {why[:-1]}; the newest good snapshot is from")
    assert "Spread the policies' schedules" in verdict.message
    conditions = conditions_for(verdict, [], now=at, generation=1)
    still = assess(OK, facts(), conditions, at + timedelta(minutes=10))
    assert (still.reason, still.message) == ("OverBudget", verdict.message)
    assert assess(OK, facts(last_success=at + timedelta(minutes=30)), conditions, at + timedelta(minutes=31)) is OK


def test_overdue_when_the_latest_closed_slot_was_never_accounted() -> None:
    # Last good at 10:00; the 11:00 slot's window closed at 12:00 and no reconcile counted it.
    at = T0 + timedelta(hours=2, minutes=1)
    verdict = assess(OK, facts(accounted_until=T0 + timedelta(hours=1) - timedelta(seconds=1)), [], at)
    assert (verdict.state, verdict.reason) == (HealthState.STALLED, "SnapshotOverdue")
    assert "slot 2026-03-02T11:00:00Z was not taken within its startingDeadline (1h)" in verdict.message
    # Still inside the window: not overdue yet.
    assert (
        assess(OK, facts(accounted_until=T0 + timedelta(hours=1) - timedelta(seconds=1)), [], at - timedelta(minutes=2))
        is OK
    )


def test_a_new_policy_owes_nothing_before_its_first_slot_window() -> None:
    created = T0 + timedelta(minutes=20)
    young = facts(
        created=created, last_success=None, last_snapshot_name=None, last_snapshot_state=None, accounted_until=None
    )
    assert assess(OK, young, [], created + timedelta(minutes=30)) is OK
    # The 11:00 window closed at 12:00 with nothing taken and nothing accounted.
    late = assess(OK, young, [], T0 + timedelta(hours=2, minutes=1))
    assert late.reason == "SnapshotOverdue"
    assert "there is no good snapshot yet" in late.message


def test_suspended_owes_nothing_and_stalled_wins() -> None:
    old = facts(suspended=True, last_success=T0 - timedelta(days=30), accounted_until=T0)
    suspended = Health(HealthState.READY, "Suspended", "Suspended: spec.suspend is true")
    assert assess(suspended, old, [], T0 + timedelta(days=1)) is suspended
    stalled = Health(HealthState.STALLED, "ScopeNotAllowed", "namespace prod may not use subscription x")
    assert assess(stalled, old, [], T0) is stalled
    assert assess(stalled, facts(last_snapshot_state="Failed", over_budget="over"), [], T0) is stalled


@pytest.mark.parametrize(
    ("schedule", "interval"),
    [
        (ScheduleSpec(cron="0 * * * *"), timedelta(hours=1)),
        (ScheduleSpec(every=timedelta(hours=4)), timedelta(hours=4)),
        (ScheduleSpec(every=timedelta(days=2)), timedelta(days=2)),
        (ScheduleSpec(cron="0 1 * * 1-5"), timedelta(days=3)),  # Friday to Monday
        (ScheduleSpec(cron="0 0 1 * *"), timedelta(days=31)),
        (ScheduleSpec(cron="0 0 1 1 *"), timedelta(days=365)),
        (ScheduleSpec(cron="30 2 * * *", time_zone="Europe/Berlin"), timedelta(hours=25)),  # includes October's DST end
    ],
)
def test_expected_interval_is_the_longest_gap_and_stale_after_adds_offset_and_deadline(
    schedule: ScheduleSpec, interval: timedelta
) -> None:
    now = datetime(2026, 10, 20, 12, tzinfo=UTC)
    fresh = freshness(schedule, timedelta(minutes=7), now)
    assert fresh is not None
    assert fresh.expected_interval == interval
    assert fresh.stale_after == interval + timedelta(minutes=7) + schedule.starting_deadline


def test_order_over_budget_before_failed_before_missed() -> None:
    at = T0 + timedelta(hours=2)
    missed: Sequence[datetime] = (T0 + timedelta(hours=1),)
    f = facts(over_budget="over", last_snapshot_state="Failed", missed_now=missed, last_success=T0 - timedelta(hours=1))
    assert assess(OK, f, [], at).reason == "OverBudget"
    f = facts(last_snapshot_state="Failed", missed_now=missed, last_success=T0 - timedelta(hours=1))
    assert assess(OK, f, [], at).reason == "SnapshotFailed"
    # A Ready=False of another reason (a retry) is not a memory of missed slots.
    retrying = ready("False", "Throttled", T0)
    assert assess(OK, facts(last_success=T0 - timedelta(minutes=5)), retrying, T0 + timedelta(minutes=10)) is OK
