from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from azsnap.domain import naming
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk, Limits, Snapshot
from azsnap.domain.planner import Plan, plan
from azsnap.domain.schedule import slot_offset

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
ULTRA = replace(DISK, sku="UltraSSD_LRS")
NOW = datetime(2026, 6, 15, 12, 10, tzinfo=UTC)
LIMITS = Limits()


def policy(**overrides: Any) -> Policy:
    body: dict[str, Any] = {
        "disk": {"id": DISK_ID},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 3},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return Policy(ref=REF, spec=SnapshotPolicySpec.model_validate(body))


def ours(slot: datetime, state: str = "Succeeded", *, disk: Disk = DISK, **kw: Any) -> Snapshot:
    return Snapshot(
        id=f"/x/{slot:%Y%m%d%H%M}",
        name=naming.snapshot_name(disk.name, REF.uid, slot),
        resource_group="rg",
        location="westeurope",
        source_resource_id=disk.id,
        source_unique_id=disk.unique_id,
        time_created=slot,
        provisioning_state=state,
        tags=naming.ownership_tags(REF, disk, slot),
        **kw,
    )


def foreign(name: str, created: datetime, **kw: Any) -> Snapshot:
    return Snapshot(
        id=f"/x/{name}",
        name=name,
        resource_group="rg",
        location="westeurope",
        source_resource_id=DISK_ID,
        source_unique_id=DISK.unique_id,
        time_created=created,
        provisioning_state="Succeeded",
        tags={},
        **kw,
    )


def hour(h: int, day: int = 15) -> datetime:
    return datetime(2026, 6, day, h, tzinfo=UTC)


def reasons(p: Plan) -> set[str]:
    return {b.reason for b in p.blocked}


def test_due_slot_is_created_with_a_deterministic_name() -> None:
    p = plan(policy(), DISK, [], [], NOW, LIMITS)
    assert p.due_slot == hour(12)
    assert [c.name for c in p.creates] == [naming.snapshot_name("data", REF.uid, hour(12))]
    assert p.creates[0].tags[naming.TAG_SLOT] == "2026-06-15T12:00:00Z"
    assert p.creates[0].slot == hour(12)
    assert not p.creates[0].on_demand
    assert p.next_slot == hour(13)
    assert p.accounted_until == hour(12)
    assert p.missed == ()
    assert not p.nothing_to_do


def test_plan_is_idempotent() -> None:
    observed = [ours(hour(h)) for h in range(5, 11)]
    a = plan(policy(), DISK, observed, [], NOW, LIMITS, accounted_until=hour(10))
    b = plan(policy(), DISK, list(reversed(observed)), [], NOW, LIMITS, accounted_until=hour(10))
    assert a == b
    assert [c.name for c in a.creates] == [naming.snapshot_name("data", REF.uid, hour(12))]
    assert a.missed == (hour(11),)


def test_taken_slot_gives_nothing_to_create_and_retention_applies() -> None:
    observed = [ours(hour(h)) for h in range(8, 13)]
    p = plan(policy(), DISK, observed, [], NOW, LIMITS, accounted_until=hour(12))
    assert p.creates == ()
    assert [d.snapshot.name for d in p.deletes] == [ours(hour(8)).name, ours(hour(9)).name]
    assert p.next_time == hour(13)


def test_unowned_and_held_are_never_deleted() -> None:
    observed = [
        foreign("manual-1", hour(1)),
        replace(ours(hour(2)), tags={**ours(hour(2)).tags, naming.TAG_HOLD: "x"}),
        *[ours(hour(h)) for h in range(8, 13)],
    ]
    p = plan(policy(), DISK, observed, [], NOW, LIMITS, accounted_until=hour(12))
    deleted = {d.snapshot.name for d in p.deletes}
    assert "manual-1" not in deleted
    assert ours(hour(2)).name not in deleted
    assert deleted == {ours(hour(8)).name, ours(hour(9)).name}


