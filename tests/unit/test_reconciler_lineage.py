"""Lineage: a policy governs its snapshots of the disk's ARM ID across incarnations (recreate, restore in place)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
import pytest
from tests.support.status import fold_status

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.conditions import HealthState
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.handlers import policy as handlers
from azsnap.handlers.runtime import MEMO_KEY, Runtime
from azsnap.metrics import Metrics
from azsnap.reconciler import Reconciler
from azsnap.reconciler.report import StatusReport
from azsnap.settings import Settings

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-demo"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


def make_policy(disk: Disk, uid: str = "uid-1", name: str = "p1", **spec: Any) -> Policy:
    body: dict[str, Any] = {"disk": {"id": disk.id}, "schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 3}}
    body.update(spec)
    return Policy(PolicyRef("default", name, uid, 1), SnapshotPolicySpec.model_validate(body))


def fold(status: SnapshotPolicyStatus, report: StatusReport) -> SnapshotPolicyStatus:
    return fold_status(status, report, ready_at=START)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def cloud(clock: ManualClock) -> MemoryCloud:
    return MemoryCloud(clock)


async def test_a_recreate_between_two_policies_slots_leaves_the_second_snapshot_owned(clock, cloud) -> None:
    old = cloud.add_disk(SUB, RG, "data")
    first = make_policy(old, "uid-1", "hourly")
    second = make_policy(old, "uid-2", "five-past", schedule={"cron": "5 * * * *"})
    reconciler = Reconciler(cloud, clock)
    assert len((await reconciler.reconcile(first, SnapshotPolicyStatus())).created) == 1  # the disk is now cached
    clock.advance(timedelta(minutes=2))
    cloud.remove_disk(old.id)
    new = cloud.add_disk(SUB, RG, "data")  # same ARM ID, new unique ID
    assert new.unique_id != old.unique_id
    clock.advance(timedelta(minutes=3))  # 09:05:30, inside the disk cache's freshness
    report = await reconciler.reconcile(second, SnapshotPolicyStatus())
    [name] = report.created
    made = next(s for s in cloud.snapshots if s.name == name)
    assert made.source_unique_id == new.unique_id  # Azure copied the new disk ...
    assert naming.tag(made.tags, naming.TAG_DISK_UID) == old.unique_id  # ... while the cache named the old one
    assert naming.is_owned(made, second.ref, new)  # yet the snapshot is the policy's
    # the next reconcile reads the disk again, counts the snapshot and tells of the new incarnation
    clock.advance(timedelta(minutes=1))
    again = await reconciler.reconcile(second, fold(SnapshotPolicyStatus(), report))
    assert again.health.state is HealthState.READY, again.health
    assert again.status["snapshotCount"] == 1
    assert again.status["earlierIncarnations"] == 0
    assert again.status["diskUniqueId"] == new.unique_id
    assert [e.reason for e in again.events if e.reason == "NewDiskIncarnation"] == ["NewDiskIncarnation"]
    assert again.created == ()


async def test_an_on_demand_snapshot_right_after_a_recreate_is_owned(clock, cloud) -> None:
    old = cloud.add_disk(SUB, RG, "data")
    policy = make_policy(old)
    reconciler = Reconciler(cloud, clock)
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(policy, SnapshotPolicyStatus()))
    cloud.remove_disk(old.id)
    new = cloud.add_disk(SUB, RG, "data")  # restored in place: a new disk under the old name
    clock.advance(timedelta(minutes=1))
    report = await reconciler.reconcile(policy, status, on_demand_token="after-restore")
    [name] = report.created
    made = next(s for s in cloud.snapshots if s.name == name)
    assert made.source_unique_id == new.unique_id
    assert naming.is_owned(made, policy.ref, new)
    status = fold(status, report)
    clock.advance(timedelta(minutes=1))
    report = await reconciler.reconcile(policy, status)
    assert report.status["snapshotCount"] == 2  # the first incarnation's slot snapshot and the on-demand one


async def test_after_a_recreate_the_old_family_follows_retention_with_the_new_one(clock, cloud) -> None:
    old = cloud.add_disk(SUB, RG, "data")
    policy = make_policy(old, retention={"maxAge": "1d"})
    for hours in range(1, 8):
        slot = START.replace(second=0) - timedelta(hours=hours)
        cloud.seed_snapshot(
            old,
            naming.snapshot_name(old.name, policy.ref.uid, slot),
            tags=naming.snapshot_tags(policy, old, slot),
            created_at=slot,
        )
    cloud.remove_disk(old.id)
    new = cloud.add_disk(SUB, RG, "data")
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    for _ in range(60):  # hourly for about two days
        report = await reconciler.reconcile(policy, status)
        assert report.health.state is HealthState.READY, report.health
        status = fold(status, report)
        clock.set(max(report.next_time, clock.now() + timedelta(seconds=1)))
    mine = [s for s in cloud.snapshots if naming.is_owned(s, policy.ref, new)]
    earlier = [s for s in mine if s.source_unique_id == old.unique_id]
    # maxAge 1d deleted the old family but its newest good snapshot: the last copy of a disk that is gone
    assert [s.name for s in earlier] == [
        naming.snapshot_name("data", policy.ref.uid, START.replace(second=0) - timedelta(hours=1))
    ]
    later = [s for s in mine if s.source_unique_id == new.unique_id]
    assert 24 <= len(later) <= 26  # the new family on schedule, a day's worth kept
    assert report.status["snapshotCount"] == len(mine)
    assert report.status["earlierIncarnations"] == 1
    assert report.status["diskSnapshotCount"] == len(mine)


async def run_hours(reconciler: Reconciler, policy: Policy, clock: ManualClock, hours: int) -> StatusReport:
    """Reconcile as the operator would (at each report's next time) for `hours`; the last report."""
    status = SnapshotPolicyStatus()
    end = clock.now() + timedelta(hours=hours)
    report = await reconciler.reconcile(policy, status)
    while clock.now() < end:
        status = fold(status, report)
        clock.set(max(report.next_time, clock.now() + timedelta(seconds=1)))
        report = await reconciler.reconcile(policy, status)
    return report


@pytest.mark.parametrize("mode", ["Keep", "ApplyRetention"])
async def test_a_deleted_disk_keeps_or_retires_its_snapshots_by_on_source_disk_delete(clock, cloud, mode) -> None:
    disk = cloud.add_disk(SUB, RG, "data")
    policy = make_policy(disk, retention={"maxAge": "1d"}, onSourceDiskDelete=mode)
    reconciler = Reconciler(cloud, clock)
    before = await run_hours(reconciler, policy, clock, 12)
    assert before.status["snapshotCount"] == len(cloud.snapshots) > 12
    made = len(cloud.snapshots)
    cloud.remove_disk(disk.id)
    # between slots the snapshot list stands for the disk (nothing is written, nothing is read) ...
    clock.advance(timedelta(minutes=20))
    between = await reconciler.reconcile(policy, fold(SnapshotPolicyStatus(), before))
    assert between.health.reason == "Succeeded"
    assert (between.created, between.deleted) == ((), ())
    # ... and at the next slot Azure's NotFound for the create has the disk read at once
    clock.set(between.next_time)
    first = await reconciler.reconcile(policy, fold(SnapshotPolicyStatus(), before))
    assert first.health.reason == "DiskNotFound"
    assert [e.reason for e in first.events] == ["DiskNotFound"]
    status = fold(fold(SnapshotPolicyStatus(), before), first)
    for _ in range(6 * 24 * 3):  # three days, every 10 minutes
        clock.set(first.next_time)
        first = await reconciler.reconcile(policy, status)
        status = fold(status, first)
        assert first.health.reason == "DiskNotFound"
        assert not [e for e in first.events if e.reason == "DiskNotFound"]  # said once, when the disk went
    left = [s for s in cloud.snapshots if naming.owns(s, policy.ref, disk.id)]
    if mode == "Keep":
        assert len(left) == made
        assert "onSourceDiskDelete is Keep" in first.health.message
    else:
        # maxAge 1d ran on, but the newest good snapshot is the last copy of the disk and stays
        assert [s.time_created for s in left] == [max(s.time_created for s in cloud.snapshots)]
        assert "onSourceDiskDelete is ApplyRetention" in first.health.message
    assert f"azsnap holds {len(left)} snapshot(s) of it" in first.health.message
    assert first.status["snapshotCount"] == len(left)
    assert first.status["earlierIncarnations"] == len(left)
    assert first.status["nextSnapshotTime"] is None


async def test_apply_retention_on_a_deleted_disk_honours_min_keep_and_holds(clock, cloud) -> None:
    disk = cloud.add_disk(SUB, RG, "data")
    policy = make_policy(disk, retention={"keepLast": 2, "minKeep": 1}, onSourceDiskDelete="ApplyRetention")
    for hours in range(1, 7):
        slot = START.replace(second=0) - timedelta(hours=hours)
        tags = naming.snapshot_tags(policy, disk, slot)
        if hours == 6:
            tags[naming.TAG_HOLD] = "audit"
        cloud.seed_snapshot(disk, naming.snapshot_name("data", "uid-1", slot), tags=tags, created_at=slot)
    cloud.seed_snapshot(disk, "by-hand", created_at=START - timedelta(days=9))
    cloud.remove_disk(disk.id)
    report = await Reconciler(cloud, clock).reconcile(policy, SnapshotPolicyStatus())
    names = sorted(s.name for s in cloud.snapshots)
    slot = START.replace(second=0)
    assert names == sorted(
        [
            "by-hand",  # not azsnap's
            naming.snapshot_name("data", "uid-1", slot - timedelta(hours=1)),  # keepLast 2
            naming.snapshot_name("data", "uid-1", slot - timedelta(hours=2)),
            naming.snapshot_name("data", "uid-1", slot - timedelta(hours=6)),  # held
        ]
    )
    assert len(report.events) == 4  # three deletes, then the disk's disappearance
    assert report.status["snapshotCount"] == 3
    assert report.status["diskSnapshotCount"] == 4


async def test_through_the_handler_the_gauge_matches_the_status_while_the_disk_is_gone(
    clock, cloud, monkeypatch
) -> None:
    posted: list[str] = []
    monkeypatch.setattr(kopf, "event", lambda obj, *, type, reason, message="": posted.append(reason))
    disk = cloud.add_disk(SUB, RG, "data")
    policy = make_policy(disk, "uid-p1")
    for hours in (1, 2):
        slot = START.replace(second=0) - timedelta(hours=hours)
        tags = naming.snapshot_tags(policy, disk, slot)
        cloud.seed_snapshot(disk, naming.snapshot_name("data", "uid-p1", slot), tags=tags, created_at=slot)
    cloud.remove_disk(disk.id)
    metrics = Metrics()
    runtime = Runtime(Settings.model_validate({"metrics_port": 0}), clock, cloud, Reconciler(cloud, clock), metrics)
    raw = {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "p1", "namespace": "default", "uid": "uid-p1", "generation": 1},
        "spec": {"disk": {"id": disk.id}, "schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 3}},
        "status": {"snapshotCount": 5, "nextSnapshotTime": "2026-03-02T10:00:00Z"},
    }
    patch = kopf.Patch()
    await handlers.reconcile(body=kopf.Body(raw), patch=patch, memo=kopf.Memo({MEMO_KEY: runtime}))
    status = patch["status"]
    assert status["snapshotCount"] == status["earlierIncarnations"] == 2
    assert status["nextSnapshotTime"] is None  # removed by the merge patch
    assert metrics.registry.get_sample_value("azsnap_snapshots_held", {"namespace": "default"}) == 2
    assert posted == ["DiskNotFound"]
