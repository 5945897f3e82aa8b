from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from azsnap.domain import naming
from azsnap.domain.models import Policy, PolicyRef, RetentionSpec, SnapshotPolicySpec
from azsnap.domain.observed import Disk, Limits, Snapshot
from azsnap.domain.retention import decide_retention, plan_finalize

DISK_ID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/disks/data"
REF = PolicyRef(namespace="prod", name="db", uid="policy-uid-1")
DISK = Disk(
    id=DISK_ID,
    name="data",
    subscription_id="00000000-0000-0000-0000-000000000001",
    resource_group="rg",
    location="westeurope",
    unique_id="disk-unique-1",
)
UTC_ZONE = ZoneInfo("UTC")
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)  # a Monday
LIMITS = Limits()


def snap(
    slot: datetime,
    state: str = "Succeeded",
    *,
    held: bool = False,
    created: datetime | None = None,
    copying: bool = False,
    tags: dict[str, str] | None = None,
) -> Snapshot:
    base = naming.ownership_tags(REF, DISK, slot)
    if held:
        base[naming.TAG_HOLD] = "yes"
    return Snapshot(
        id=f"/x/{slot:%Y%m%d%H%M}",
        name=naming.snapshot_name(DISK.name, REF.uid, slot),
        resource_group="rg",
        location="westeurope",
        source_resource_id=DISK_ID,
        source_unique_id=DISK.unique_id,
        time_created=created or slot,
        provisioning_state=state,
        tags=base if tags is None else tags,
        completion_percent=40.0 if copying else None,
    )


def hourly(count: int, end: datetime = NOW) -> list[Snapshot]:
    return [snap(end - timedelta(hours=i)) for i in range(count)]


def daily(count: int, end: datetime = NOW) -> list[Snapshot]:
    return [snap(end - timedelta(days=i)) for i in range(count)]


def spec(**fields: Any) -> RetentionSpec:
    return RetentionSpec.model_validate(fields)


def kept(snaps: list[Snapshot], names: set[str]) -> list[int]:
    """Indexes (0 = newest when the list is newest first) of the snapshots whose names are in `names`."""
    return [i for i, s in enumerate(snaps) if s.name in names]


def test_keep_last() -> None:
    snaps = hourly(6)
    decision = decide_retention(spec(keepLast=3), UTC_ZONE, snaps, NOW, LIMITS)
    assert kept(snaps, set(decision.keep)) == [0, 1, 2]
    assert kept(snaps, set(decision.delete)) == [3, 4, 5]
    assert decision.keep[snaps[0].name] == ("keepLast", "minKeep", "newest")
    assert decision.keep[snaps[2].name] == ("keepLast",)
    assert decision.delete[snaps[5].name] == "kept by no retention rule (keepLast 3, minKeep 1)"


def test_max_age_keeps_younger_and_reports_the_next_expiry() -> None:
    snaps = hourly(6)
    decision = decide_retention(spec(maxAge="3h"), UTC_ZONE, snaps, NOW, LIMITS)
    assert kept(snaps, set(decision.keep)) == [0, 1, 2]  # 0h, 1h, 2h old; 3h old is out
    assert decision.next_change == NOW + timedelta(hours=1)  # the 2h-old one expires in 1h


def test_max_age_never_drops_the_newest() -> None:
    snaps = [snap(NOW - timedelta(days=10)), snap(NOW - timedelta(days=11))]
    decision = decide_retention(spec(maxAge="1d", minKeep=1), UTC_ZONE, snaps, NOW, LIMITS)
    assert decision.keep == {snaps[0].name: ("minKeep", "newest")}
    assert list(decision.delete) == [snaps[1].name]


def test_hourly_tier_keeps_newest_per_hour() -> None:
    snaps = [snap(NOW - timedelta(minutes=15 * i)) for i in range(12)]  # 3 hours of quarter-hourly
    decision = decide_retention(spec(hourly=2), UTC_ZONE, snaps, NOW, LIMITS)
    # hours: 12:00 has [0]; 11:xx has [1..4], newest is [1]; 10:xx [5..8]
    assert [i for i in kept(snaps, set(decision.keep)) if "hourly" in decision.keep[snaps[i].name]] == [0, 1]


def test_daily_tier_counts_only_days_that_have_a_snapshot() -> None:
    # snapshots on days 0, 1, 5, 6, 7 ago: with daily=3 the three newest days that have one are kept (restic style)
    snaps = [snap(NOW - timedelta(days=d)) for d in (0, 1, 5, 6, 7)]
    decision = decide_retention(spec(daily=3), UTC_ZONE, snaps, NOW, LIMITS)
    assert kept(snaps, set(decision.keep)) == [0, 1, 2]