def test_slot_past_deadline_is_missed_not_taken() -> None:
    now = hour(12) + timedelta(hours=1, minutes=30)  # 13:30; the 13:00 slot is within the 1h deadline
    p = plan(policy(), DISK, [ours(hour(9))], [], now, LIMITS, accounted_until=hour(9))
    assert p.due_slot == hour(13)
    assert p.missed == (hour(10), hour(11), hour(12))
    assert [c.slot for c in p.creates] == [hour(13)]
    assert p.accounted_until == hour(13)


def test_latest_slot_past_deadline_is_missed_too() -> None:
    now = hour(12) + timedelta(minutes=59, seconds=59)
    short = policy(schedule={"startingDeadline": "30m"})
    p = plan(short, DISK, [], [], now, LIMITS, accounted_until=hour(11))
    assert p.due_slot is None
    assert p.creates == ()
    assert p.missed == (hour(12),)
    assert p.accounted_until == hour(12)
    assert p.next_time == hour(13)


def test_first_plan_counts_nothing_before_the_current_slot() -> None:
    p = plan(policy(), DISK, [], [], NOW, LIMITS, accounted_until=None)
    assert p.missed == ()
    late = plan(policy(schedule={"startingDeadline": "5m"}), DISK, [], [], NOW, LIMITS)
    assert late.due_slot is None and late.missed == () and late.accounted_until == hour(12)


def test_missed_slots_are_not_counted_twice() -> None:
    first = plan(policy(), DISK, [], [], hour(15, 15), LIMITS, accounted_until=hour(12, 14))
    assert len(first.missed) == 24 + 2  # 13:00 on the 14th ... 14:00 on the 15th; 15:00 is due
    taken = [ours(hour(15, 15))]
    again = plan(
        policy(), DISK, taken, [], hour(15, 15) + timedelta(minutes=5), LIMITS, accounted_until=first.accounted_until
    )
    assert again.missed == ()
    assert again.creates == ()


def test_suspend_blocks_creates_and_deletes_but_plans_next_time() -> None:
    observed = [ours(hour(h)) for h in range(5, 11)]
    p = plan(policy(suspend=True), DISK, observed, [], NOW, LIMITS, accounted_until=hour(10), on_demand_token="t1")
    assert p.creates == () and p.deletes == ()
    assert reasons(p) == {"Suspended"}
    assert p.next_time == hour(13)
    assert p.missed == ()  # skipped on purpose
    assert p.accounted_until == hour(12)
    assert p.retention.delete  # still decided, for the status


def test_rate_window_blocks_until_the_oldest_create_leaves_it() -> None:
    recent = [NOW - timedelta(minutes=4, seconds=30 - i) for i in range(7)]
    p = plan(policy(), DISK, [], recent, NOW, LIMITS, accounted_until=hour(11))
    assert p.creates == ()
    [blocked] = p.blocked
    assert blocked.reason == "RateWindow"
    assert blocked.until == recent[0] + timedelta(minutes=5)
    assert p.next_time == blocked.until
    assert p.accounted_until == hour(12) - timedelta(seconds=1)  # the due slot is not accounted yet
    assert p.missed == ()


def test_rate_window_ignores_creates_outside_it() -> None:
    recent = [NOW - timedelta(minutes=5, seconds=1)] * 20 + [NOW - timedelta(minutes=1)] * 6
    p = plan(policy(), DISK, [], recent, NOW, LIMITS)
    assert len(p.creates) == 1


def test_rate_window_lets_the_scheduled_create_through_before_on_demand() -> None:
    recent = [NOW - timedelta(minutes=1)] * 6
    p = plan(policy(), DISK, [], recent, NOW, LIMITS, on_demand_token="t1")
    assert [c.on_demand for c in p.creates] == [False]
    [blocked] = p.blocked
    assert blocked.reason == "RateWindow"
    assert blocked.until == NOW - timedelta(minutes=1) + timedelta(minutes=5)


