from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from tests.unit.test_retention import DISK, LIMITS, NOW, UTC_ZONE, daily, hourly, snap, spec

from azsnap.domain import naming
from azsnap.domain.explain import HOLDS, explain, restore_points
from azsnap.domain.models import RetentionSpec
from azsnap.domain.observed import Snapshot
from azsnap.domain.retention import RULES, decide_retention, period_label

BERLIN = ZoneInfo("Europe/Berlin")


def by_name(snaps: list[Snapshot], retention: RetentionSpec, zone: ZoneInfo = UTC_ZONE) -> dict[str, tuple[str, ...]]:
    return {e.snapshot.name: e.notes for e in explain(retention, zone, snaps, NOW, LIMITS)}


def test_every_keep_reason_retention_gives_is_explained_with_the_same_rules() -> None:
    # one list that exercises each rule; the explanation names exactly the rules the decision gave
    snaps = [
        *hourly(30),
        *daily(3, NOW - timedelta(days=2)),
        snap(NOW - timedelta(days=40)),
        snap(NOW - timedelta(days=400)),
        snap(NOW - timedelta(days=500), held=True),
        snap(NOW - timedelta(minutes=5), "Creating"),
        snap(NOW - timedelta(minutes=7), "Failed"),
    ]
    retention = spec(keepLast=2, maxAge="3h", hourly=4, daily=3, weekly=2, monthly=2, yearly=2, minKeep=3)
    decision = decide_retention(retention, UTC_ZONE, snaps, NOW, LIMITS)
    explained = explain(retention, UTC_ZONE, snaps, NOW, LIMITS)
    assert {e.snapshot.name for e in explained} == {s.name for s in snaps}
    for e in explained:
        assert e.rules == decision.keep.get(e.snapshot.name, ())
        assert e.deleting == decision.delete.get(e.snapshot.name)
        assert len(e.notes) == len(e.rules)
    given = {rule for e in explained for rule in e.rules}
    assert given == set(RULES)  # the fixture really covers every rule


def test_newest_first_with_time_slot_and_state() -> None:
    snaps = hourly(3)[::-1]
    explained = explain(spec(keepLast=3), UTC_ZONE, snaps, NOW, LIMITS)
    assert [e.time for e in explained] == [NOW, NOW - timedelta(hours=1), NOW - timedelta(hours=2)]
    assert [e.slot for e in explained] == [e.time for e in explained]
    assert all(e.restore_point and str(e.state) == "Succeeded" for e in explained)


def test_keep_last_and_min_keep_give_the_rank() -> None:
    snaps = hourly(4)
    notes = by_name(snaps, spec(keepLast=3, minKeep=2))
    assert notes[snaps[0].name] == ("keepLast 1/3", "minKeep 1/2", "newest good")
    assert notes[snaps[1].name] == ("keepLast 2/3", "minKeep 2/2")
    assert notes[snaps[2].name] == ("keepLast 3/3",)
    assert notes[snaps[3].name] == ()


def test_max_age_says_until_when() -> None:
    snaps = hourly(2)
    notes = by_name(snaps, spec(maxAge="3h"))
    assert notes[snaps[1].name] == ("maxAge until 2026-06-15T14:00:00Z",)


def test_generational_tiers_name_their_period_in_the_policy_zone() -> None:
    # 23:30 UTC on Sunday 14 June is 01:30 on Monday 15 June in Berlin: another day, another ISO week
    late = snap(datetime(2026, 6, 14, 23, 30, tzinfo=UTC))
    notes = by_name([late], spec(hourly=1, daily=1, weekly=1, monthly=1, yearly=1), BERLIN)
    assert notes[late.name][:5] == (
        "hourly 2026-06-15 01:00",
        "daily 2026-06-15",
        "weekly 2026-W25",
        "monthly 2026-06",
        "yearly 2026",
    )
    assert by_name([late], spec(daily=1, weekly=1))[late.name][:2] == ("daily 2026-06-14", "weekly 2026-W24")


def test_the_repeated_hour_is_named_apart() -> None:
    # 25 October 2026, Berlin: 02:00-03:00 runs twice; the second run is 01:30 UTC
    first, second = datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert period_label("hourly", first, BERLIN) == "2026-10-25 02:00"
    assert period_label("hourly", second, BERLIN) == "2026-10-25 02:00 (repeated)"


def test_expired_snapshots_say_they_go_at_the_next_reconcile_and_why() -> None:
    snaps = hourly(3)
    explained = {e.snapshot.name: e for e in explain(spec(keepLast=1), UTC_ZONE, snaps, NOW, LIMITS)}
    gone = explained[snaps[2].name]
    assert gone.deleting == "kept by no retention rule (keepLast 1, minKeep 1)"
    assert gone.rules == () and not gone.held
    assert gone.restore_point  # still usable until it is deleted


def test_holds_are_the_guards_not_the_counting_rules() -> None:
    tagged = snap(NOW - timedelta(days=30), held=True)
    creating = snap(NOW + timedelta(minutes=1), "Creating")
    copying = snap(NOW - timedelta(minutes=2), copying=True)
    older = hourly(3)
    explained = {
        e.snapshot.name: e
        for e in explain(spec(keepLast=2, minKeep=1), UTC_ZONE, [tagged, creating, copying, *older], NOW, LIMITS)
    }
    assert explained[tagged.name].holds == ("hold",) and explained[tagged.name].notes == ("hold tag",)
    assert explained[creating.name].notes == ("creating",) and explained[creating.name].held
    assert explained[copying.name].notes == ("copying 40%",) and explained[copying.name].held
    assert not explained[copying.name].restore_point and not explained[creating.name].restore_point
    assert explained[older[0].name].holds == ("newest", "minKeep")
    assert explained[older[1].name].rules == ("keepLast",) and not explained[older[1].name].held
    assert set(HOLDS) >= {h for e in explained.values() for h in e.holds}