def test_daily_tier_keeps_newest_of_each_day() -> None:
    snaps = hourly(72)
    decision = decide_retention(spec(daily=3), UTC_ZONE, snaps, NOW, LIMITS)
    kept_times = sorted(s.time_created for s in snaps if s.name in decision.keep if s.time_created)
    assert kept_times == [
        datetime(2026, 6, 13, 23, tzinfo=UTC),
        datetime(2026, 6, 14, 23, tzinfo=UTC),
        NOW,
    ]


def test_daily_periods_follow_the_zone() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")  # UTC+9: 15:00Z is already the next day
    snaps = [snap(datetime(2026, 6, 14, h, tzinfo=UTC)) for h in (16, 14, 10)]
    snaps.sort(key=lambda s: s.time_created or NOW, reverse=True)
    in_utc = decide_retention(spec(daily=5), UTC_ZONE, snaps, NOW, LIMITS)
    in_tokyo = decide_retention(spec(daily=5), tokyo, snaps, NOW, LIMITS)
    assert kept(snaps, set(in_utc.keep)) == [0]
    assert kept(snaps, set(in_tokyo.keep)) == [0, 1]


def test_weekly_uses_iso_weeks_starting_monday() -> None:
    sunday = datetime(2026, 6, 14, 12, tzinfo=UTC)
    monday = datetime(2026, 6, 15, 1, tzinfo=UTC)
    snaps = [snap(monday), snap(sunday), snap(sunday - timedelta(days=1))]
    decision = decide_retention(spec(weekly=2), UTC_ZONE, snaps, NOW, LIMITS)
    assert kept(snaps, set(decision.keep)) == [0, 1]


def test_monthly_and_yearly() -> None:
    snaps = [snap(NOW - timedelta(days=10 * i)) for i in range(60)]  # ~20 months
    monthly = decide_retention(spec(monthly=4), UTC_ZONE, snaps, NOW, LIMITS)
    months = sorted(
        {(s.time_created.year, s.time_created.month) for s in snaps if s.name in monthly.keep if s.time_created}
    )
    assert months == [(2026, 3), (2026, 4), (2026, 5), (2026, 6)]
    yearly = decide_retention(spec(yearly=5), UTC_ZONE, snaps, NOW, LIMITS)
    # 600 days reach back into 2024: the newest of each of the three years
    assert sorted(s.time_created for s in snaps if s.name in yearly.keep if s.time_created) == [
        datetime(2024, 12, 22, 12, tzinfo=UTC),
        datetime(2025, 12, 27, 12, tzinfo=UTC),
        NOW,
    ]


def test_gfs_mix_is_a_union() -> None:
    snaps = hourly(24 * 40)
    decision = decide_retention(spec(hourly=24, daily=7, weekly=4, monthly=3), UTC_ZONE, snaps, NOW, LIMITS)
    by_rule: dict[str, int] = {}
    for reasons in decision.keep.values():
        for r in reasons:
            by_rule[r] = by_rule.get(r, 0) + 1
    assert by_rule["hourly"] == 24
    assert by_rule["daily"] == 7
    assert by_rule["weekly"] == 4
    assert by_rule["monthly"] == 2  # the 40 days reach back only into May: two months have snapshots
    assert len(decision.keep) + len(decision.delete) == len(snaps)


def test_min_keep_holds_even_when_everything_is_old() -> None:
    snaps = daily(10, NOW - timedelta(days=100))
    decision = decide_retention(spec(maxAge="1d", minKeep=4), UTC_ZONE, snaps, NOW, LIMITS)
    assert kept(snaps, set(decision.keep)) == [0, 1, 2, 3]
    assert all("minKeep" in decision.keep[s.name] for s in snaps[:4])


def test_only_succeeded_count_towards_rules() -> None:
    snaps = [snap(NOW, "Creating"), snap(NOW - timedelta(hours=1), copying=True), *hourly(4, NOW - timedelta(hours=2))]
    decision = decide_retention(spec(keepLast=2), UTC_ZONE, snaps, NOW, LIMITS)
    assert decision.keep[snaps[0].name] == ("inProgress",)
    assert decision.keep[snaps[1].name] == ("inProgress",)
    assert "keepLast" in decision.keep[snaps[2].name]
    assert "keepLast" in decision.keep[snaps[3].name]
    assert kept(snaps, set(decision.delete)) == [4, 5]


def test_unknown_state_is_never_deleted() -> None:
    snaps = [snap(NOW - timedelta(days=30), "Migrating"), *hourly(2)]
    decision = decide_retention(spec(keepLast=1), UTC_ZONE, snaps, NOW, LIMITS)
    assert decision.keep[snaps[0].name] == ("inProgress",)