def test_per_disk_cap_counts_every_incremental_snapshot_and_retention_first() -> None:
    limits = Limits(per_disk_cap=6)
    foreign_ones = [foreign(f"manual-{i}", hour(i)) for i in range(3)]
    mine = [ours(hour(h)) for h in (9, 10, 11)]
    # 6 incremental snapshots, keepLast 3 keeps all of ours: at the cap
    p = plan(policy(), DISK, [*foreign_ones, *mine], [], NOW, limits, accounted_until=hour(11))
    assert p.creates == ()
    assert reasons(p) == {"PerDiskCap"}
    # one of ours is surplus under keepLast 2: its deletion makes room
    p = plan(policy(retention={"keepLast": 2}), DISK, [*foreign_ones, *mine], [], NOW, limits, accounted_until=hour(11))
    assert [d.snapshot.name for d in p.deletes] == [mine[0].name]
    assert len(p.creates) == 1
    assert p.blocked == ()


def test_full_snapshots_do_not_count_against_the_cap() -> None:
    limits = Limits(per_disk_cap=2)
    full = [foreign(f"full-{i}", hour(i), incremental=False) for i in range(5)]
    p = plan(policy(), DISK, full, [], NOW, limits)
    assert len(p.creates) == 1


def test_pending_copies_block_background_copy_disks() -> None:
    copying = [ours(hour(h), disk=ULTRA, completion_percent=50.0) for h in (9, 10, 11)]
    p = plan(policy(), ULTRA, copying, [], NOW, LIMITS, accounted_until=hour(11))
    assert p.creates == ()
    assert reasons(p) == {"PendingCopies"}
    assert p.next_time == NOW + timedelta(minutes=5)
    two = plan(policy(), ULTRA, copying[:2], [], NOW, LIMITS, accounted_until=hour(11))
    assert len(two.creates) == 1
    # the same three snapshots on a standard disk block nothing
    standard = plan(policy(), DISK, [ours(hour(h), completion_percent=50.0) for h in (9, 10, 11)], [], NOW, LIMITS)
    assert len(standard.creates) == 1


def test_disk_still_copying_blocks_snapshots() -> None:
    disk = replace(ULTRA, completion_percent=30.0)
    p = plan(policy(), disk, [], [], NOW, LIMITS)
    assert p.creates == ()
    assert reasons(p) == {"DiskCopying"}
    assert p.accounted_until == hour(12) - timedelta(seconds=1)


def test_in_progress_snapshot_for_the_due_slot() -> None:
    p = plan(policy(), DISK, [ours(hour(12), "Creating")], [], NOW, LIMITS)
    assert p.creates == ()
    assert reasons(p) == {"InProgress"}
    assert p.next_time == NOW + timedelta(minutes=1)
    assert p.accounted_until == hour(12) - timedelta(seconds=1)  # open until the snapshot is usable


def test_failed_snapshot_for_the_due_slot_is_retried_under_a_new_name() -> None:
    first = ours(hour(12), "Failed")
    p = plan(policy(), DISK, [first], [], NOW, LIMITS, accounted_until=hour(11))
    [retry] = p.creates
    assert retry.slot == hour(12)
    assert retry.name == naming.snapshot_name("data", REF.uid, hour(12), attempt=2) == first.name + "-r2"
    # planned as taken; the reconciler holds the watermark below the slot if this create fails too
    assert p.accounted_until == hour(12)
    # the same observation asks for the same name
    assert plan(policy(), DISK, [first], [], NOW, LIMITS, accounted_until=hour(11)).creates == p.creates


