"""Copies through the reconciler against the in-memory cloud: in order, one per disk, the region's cap across
policies, retries then missed, sources kept while copying, the target's retention, and the status per target."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.status import fold_status as fold

from azsnap.clock import ManualClock
from azsnap.cloud.errors import TransientError
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.conditions import HealthState
from azsnap.domain.copies import TAG_COPY_OF
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk, Limits, SnapshotState
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.scope import ScopeGuard
from azsnap.reconciler import Reconciler
from azsnap.reconciler.core import ReconcilerConfig

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-demo"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
TARGET = {"region": "northeurope", "resourceGroup": "rg-dr"}


def make_policy(disk: Disk, uid: str = "uid-1", **spec: Any) -> Policy:
    body: dict[str, Any] = {
        "disk": {"id": disk.id},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 2},
        "copies": [TARGET],
    }
    body.update(spec)
    return Policy(PolicyRef("default", f"p-{uid}", uid, 1), SnapshotPolicySpec.model_validate(body))


def copies_in(cloud: MemoryCloud) -> list[Any]:
    return sorted((s for s in cloud.snapshots if s.resource_group == "rg-dr"), key=lambda s: s.time_created)


async def run(
    reconciler: Reconciler,
    policies: list[Policy],
    clock: ManualClock,
    end: datetime,
    statuses: dict[str, SnapshotPolicyStatus] | None = None,
    *,
    check: Any = None,
) -> dict[str, SnapshotPolicyStatus]:
    """Reconcile each policy when it asks to be, until `end`; `check(cloud)` after every step."""
    statuses = statuses if statuses is not None else {p.ref.uid: SnapshotPolicyStatus() for p in policies}
    wake = {p.ref.uid: clock.now() for p in policies}
    while clock.now() < end:
        for p in policies:
            if wake[p.ref.uid] <= clock.now():
                report = await reconciler.reconcile(p, statuses[p.ref.uid])
                statuses[p.ref.uid] = fold(statuses[p.ref.uid], report)
                wake[p.ref.uid] = report.next_time
                if check is not None:
                    check()
        clock.set(min(min(wake.values()), end))
    return statuses


async def test_each_snapshot_is_copied_in_order_and_the_status_tells() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk)
    statuses = await run(reconciler, [policy], clock, START + timedelta(hours=5, minutes=30))
    copies = copies_in(cloud)
    sources = [naming.tag(c.tags, TAG_COPY_OF) for c in copies]
    assert len(copies) == 2 and all(c.state is SnapshotState.SUCCEEDED for c in copies)  # keepLast 2 on the target
    assert sources == sorted(sources)
    (entry,) = statuses[policy.ref.uid].copies or []
    assert entry["copiesHeld"] == 2 and entry["copiesMissed"] == 0 and entry["region"] == "northeurope"
    assert entry["newestCopiedSlot"] == "2026-03-02T14:00:00Z"
    assert 0 < entry["lagP50Seconds"] <= entry["lagMaxSeconds"] <= 15 * 60
    assert len(entry["recentLagSeconds"]) == 6


async def test_a_source_is_kept_while_its_copy_runs() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=90))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk, retention={"keepLast": 1})
    most = 0

    def check() -> None:
        nonlocal most
        assert cloud.violations == []  # the twin records a source deleted while its copy ran
        most = max(most, sum(1 for s in cloud.snapshots if s.resource_group == RG))

    await run(reconciler, [policy], clock, START + timedelta(hours=8), check=check)
    assert most > 1  # keepLast 1, yet sources copying or waiting for their copy stayed
    sources = [s for s in cloud.snapshots if s.resource_group == RG]
    assert len(sources) < 8  # and retention went on deleting the ones copied


async def test_one_copy_per_disk_at_a_time_and_the_region_cap_across_policies() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=30), parallel_copies=1000)
    disks = [cloud.add_disk(SUB, RG, f"disk-{i}") for i in range(6)]
    reconciler = Reconciler(cloud, clock, ReconcilerConfig(limits=Limits(max_parallel_copies=4)))
    policies = [make_policy(d, uid=f"uid-{i}") for i, d in enumerate(disks)]
    most = 0

    def check() -> None:
        nonlocal most
        running = [c for c in copies_in(cloud) if c.state is SnapshotState.COPYING]
        per_disk = [naming.tag(c.tags, naming.TAG_DISK_UID) for c in running]
        assert len(per_disk) == len(set(per_disk)), "two copies of one disk at once"
        most = max(most, len(running))

    statuses = await run(reconciler, policies, clock, START + timedelta(hours=3), check=check)
    assert most == 4
    assert all((s.copies or [{}])[0].get("copiesHeld", 0) >= 2 for s in statuses.values())


async def test_a_failed_copy_is_retried_then_counted_missed() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    deadline = {**TARGET, "copyDeadline": "40m"}
    policy = make_policy(disk, copies=[deadline])
    cloud.failing_copies = 10
    statuses = await run(reconciler, [policy], clock, START + timedelta(minutes=50))
    (entry,) = statuses[policy.ref.uid].copies or []
    assert entry["copiesMissed"] == 1
    assert cloud.calls["snapshots.create"] == 1 + 3  # the 09:00 snapshot, then its copy tried three times
    assert not [c for c in cloud.snapshots if c.resource_group == "rg-dr"]  # failed attempts cleaned up
    cloud.failing_copies = 0
    report = await reconciler.reconcile(policy, statuses[policy.ref.uid])
    assert report.health.state is HealthState.STALLED and report.health.reason == "CopyOverdue"
    statuses = await run(reconciler, [policy], clock, START + timedelta(hours=2, minutes=30), statuses)
    final = await reconciler.reconcile(policy, statuses[policy.ref.uid])
    assert final.health.state is HealthState.READY, final.health.message


async def test_a_restart_mid_copy_resumes_without_a_duplicate() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=20))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    policy = make_policy(disk, retention={"keepLast": 5})
    statuses = await run(Reconciler(cloud, clock), [policy], clock, START + timedelta(minutes=5))
    assert len(copies_in(cloud)) == 1
    statuses = await run(Reconciler(cloud, clock), [policy], clock, START + timedelta(hours=2, minutes=10), statuses)
    names = [c.name for c in copies_in(cloud)]
    assert len(names) == len(set(names)) == 3 and not any(n.endswith(("r2", "r3")) for n in names)


async def test_a_copy_target_outside_the_namespaces_scope_is_refused_before_any_call() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    rules = "- namespaces: [default]\n  subscriptions: ['*']\n  diskResourceGroups: [rg-demo]\n"
    refused = await Reconciler(cloud, clock, scope=ScopeGuard.from_yaml(rules)).reconcile(
        make_policy(disk), SnapshotPolicyStatus()
    )
    assert refused.health.reason == "ScopeNotAllowed" and "rg-dr" in refused.health.message
    assert sum(cloud.calls.values()) == 0
    allowed = ScopeGuard.from_yaml(rules + "  snapshotResourceGroups: [rg-demo, rg-dr]\n")
    report = await Reconciler(cloud, clock, scope=allowed).reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert report.health.state is HealthState.READY


class _TargetUnreadable(MemoryCloud):
    """The target subscription's snapshots cannot be listed (its role is missing, or Azure fails there)."""

    async def list_snapshots(self, subscription_id: str, resource_group: str | None) -> list[Any]:
        if subscription_id == OTHER_SUB:
            raise TransientError("the target subscription could not be listed", code="ServerTimeout", status=503)
        return await super().list_snapshots(subscription_id, resource_group)


