"""Reconciler against the in-memory cloud: observe -> plan -> act -> report, with a hand-moved clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.status import fold_status as fold

from azsnap.clock import ManualClock
from azsnap.cloud.errors import PermanentError, Throttled
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.conditions import HealthState
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.retention import decide_retention
from azsnap.domain.scope import ScopeGuard
from azsnap.reconciler import Reconciler, StatusReport

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-demo"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


def make_policy(disk: Disk, uid: str = "uid-1", name: str = "p1", **spec: Any) -> Policy:
    body: dict[str, Any] = {
        "disk": {"id": disk.id},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 3},
    }
    body.update(spec)
    return Policy(PolicyRef("default", name, uid, 1), SnapshotPolicySpec.model_validate(body))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def cloud(clock: ManualClock) -> MemoryCloud:
    return MemoryCloud(clock)


@pytest.fixture
def disk(cloud: MemoryCloud) -> Disk:
    return cloud.add_disk(SUB, RG, "disk-0")


async def run_until(
    reconciler: Reconciler, policy: Policy, clock: ManualClock, end: datetime
) -> tuple[SnapshotPolicyStatus, list[StatusReport]]:
    status = SnapshotPolicyStatus()
    reports = []
    while clock.now() < end:
        report = await reconciler.reconcile(policy, status)
        reports.append(report)
        status = fold(status, report)
        assert report.next_time > clock.now()
        clock.set(min(report.next_time, end))
    return status, reports


async def test_first_reconcile_takes_the_current_slot_and_fills_status(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    report = await reconciler.reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert report.health.state is HealthState.READY
    assert len(report.created) == 1
    (snap,) = cloud.snapshots
    assert naming.slot_of(snap) == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    status = report.status
    assert status["snapshotCount"] == 1
    assert status["diskSnapshotCount"] == 1
    assert status["diskSnapshotLimit"] == 500
    assert status["lastSnapshot"]["name"] == snap.name
    assert status["lastSnapshot"]["state"] == "Succeeded"
    assert status["lastSuccessfulSnapshotTime"] is not None
    assert status["nextSnapshotTime"] == "2026-03-02T10:00:00Z"
    assert status["missedSlots"] == 0
    assert status["diskName"] == "disk-0"
    assert report.next_time == datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert [e.reason for e in report.events] == ["SnapshotCreated"]


async def test_reconcile_is_idempotent(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk)
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(policy, SnapshotPolicyStatus()))
    clock.advance(timedelta(minutes=1))
    again = await reconciler.reconcile(policy, status)
    assert again.created == ()
    assert len(cloud.snapshots) == 1


async def test_three_days_of_gfs_keep_exactly_what_retention_says(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk, retention={"hourly": 6, "daily": 2, "keepLast": 2})
    status, _ = await run_until(reconciler, policy, clock, START + timedelta(days=3))
    held = cloud.snapshots
    slots = sorted(naming.slot_of(s) for s in held)
    assert len(slots) == len(set(slots)), "one snapshot per slot"
    decision = decide_retention(policy.spec.retention, policy.spec.schedule.zone, held, clock.now(), cloud.limits)
    assert decision.delete == {}, "everything retention would delete is already gone"
    # 6 hourly + the newest of 2 days (one of which is among the hourly ones) + keepLast 2 (within hourly).
    assert 6 <= len(held) <= 8
    assert status.missed_slots == 0
    assert cloud.calls["snapshots.create"] == 73  # 09:00 on day 0 to 09:00 on day 3


async def test_two_policies_in_one_group_share_one_list_call(clock, cloud) -> None:
    disks = [cloud.add_disk(SUB, RG, f"disk-{i}") for i in range(10)]
    reconciler = Reconciler(cloud, clock)
    for i, d in enumerate(disks):
        await reconciler.reconcile(make_policy(d, uid=f"u{i}", name=f"p{i}"), SnapshotPolicyStatus())
    assert cloud.calls["snapshots.list"] == 1
    assert cloud.calls["snapshots.create"] == 10


async def test_the_disk_window_is_shared_and_counts_foreign_snapshots(clock, cloud, disk) -> None:
    for i in range(7):
        cloud.seed_snapshot(disk, f"someone-else-{i}", created_at=clock.now() - timedelta(minutes=1))
    reconciler = Reconciler(cloud, clock)
    report = await reconciler.reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert report.created == ()
    assert report.health.state is HealthState.RETRYING
    assert report.health.reason == "RateLimited"
    assert "RateLimited" in [e.reason for e in report.events]
    assert report.next_time <= clock.now() + timedelta(minutes=5)
    clock.set(report.next_time)
    later = await reconciler.reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert len(later.created) == 1


async def test_missing_disk_stalls_without_touching_snapshots(clock, cloud) -> None:
    ghost = Disk(
        id=f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/ghost",
        name="ghost",
        subscription_id=SUB,
        resource_group=RG,
        location="westeurope",
        unique_id="x",
    )
    report = await Reconciler(cloud, clock).reconcile(make_policy(ghost), SnapshotPolicyStatus())
    assert report.health.state is HealthState.STALLED
    assert report.health.reason == "DiskNotFound"
    assert "spec.disk.id" in report.health.message
    assert cloud.calls["snapshots.list"] == 1  # to count what azsnap holds of the disk: nothing here
    assert "azsnap holds 0 snapshot(s) of it" in report.health.message
    assert cloud.calls["snapshots.create"] == 0


async def test_a_schedule_the_schema_cannot_catch_stalls_with_no_azure_call(clock, cloud, disk) -> None:
    policy = make_policy(disk, schedule={"cron": "*/5 * * * *"})
    report = await Reconciler(cloud, clock).reconcile(policy, SnapshotPolicyStatus())
    assert report.health.state is HealthState.STALLED
    assert report.health.reason == "InvalidSpec"
    assert "spec.schedule.cron" in report.health.message
    assert sum(cloud.calls.values()) == 0


async def test_throttling_retries_later_and_deletes_nothing(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk, retention={"keepLast": 1})
    status, _ = await run_until(reconciler, policy, clock, START + timedelta(hours=3))
    before = {s.name for s in cloud.snapshots}
    clock.set(START + timedelta(hours=4))  # the 13:00 slot is due
    cloud.fail_next("snapshots.create", Throttled("Too many requests", retry_after=42, status=429), times=1)
    report = await reconciler.reconcile(policy, status)
    assert report.health.state is HealthState.RETRYING
    assert report.health.reason == "Throttled"
    assert report.deleted == ()
    assert {s.name for s in cloud.snapshots} == before
    assert report.next_time == clock.now() + timedelta(seconds=42)
    status = fold(status, report)
    clock.set(report.next_time)
    recovered = await reconciler.reconcile(policy, status)
    assert recovered.health.state is HealthState.READY
    assert len(recovered.created) == 1
    assert len(cloud.snapshots) == 1


async def test_authorization_failure_stalls_with_what_to_do(clock, cloud, disk) -> None:
    cloud.fail_next("snapshots.create", PermanentError("no", code="AuthorizationFailed", status=403))
    report = await Reconciler(cloud, clock).reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert report.health.state is HealthState.STALLED
    assert report.health.reason == "AuthorizationFailed"
    assert "azure-setup" in report.health.message


async def test_suspend_creates_and_deletes_nothing(clock, cloud, disk) -> None:
    old = cloud.seed_snapshot(
        disk,
        "old",
        tags=naming.ownership_tags(PolicyRef("default", "p1", "uid-1"), disk, START - timedelta(days=30)),
        created_at=START - timedelta(days=30),
    )
    report = await Reconciler(cloud, clock).reconcile(make_policy(disk, suspend=True), SnapshotPolicyStatus())
    assert report.health.reason == "Suspended"
    assert report.created == () and report.deleted == ()
    assert [s.name for s in cloud.snapshots] == [old.name]
    assert "Suspended" in [e.reason for e in report.events]


async def test_on_demand_token_triggers_once(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk)
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(policy, SnapshotPolicyStatus()))
    clock.advance(timedelta(minutes=10))
    report = await reconciler.reconcile(policy, status, on_demand_token="t1")
    assert len(report.created) == 1
    assert report.status["lastOnDemandToken"] == "t1"
    status = fold(status, report)
    clock.advance(timedelta(minutes=10))
    again = await reconciler.reconcile(policy, status, on_demand_token="t1")
    assert again.created == ()
    assert len(cloud.snapshots) == 2


async def test_finalize_delete_removes_only_its_own_unheld_snapshots(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk, deletionPolicy="Delete", retention={"keepLast": 5})
    await run_until(reconciler, policy, clock, START + timedelta(hours=3))
    foreign = cloud.seed_snapshot(disk, "manual-backup")
    held_tags = {**naming.ownership_tags(policy.ref, disk, START - timedelta(days=1)), naming.TAG_HOLD: "legal"}
    held = cloud.seed_snapshot(disk, "held", tags=held_tags, created_at=START - timedelta(days=1))
    report = await reconciler.finalize(policy)
    assert report.done
    assert {s.name for s in cloud.snapshots} == {foreign.name, held.name}


async def test_finalize_retain_keeps_everything(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk)
    await run_until(reconciler, policy, clock, START + timedelta(hours=2))
    count = len(cloud.snapshots)
    report = await reconciler.finalize(policy)
    assert report.done and report.deleted == ()
    assert len(cloud.snapshots) == count


async def test_scope_refusal_makes_no_azure_call(clock, cloud, disk) -> None:
    guard = ScopeGuard.from_yaml("- namespaces: [team-a]\n  subscriptions: ['*']\n  diskResourceGroups: [rg-team-a]\n")
    report = await Reconciler(cloud, clock, scope=guard).reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert report.health.reason == "ScopeNotAllowed"
    assert sum(cloud.calls.values()) == 0


async def test_operator_down_counts_missed_slots_and_takes_one_catch_up(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk, retention={"keepLast": 10})
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(policy, SnapshotPolicyStatus()))
    clock.set(START + timedelta(hours=5, minutes=30))  # slots 10:00 .. 13:00 are past their 1h deadline
    report = await reconciler.reconcile(policy, status)
    assert len(report.created) == 1  # the 14:00 slot, still within its deadline
    assert report.status["missedSlots"] == 4
    status = fold(status, report)
    clock.advance(timedelta(minutes=1))
    again = await reconciler.reconcile(policy, status)
    assert again.status["missedSlots"] == 4, "missed slots are counted once"
