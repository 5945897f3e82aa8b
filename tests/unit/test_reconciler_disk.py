"""A disk's limits count every snapshot of the disk, in whatever resource group it lives (in-memory cloud)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.errors import PermanentError
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.conditions import HealthState
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler import Reconciler

SUB = "00000000-0000-0000-0000-000000000000"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
REF = PolicyRef("default", "p1", "uid-1", 1)


def make_policy(disk: Disk, ref: PolicyRef = REF, **spec: Any) -> Policy:
    body: dict[str, Any] = {"disk": {"id": disk.id}, "schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 3}}
    body.update(spec)
    return Policy(ref, SnapshotPolicySpec.model_validate(body))


def seed_own(cloud: MemoryCloud, policy: Policy, disk: Disk, slot: datetime, resource_group: str) -> None:
    """A snapshot the policy made earlier, with its name and tags."""
    cloud.seed_snapshot(
        disk,
        naming.snapshot_name(disk.name, policy.ref.uid, slot),
        tags=naming.snapshot_tags(policy, disk, slot),
        created_at=slot,
        resource_group=resource_group,
    )


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def cloud(clock: ManualClock) -> MemoryCloud:
    return MemoryCloud(clock)


async def test_near_the_cap_retention_deletes_first_when_the_disk_is_full_in_another_group(clock, cloud) -> None:
    disk = cloud.add_disk(SUB, "rg-demo", "disk-0")
    for i in range(497):
        cloud.seed_snapshot(disk, f"other-tool-{i:03d}", created_at=START - timedelta(days=2))
    policy = make_policy(
        disk, schedule={"cron": "0 * * * *"}, retention={"maxAge": "3h"}, snapshot={"resourceGroup": "rg-backups"}
    )
    for hours in (3, 2, 1):
        seed_own(cloud, policy, disk, START.replace(second=0) - timedelta(hours=hours), "rg-backups")
    reconciler = Reconciler(cloud, clock)
    report = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    assert report.health.state is HealthState.READY, report.health
    assert len(report.created) == 1
    assert report.deleted == (naming.snapshot_name("disk-0", "uid-1", datetime(2026, 3, 2, 6, 0, tzinfo=UTC)),)
    assert report.status["diskSnapshotCount"] == 500
    assert report.status["snapshotCount"] == 3
    assert len(cloud.snapshots) == 500


async def test_a_copy_pending_in_another_group_makes_the_policy_wait_not_fail(clock, cloud) -> None:
    cloud.copy_duration = timedelta(minutes=30)
    disk = cloud.add_disk(SUB, "rg-demo", "pv2-0", sku="PremiumV2_LRS")
    for i in range(3):
        cloud.seed_snapshot(disk, f"copy-{i}", created_at=START - timedelta(minutes=5), resource_group="rg-other")
    reconciler = Reconciler(cloud, clock)
    report = await reconciler.reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert report.health.state is HealthState.READY
    assert "PendingCopies" in report.blocked
    assert "still copying" in report.health.message
    assert cloud.calls["snapshots.create"] == 0
    assert report.next_time <= START + timedelta(minutes=5)


async def test_foreign_creates_in_another_group_count_in_the_rolling_window(clock, cloud) -> None:
    disk = cloud.add_disk(SUB, "rg-demo", "disk-0")
    for i in range(7):
        cloud.seed_snapshot(disk, f"burst-{i}", created_at=START - timedelta(minutes=1), resource_group="rg-other")
    reconciler = Reconciler(cloud, clock)
    report = await reconciler.reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert report.health.reason == "RateLimited"
    assert cloud.calls["snapshots.create"] == 0, "no create Azure would refuse with a 409"
    assert report.next_time == START - timedelta(minutes=1) + timedelta(minutes=5)


async def test_one_list_serves_every_policy_of_the_subscription_across_groups(clock, cloud) -> None:
    disks = [cloud.add_disk(SUB, f"rg-{i % 3}", f"disk-{i}") for i in range(6)]
    reconciler = Reconciler(cloud, clock)
    for i, d in enumerate(disks):
        ref = PolicyRef("default", f"p{i}", f"u{i}", 1)
        report = await reconciler.reconcile(make_policy(d, ref), SnapshotPolicyStatus())
        assert len(report.created) == 1
    assert cloud.calls["snapshots.list"] == 1
    # a round later the list is listed once more, for all of them
    clock.advance(timedelta(hours=1))
    for i, d in enumerate(disks):
        await reconciler.reconcile(make_policy(d, PolicyRef("default", f"p{i}", f"u{i}", 1)), SnapshotPolicyStatus())
    assert cloud.calls["snapshots.list"] == 2


async def test_when_the_subscription_list_is_refused_the_known_groups_are_listed(clock, cloud) -> None:
    disk = cloud.add_disk(SUB, "rg-demo", "disk-0")
    cloud.seed_snapshot(disk, "in-disk-group", created_at=START - timedelta(days=1))
    cloud.seed_snapshot(disk, "in-snapshot-group", created_at=START - timedelta(days=1), resource_group="rg-backups")
    cloud.fail_next("snapshots.list", PermanentError("no", code="AuthorizationFailed", status=403))
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk, snapshot={"resourceGroup": "rg-backups"})
    report = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    assert report.health.state is HealthState.READY
    assert report.status["diskSnapshotCount"] == 3  # both foreign ones and the new one
    assert cloud.calls["snapshots.list"] == 3  # the refused subscription list, then the two groups
    assert reconciler.observer.coverage(SUB) == frozenset({"rg-demo", "rg-backups"})


async def test_finalize_deletes_the_policys_snapshots_in_an_older_snapshot_group(clock, cloud) -> None:
    disk = cloud.add_disk(SUB, "rg-demo", "disk-0")
    policy = make_policy(disk, deletionPolicy="Delete", snapshot={"resourceGroup": "rg-new"})
    seed_own(cloud, policy, disk, START - timedelta(days=3), "rg-old")
    seed_own(cloud, policy, disk, START - timedelta(days=2), "rg-new")
    foreign = cloud.seed_snapshot(disk, "manual", resource_group="rg-old")
    result = await Reconciler(cloud, clock).finalize(policy)
    assert result.done
    assert len(result.deleted) == 2
    assert [s.name for s in cloud.snapshots] == [foreign.name]


async def test_a_large_subscription_list_is_reused_longer(clock, cloud) -> None:
    disks = [cloud.add_disk(SUB, "rg-demo", f"disk-{i}") for i in range(3)]
    for i in range(1995):  # with the new snapshots, 20 pages: reused for 60 s instead of 30 s
        cloud.seed_snapshot(disks[0], f"other-{i:04d}", created_at=START - timedelta(days=3))
    reconciler = Reconciler(cloud, clock)
    policies = [make_policy(d, PolicyRef("default", f"p{i}", f"u{i}", 1)) for i, d in enumerate(disks)]
    await reconciler.reconcile(policies[0], SnapshotPolicyStatus())
    clock.advance(timedelta(seconds=45))
    await reconciler.reconcile(policies[1], SnapshotPolicyStatus())
    assert cloud.calls["snapshots.list"] == 1
    clock.advance(timedelta(seconds=16))
    await reconciler.reconcile(policies[2], SnapshotPolicyStatus())
    assert cloud.calls["snapshots.list"] == 2