def test_a_slot_whose_snapshots_all_failed_is_given_up_and_then_missed() -> None:
    failed = [
        replace(ours(hour(12), "Failed"), name=naming.snapshot_name("data", REF.uid, hour(12), attempt=n))
        for n in range(1, naming.MAX_ATTEMPTS + 1)
    ]
    p = plan(policy(), DISK, failed, [], NOW, LIMITS, accounted_until=hour(11))
    assert p.creates == ()
    assert "RetriesExhausted" in reasons(p)
    assert p.accounted_until == hour(12) - timedelta(seconds=1)
    # past the deadline the slot is counted missed, once
    later = plan(
        policy(), DISK, failed[:1], [], hour(13) + timedelta(minutes=5), LIMITS, accounted_until=p.accounted_until
    )
    assert later.missed == (hour(12),)
    assert [c.slot for c in later.creates] == [hour(13)]


def test_on_demand_creates_one_extra_snapshot() -> None:
    observed = [ours(hour(12))]
    p = plan(policy(), DISK, observed, [], NOW, LIMITS, on_demand_token="t1", last_on_demand_token="t0")
    [create] = p.creates
    assert create.on_demand
    assert create.slot == NOW.replace(second=0)
    assert create.name == naming.snapshot_name("data", REF.uid, NOW, on_demand=True)
    assert create.tags[naming.TAG_KIND] == "on-demand"
    # the same token again (already recorded) does nothing
    assert (
        plan(policy(), DISK, observed, [], NOW, LIMITS, on_demand_token="t1", last_on_demand_token="t1").creates == ()
    )


def test_on_demand_made_but_not_recorded_is_not_made_twice() -> None:
    first = plan(policy(), DISK, [ours(hour(12))], [], NOW, LIMITS, on_demand_token="t1")
    [create] = first.creates
    made = Snapshot(
        id="/x/od",
        name=create.name,
        resource_group="rg",
        location="westeurope",
        source_resource_id=DISK_ID,
        source_unique_id=DISK.unique_id,
        time_created=NOW,
        provisioning_state="Succeeded",
        tags=create.tags,
    )
    later = NOW + timedelta(minutes=3)
    again = plan(policy(), DISK, [ours(hour(12)), made], [NOW], later, LIMITS, on_demand_token="t1")
    assert [c.name for c in again.creates] == [create.name]  # the same name: nothing new, lets the caller record it


def test_on_demand_does_not_take_the_place_of_a_slot() -> None:
    od_slot = hour(12)
    on_demand = Snapshot(
        id="/x/od",
        name=naming.snapshot_name("data", REF.uid, od_slot, on_demand=True),
        resource_group="rg",
        location="westeurope",
        source_resource_id=DISK_ID,
        source_unique_id=DISK.unique_id,
        time_created=od_slot,
        provisioning_state="Succeeded",
        tags=naming.ownership_tags(REF, DISK, od_slot, on_demand=True),
    )
    p = plan(policy(), DISK, [on_demand], [], NOW, LIMITS)
    assert [c.slot for c in p.creates] == [hour(12)]


def test_jitter_delays_the_due_time_but_not_the_name() -> None:
    jittered = policy(schedule={"jitter": "30m"})
    offset = slot_offset(jittered.spec.schedule, DISK_ID)
    before = plan(jittered, DISK, [ours(hour(11))], [], hour(12) + offset - timedelta(seconds=1), LIMITS)
    assert before.due_slot == hour(11) and before.creates == ()
    assert before.next_time == hour(12) + offset
    at = plan(jittered, DISK, [ours(hour(11))], [], hour(12) + offset, LIMITS)
    assert [c.name for c in at.creates] == [naming.snapshot_name("data", REF.uid, hour(12))]


def test_next_time_includes_retention_expiry() -> None:
    aged = policy(retention={"keepLast": None, "maxAge": "90m"})
    p = plan(aged, DISK, [ours(hour(11)), ours(hour(12))], [], NOW, LIMITS)
    assert p.next_time == hour(12) + timedelta(minutes=30)  # the 11:00 snapshot ages out at 12:30