def test_unknown_state_is_held_and_said() -> None:
    odd = snap(NOW, "Migrating")
    (e,) = explain(spec(keepLast=1), UTC_ZONE, [odd], NOW, LIMITS)
    assert e.notes == ("state unknown (Migrating)",) and e.holds == ("inProgress",) and not e.restore_point


def test_failed_snapshots_are_kept_for_the_grace_then_go() -> None:
    young = snap(NOW - timedelta(minutes=20), "Failed")
    old = snap(NOW - timedelta(hours=3), "Failed")
    explained = {e.snapshot.name: e for e in explain(spec(keepLast=1), UTC_ZONE, [young, old], NOW, LIMITS)}
    assert explained[young.name].notes == ("failed, kept until 2026-06-15T12:40:00Z",)
    assert not explained[young.name].held and not explained[young.name].restore_point
    assert explained[old.name].deleting == "failed in Azure and older than the 1h grace period"


def test_newest_of_an_earlier_incarnation_is_told_apart() -> None:
    current = snap(NOW)
    earlier = replace(snap(NOW - timedelta(days=3)), source_unique_id="disk-unique-0")
    notes = by_name([current, earlier], spec(keepLast=1))
    assert notes[current.name] == ("keepLast 1/1", "minKeep 1/1", "newest good")
    assert notes[earlier.name] == ("newest of an earlier disk incarnation",)


def test_a_suspended_policy_holds_what_retention_would_delete() -> None:
    snaps = hourly(2)
    explained = explain(spec(keepLast=1), UTC_ZONE, snaps, NOW, LIMITS, stopped_by="suspended")
    assert explained[1].deleting is None
    assert explained[1].holds == ("suspended",)
    assert explained[1].notes == ("suspended (else deleted: kept by no retention rule (keepLast 1, minKeep 1))",)
    assert explained[0].holds == ("newest", "minKeep")


def test_a_gone_disk_kept_by_its_policy_holds_everything() -> None:
    snaps = hourly(3)
    explained = explain(spec(keepLast=1), UTC_ZONE, snaps, NOW, LIMITS, stopped_by="onSourceDiskDelete")
    assert [e.deleting for e in explained] == [None, None, None]
    assert explained[2].holds == ("onSourceDiskDelete",)
    assert explained[2].notes[0].startswith("disk gone, onSourceDiskDelete Keep (else deleted: ")


def test_an_unknown_stop_is_refused() -> None:
    with pytest.raises(ValueError, match="stopped_by must be one of"):
        explain(spec(keepLast=1), UTC_ZONE, hourly(1), NOW, LIMITS, stopped_by="because")


def test_a_name_that_names_another_policy_is_held() -> None:
    other = naming.snapshot_name(DISK.name, "another-policy-uid", NOW - timedelta(hours=1))
    moved = replace(snap(NOW - timedelta(hours=1)), name=other)
    explained = {e.snapshot.name: e for e in explain(spec(keepLast=1), UTC_ZONE, [snap(NOW), moved], NOW, LIMITS)}
    assert explained[other].deleting is None
    assert explained[other].holds == ("nameMismatch",)


def test_restore_points_are_the_usable_snapshots() -> None:
    snaps = [*hourly(3), snap(NOW + timedelta(minutes=1), "Creating"), snap(NOW - timedelta(days=1), copying=True)]
    snaps.append(snap(NOW - timedelta(days=2), "Failed"))
    points = restore_points(snaps, NOW)
    assert points.count == 3
    assert points.newest is not None and points.newest.name == snaps[0].name
    assert points.oldest is not None and points.oldest.name == snaps[2].name


def test_no_restore_point() -> None:
    points = restore_points([snap(NOW, "Creating")], NOW)
    assert (points.newest, points.oldest, points.count) == (None, None, 0)


@pytest.mark.parametrize("tier", ["hourly", "daily", "weekly", "monthly", "yearly"])
def test_period_labels_tell_neighbouring_periods_apart(tier: str) -> None:
    when = datetime(2026, 6, 15, 12, tzinfo=UTC)
    step = {"hourly": timedelta(hours=1), "daily": timedelta(days=1), "weekly": timedelta(weeks=1)}
    later = when + step.get(tier, timedelta(days=400 if tier == "yearly" else 31))
    assert period_label(tier, when, UTC_ZONE) != period_label(tier, later, UTC_ZONE)
    assert period_label(tier, when, UTC_ZONE) == period_label(tier, when + timedelta(minutes=1), UTC_ZONE)


def test_a_source_a_cross_region_copy_needs_is_held_with_the_reason() -> None:
    snaps = hourly(3)
    needs = {snaps[2].name: "copy to northeurope running"}
    explained = explain(spec(keepLast=1), UTC_ZONE, snaps, NOW, LIMITS, copy_sources=needs)
    assert explained[2].deleting is None
    assert explained[2].holds == ("copySource",) and explained[2].notes == ("copy to northeurope running",)
    assert explained[1].deleting is not None  # the other one goes as retention says
