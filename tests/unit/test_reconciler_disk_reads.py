"""When the snapshot list stands for a disk instead of a read, and when the disk is read (in-memory cloud)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.status import fold_status

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler import Reconciler
from azsnap.reconciler.report import StatusReport

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-demo"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
REF = PolicyRef("default", "p1", "uid-1", 1)


def make_policy(disk: Disk, **spec: Any) -> Policy:
    body: dict[str, Any] = {"disk": {"id": disk.id}, "schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 3}}
    body.update(spec)
    return Policy(REF, SnapshotPolicySpec.model_validate(body))


def fold(status: SnapshotPolicyStatus, report: StatusReport) -> SnapshotPolicyStatus:
    return fold_status(status, report, ready_at=START)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def cloud(clock: ManualClock) -> MemoryCloud:
    return MemoryCloud(clock)


@pytest.fixture
def disk(cloud: MemoryCloud) -> Disk:
    return cloud.add_disk(SUB, RG, "data")


async def test_the_list_stands_for_the_disk_between_reads_at_most_reverify_apart(clock, cloud, disk) -> None:
    policy = make_policy(disk)
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    reads = []
    for _ in range(7):  # 09:00 .. 15:00, one slot an hour
        report = await reconciler.reconcile(policy, status)
        status = fold(status, report)
        assert len(report.created) == 1, report.health
        reads.append(cloud.calls["disks.get"])
        clock.set(report.next_time)
    # the first reconcile reads (09:00:30); the list stands for the disk until REVERIFY (3 h) after a read: 12:00 is
    # inside them, 13:00 is not
    assert reads == [1, 1, 1, 1, 2, 2, 2]
    assert all(s.source_unique_id == disk.unique_id for s in cloud.snapshots)


async def test_a_disk_with_no_snapshot_listed_is_read(clock, cloud, disk) -> None:
    policy = make_policy(disk, suspend=True)  # nothing is made, so the list has nothing to tell of the disk
    reconciler = Reconciler(cloud, clock)
    report = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    clock.set(report.next_time)
    await reconciler.reconcile(policy, fold(SnapshotPolicyStatus(), report))
    assert cloud.calls["disks.get"] == 2


async def test_a_recreated_disk_with_a_new_unique_id_on_the_list_is_read_at_once(clock, cloud, disk) -> None:
    policy = make_policy(disk)
    reconciler = Reconciler(cloud, clock)
    first = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    cloud.remove_disk(disk.id)
    new = cloud.add_disk(SUB, RG, "data")  # same ARM ID, new unique ID
    cloud.seed_snapshot(new, "someone-elses-backup", created_at=START + timedelta(minutes=30))
    clock.set(first.next_time)
    report = await reconciler.reconcile(policy, fold(SnapshotPolicyStatus(), first))
    assert cloud.calls["disks.get"] == 2
    [name] = report.created
    made = next(s for s in cloud.snapshots if s.name == name)
    assert naming.tag(made.tags, naming.TAG_DISK_UID) == new.unique_id  # the tags name the incarnation read
    assert report.status["diskUniqueId"] == new.unique_id
    assert [e.reason for e in report.events if e.reason == "NewDiskIncarnation"] == ["NewDiskIncarnation"]


async def test_a_recreated_disk_with_nothing_listed_yet_is_caught_by_the_create(clock, cloud, disk) -> None:
    policy = make_policy(disk)
    reconciler = Reconciler(cloud, clock)
    first = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    status = fold(SnapshotPolicyStatus(), first)
    cloud.remove_disk(disk.id)
    new = cloud.add_disk(SUB, RG, "data")
    clock.set(first.next_time)
    second = await reconciler.reconcile(policy, status)
    assert cloud.calls["disks.get"] == 1  # the list still showed only the old incarnation
    [name] = second.created
    made = next(s for s in cloud.snapshots if s.name == name)
    assert made.source_unique_id == new.unique_id  # Azure took it from the disk as it is
    assert naming.is_owned(made, policy.ref, new)
    clock.advance(timedelta(minutes=1))
    third = await reconciler.reconcile(policy, fold(status, second))
    assert cloud.calls["disks.get"] == 2  # the create's answer told of the new incarnation: read again
    assert third.status["diskUniqueId"] == new.unique_id
    assert [e.reason for e in third.events if e.reason == "NewDiskIncarnation"] == ["NewDiskIncarnation"]


async def test_a_deleted_disk_is_read_when_its_create_meets_not_found(clock, cloud, disk) -> None:
    policy = make_policy(disk)
    reconciler = Reconciler(cloud, clock)
    first = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    cloud.remove_disk(disk.id)
    clock.set(first.next_time)
    report = await reconciler.reconcile(policy, fold(SnapshotPolicyStatus(), first))
    assert report.health.reason == "DiskNotFound"
    assert [e.reason for e in report.events] == ["DiskNotFound"]
    assert cloud.calls["snapshots.create"] == 2  # the slot's create met NotFound, then the disk was read
    assert cloud.calls["disks.get"] == 2


@pytest.mark.parametrize("gone", [False, True])
async def test_deletes_without_a_create_wait_for_a_read_of_the_disk(clock, cloud, disk, gone) -> None:
    policy = make_policy(disk, onSourceDiskDelete="Keep")
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    for _ in range(3):
        report = await reconciler.reconcile(policy, status)
        status = fold(status, report)
        clock.set(report.next_time)
    assert cloud.calls["disks.get"] == 1
    if gone:
        cloud.remove_disk(disk.id)
    clock.advance(timedelta(minutes=-40))  # between slots, with a retention edit that leaves one snapshot
    edited = make_policy(disk, onSourceDiskDelete="Keep", retention={"keepLast": 1})
    report = await reconciler.reconcile(edited, status)
    if gone:
        assert cloud.calls["disks.get"] == 3  # the read before deleting, and the new pass's that tells
        assert report.health.reason == "DiskNotFound"
        assert report.deleted == ()
        assert len(cloud.snapshots) == 3  # onSourceDiskDelete: Keep held, though the list stood for the disk
    else:
        assert cloud.calls["disks.get"] == 2  # the read before deleting
        assert len(report.deleted) == 2
        assert len(cloud.snapshots) == 1