def test_held_is_kept_and_uses_no_place() -> None:
    snaps = hourly(4)
    snaps[3] = snap(NOW - timedelta(hours=3), held=True)
    snaps[0] = snap(NOW, held=True)
    decision = decide_retention(spec(keepLast=1), UTC_ZONE, snaps, NOW, LIMITS)
    assert decision.keep[snaps[0].name] == ("hold",)
    assert decision.keep[snaps[3].name] == ("hold",)
    assert decision.keep[snaps[1].name] == ("keepLast", "minKeep", "newest")
    assert list(decision.delete) == [snaps[2].name]


def test_failed_is_deleted_after_grace() -> None:
    fresh = snap(NOW - timedelta(minutes=30), "Failed")
    stale = snap(NOW - timedelta(hours=2), "Failed")
    good = snap(NOW - timedelta(hours=3))
    decision = decide_retention(
        spec(keepLast=5), UTC_ZONE, [fresh, stale, good], NOW, Limits(failed_grace=timedelta(hours=1))
    )
    assert decision.keep[fresh.name] == ("failedGrace",)
    assert "failed" in decision.delete[stale.name]
    assert decision.next_change == NOW + timedelta(minutes=30)
    # a failed snapshot is never the "newest good one"
    assert "newest" in decision.keep[good.name]


def test_creation_time_wins_over_the_slot_tag() -> None:
    # a jittered snapshot is made after its slot; an on-demand one made earlier but tagged a later minute must
    # not count as newer than it
    jittered = snap(NOW - timedelta(hours=2), created=NOW - timedelta(minutes=5))
    on_demand = snap(NOW - timedelta(hours=1), created=NOW - timedelta(hours=1))
    decision = decide_retention(spec(keepLast=1), UTC_ZONE, [jittered, on_demand], NOW, LIMITS)
    assert list(decision.delete) == [on_demand.name]
    assert "newest" in decision.keep[jittered.name]


def test_the_slot_tag_stands_in_when_azure_reports_no_creation_time() -> None:
    older = replace(snap(NOW - timedelta(hours=2)), time_created=None)
    newer = replace(snap(NOW - timedelta(hours=1)), time_created=None)
    decision = decide_retention(spec(keepLast=1), UTC_ZONE, [newer, older], NOW, LIMITS)
    assert list(decision.delete) == [older.name]


def test_decision_does_not_depend_on_listing_order() -> None:
    snaps = hourly(30)
    a = decide_retention(spec(keepLast=3, daily=2), UTC_ZONE, snaps, NOW, LIMITS)
    b = decide_retention(spec(keepLast=3, daily=2), UTC_ZONE, list(reversed(snaps)), NOW, LIMITS)
    assert a == b


# -- finalize ---------------------------------------------------------------------------------------------------


def policy(deletion: str = "Delete") -> Policy:
    return Policy(
        ref=REF,
        spec=SnapshotPolicySpec.model_validate(
            {
                "disk": {"id": DISK_ID},
                "schedule": {"cron": "@hourly"},
                "retention": {"keepLast": 3},
                "deletionPolicy": deletion,
            }
        ),
    )


@pytest.mark.parametrize("disk", [DISK, None])
def test_finalize_deletes_own_settled_snapshots_only(disk: Disk | None) -> None:
    mine = hourly(3)
    held = snap(NOW - timedelta(hours=5), held=True)
    creating = snap(NOW - timedelta(hours=6), "Creating")
    failed = snap(NOW - timedelta(hours=7), "Failed")
    other_policy = replace(mine[0], name="other", tags={**mine[0].tags, naming.TAG_POLICY_UID: "x"})
    unmanaged = replace(mine[0], name="manual", tags={})
    doomed = plan_finalize(policy(), disk, [*mine, held, creating, failed, other_policy, unmanaged], NOW)
    names = [d.snapshot.name for d in doomed]
    assert sorted(names) == sorted([s.name for s in mine] + [failed.name])
    assert names[0] == failed.name  # oldest first


def test_finalize_without_the_disk_requires_a_disk_uid_tag_and_matching_source() -> None:
    base = hourly(1)[0]
    no_disk_tag = replace(base, name="a", tags={k: v for k, v in base.tags.items() if k != naming.TAG_DISK_UID})
    other_source = replace(base, name="b", source_resource_id=DISK_ID + "x")
    source_gone = replace(base, name="c", source_resource_id=None)
    doomed = plan_finalize(policy(), None, [no_disk_tag, other_source, source_gone], NOW)
    assert [d.snapshot.name for d in doomed] == ["c"]