OTHER_SUB = "11111111-1111-1111-1111-111111111111"


async def test_no_source_is_deleted_while_a_target_cannot_be_read() -> None:
    clock = ManualClock(START)
    cloud = _TargetUnreadable(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    for hours in (
        30,
        29,
        28,
    ):  # older than copyDeadline: no copy protects them, retention (keepLast 2) would delete one
        slot = START.replace(second=0) - timedelta(hours=hours)
        policy = make_policy(disk, copies=[{**TARGET, "subscriptionId": OTHER_SUB}])
        name = naming.snapshot_name(disk.name, policy.ref.uid, slot)
        cloud.seed_snapshot(disk, name, tags=naming.snapshot_tags(policy, disk, slot), created_at=slot)
    report = await Reconciler(cloud, clock).reconcile(policy, SnapshotPolicyStatus())
    assert report.deleted == () and len(report.created) == 1
    assert "could not be listed" in report.health.message and report.next_time <= clock.now() + timedelta(minutes=2)
    readable = await Reconciler(cloud, clock).reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert len(readable.deleted) == 2  # with the target readable, retention goes on (keepLast 2 of 4)


async def test_status_copies_go_when_the_targets_leave_the_spec() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(make_policy(disk), SnapshotPolicyStatus()))
    assert status.copies
    report = await reconciler.reconcile(make_policy(disk, copies=None), status)
    assert "copies" in report.status and report.status["copies"] is None