def test_a_plan_wakes_for_the_state_after_its_creates_succeed() -> None:
    p = plan(policy(), DISK, [], [], NOW, LIMITS)
    assert len(p.creates) == 1
    assert p.next_time == hour(13)  # the caller looks sooner if the create does not succeed


def test_the_plan_looks_ahead_at_what_its_creates_make_unnecessary() -> None:
    old = ours(hour(11))
    p = plan(policy(retention={"keepLast": 1}), DISK, [old], [], NOW, LIMITS)
    assert [c.slot for c in p.creates] == [hour(12)]
    assert p.deletes == ()  # the newest good one stays until the new one exists
    assert [d.snapshot.name for d in p.deletes_after_creates] == [old.name]
    assert "keepLast 1" in p.deletes_after_creates[0].reason


def test_schedule_in_a_zone() -> None:
    berlin = policy(schedule={"cron": "0 2 * * *", "timeZone": "Europe/Berlin"})
    p = plan(berlin, DISK, [], [], datetime(2026, 6, 15, 0, 30, tzinfo=UTC), LIMITS)
    assert p.due_slot == datetime(2026, 6, 15, 0, 0, tzinfo=UTC)  # 02:00 CEST
    assert p.next_slot == datetime(2026, 6, 16, 0, 0, tzinfo=UTC)


def test_a_slot_below_the_watermark_is_never_taken_twice() -> None:
    # the 12:00 snapshot was made (watermark 12:00) and has since gone: it is not made again
    p = plan(policy(), DISK, [ours(hour(11))], [], NOW, LIMITS, accounted_until=hour(12))
    assert p.due_slot == hour(12)
    assert p.creates == ()
    assert p.missed == ()
    assert p.accounted_until == hour(12)


def test_on_demand_newer_than_the_slot_does_not_make_retention_churn() -> None:
    od_slot = NOW.replace(second=0)
    first = plan(policy(retention={"keepLast": 1}), DISK, [], [], NOW, LIMITS, on_demand_token="t1")
    assert len(first.creates) == 2
    made = [
        Snapshot(
            id=f"/x/{c.name}",
            name=c.name,
            resource_group="rg",
            location="westeurope",
            source_resource_id=DISK_ID,
            source_unique_id=DISK.unique_id,
            time_created=NOW,
            provisioning_state="Succeeded",
            tags=c.tags,
        )
        for c in first.creates
    ]
    later = NOW + timedelta(minutes=1)
    second = plan(
        policy(retention={"keepLast": 1}),
        DISK,
        made,
        [NOW, NOW],
        later,
        LIMITS,
        accounted_until=first.accounted_until,
        on_demand_token="t1",
        last_on_demand_token="t1",
    )
    # retention keeps only the newest (the on-demand one, slot 12:10) and drops the 12:00 one ...
    assert [d.snapshot.name for d in second.deletes] == [naming.snapshot_name("data", REF.uid, hour(12))]
    assert od_slot > hour(12)
    # ... which is then never made again for the same slot
    gone = [s for s in made if s.name not in {d.snapshot.name for d in second.deletes}]
    third = plan(
        policy(retention={"keepLast": 1}), DISK, gone, [NOW, NOW], later, LIMITS, accounted_until=second.accounted_until
    )
    assert third.creates == ()


def test_rate_window_message_counts_the_creates_due_at_once() -> None:
    # nothing made in the window, but a slot and an on-demand request are due together and Azure allows one
    p = plan(policy(), DISK, [], [], NOW, Limits(window_creates=1), on_demand_token="t1")
    assert [c.on_demand for c in p.creates] == [False]
    [blocked] = p.blocked
    assert blocked.reason == "RateWindow"
    assert blocked.message == (
        "0 snapshot(s) of disk data were created in the last 5 minutes and 2 are due now (scheduled slot "
        "2026-06-15T12:00:00Z, on-demand request); Azure allows 1 in 5 minutes, so 1 can be created now."
    )
    assert blocked.until == NOW + timedelta(minutes=5)
