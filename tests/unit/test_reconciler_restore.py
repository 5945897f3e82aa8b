"""The SnapshotRestore flow against MemoryCloud: choosing and pinning the snapshot, the disk, hydration, refusals."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.errors import Forbidden
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.conditions import HealthState
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.domain.restore import TAG_RESTORE_UID, RestoreRef, SnapshotRestoreSpec
from azsnap.domain.scope import ScopeGuard
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import StatusReport
from azsnap.reconciler.restore import RestoreReconciler
from azsnap.reconciler.verdicts import Verdicts

SUB = "00000000-0000-0000-0000-000000000000"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RESTORE = RestoreRef("team-a", "pg-back", "restore-uid-1")
POLICY_REF = PolicyRef("team-a", "pg", "policy-uid-1")
SCOPES = """
- namespaces: [team-a]
  subscriptions: ["*"]
  diskResourceGroups: [rg-data, rg-restore]
"""


class Rig:
    def __init__(self, *, scope: bool = True) -> None:
        self.clock = ManualClock(T0)
        self.cloud = MemoryCloud(
            self.clock, copy_duration=timedelta(minutes=10), hydrate_duration=timedelta(minutes=20)
        )
        verdicts = Verdicts(
            stalled_recheck=timedelta(minutes=10), default_retry=timedelta(seconds=30), max_sleep=timedelta(hours=1)
        )
        self.restorer = RestoreReconciler(
            self.cloud,
            self.clock,
            Observer(self.cloud, self.clock),
            verdicts,
            scope=ScopeGuard.from_yaml(SCOPES) if scope else None,
        )
        self.status: dict[str, Any] = {}

    def disk(self, sku: str = "StandardSSD_LRS") -> Disk:
        return self.cloud.add_disk(SUB, "rg-data", "pg-0", sku=sku, size_gb=64)

    def policy(self, disk: Disk) -> Policy:
        spec = SnapshotPolicySpec.model_validate(
            {"disk": {"id": disk.id}, "schedule": {"every": "1h"}, "retention": {"keepLast": 5}}
        )
        return Policy(POLICY_REF, spec)

    def snap(
        self, disk: Disk, name: str, hours_ago: float, *, owner: PolicyRef = POLICY_REF, failed: bool = False
    ) -> str:
        created = self.clock.now() - timedelta(hours=hours_ago)
        tags = naming.ownership_tags(owner, disk, created)
        return self.cloud.seed_snapshot(disk, name, tags=tags, created_at=created, failed=failed).id

    async def run(self, spec: dict[str, Any], policy: Policy | None) -> StatusReport:
        report = await self.restorer.reconcile(RESTORE, SnapshotRestoreSpec.model_validate(spec), self.status, policy)
        self.status = {**self.status, **report.status}
        return report


def spec(**source: Any) -> dict[str, Any]:
    target: dict[str, Any] = source.pop("target", {})
    return {"source": source, "target": {"name": "pg-0-restored", "resourceGroup": "rg-restore", **target}}


async def test_the_newest_good_snapshot_is_restored_and_stays_chosen() -> None:
    rig = Rig()
    disk = rig.disk()
    rig.snap(disk, "old", 5)
    newest = rig.snap(disk, "newest", 1)
    rig.snap(disk, "broken", 0.5, failed=True)
    rig.snap(disk, "foreign", 0.2, owner=PolicyRef("team-a", "other", "other-uid"))
    report = await rig.run(spec(policy="pg"), rig.policy(disk))
    assert report.health.state is HealthState.READY and report.health.reason == "Restored"
    assert report.status["sourceSnapshot"]["id"] == newest and report.status["phase"] == "Ready"
    (made,) = [d for d in rig.cloud.disks if d.name == "pg-0-restored"]
    assert made.tags[TAG_RESTORE_UID] == RESTORE.uid and made.source_resource_id == newest
    assert [e.reason for e in report.events] == ["DiskCreating", "Restored"]
    rig.clock.advance(timedelta(hours=1))
    rig.snap(disk, "newer-still", 0.1)
    again = await rig.run(spec(policy="pg"), rig.policy(disk))
    assert again.status["sourceSnapshot"]["id"] == newest and again.events == ()  # pinned; no second event
    assert rig.cloud.calls["disks.create"] == 1


async def test_at_or_before_picks_the_newest_not_after_the_time() -> None:
    rig = Rig()
    disk = rig.disk()
    three = rig.snap(disk, "three-hours", 3)
    rig.snap(disk, "one-hour", 1)
    at = (T0 - timedelta(hours=2)).isoformat()
    report = await rig.run(spec(policy="pg", atOrBefore=at), rig.policy(disk))
    assert report.status["sourceSnapshot"]["id"] == three
    rig2 = Rig()
    disk2 = rig2.disk()
    rig2.snap(disk2, "recent", 1)
    none = await rig2.run(spec(policy="pg", atOrBefore=at), rig2.policy(disk2))
    assert none.health.state is HealthState.STALLED and none.health.reason == "SnapshotNotFound"
    assert rig2.cloud.calls["disks.create"] == 0


async def test_premium_v2_is_not_ready_until_hydrated() -> None:
    rig = Rig()
    disk = rig.disk("PremiumV2_LRS")
    source = rig.snap(disk, "pv2", 1)  # an hour old: its background copy is complete
    wanted = spec(snapshotId=source, target={"sku": "PremiumV2_LRS", "zone": "1"})
    first = await rig.run(wanted, None)
    assert first.health.state is HealthState.RETRYING and first.health.reason == "Hydrating"
    assert first.status["phase"] == "Hydrating" and first.status["disk"]["completionPercent"] == 0
    rig.clock.advance(timedelta(minutes=10))
    midway = await rig.run(wanted, None)
    assert midway.health.reason == "Hydrating" and midway.status["disk"]["completionPercent"] == 50
    rig.clock.advance(timedelta(minutes=10))
    done = await rig.run(wanted, None)
    assert done.health.state is HealthState.READY and done.status["disk"]["completionPercent"] == 100
    assert rig.cloud.calls["disks.create"] == 1


async def test_an_existing_disk_is_never_overwritten() -> None:
    rig = Rig()
    disk = rig.disk()
    source = rig.snap(disk, "s", 1)
    theirs = rig.cloud.add_disk(SUB, "rg-restore", "pg-0-restored")
    report = await rig.run(spec(snapshotId=source), None)
    assert report.health.state is HealthState.STALLED and report.health.reason == "DiskExists"
    assert [e.reason for e in report.events] == ["DiskExists"]
    assert rig.cloud.calls["disks.create"] == 0 and rig.cloud.disks[-1] == theirs


async def test_out_of_scope_is_refused_before_any_azure_call() -> None:
    rig = Rig()
    disk = rig.disk()
    source = rig.snap(disk, "s", 1)
    report = await rig.run(spec(snapshotId=source, target={"resourceGroup": "rg-prod"}), None)
    assert report.health.reason == "ScopeNotAllowed" and "rg-prod" in report.health.message
    assert sum(rig.cloud.calls.values()) == 0


async def test_a_missing_policy_or_permission_stalls_with_what_to_do() -> None:
    rig = Rig()
    disk = rig.disk()
    missing = await rig.run(spec(policy="nope"), None)
    assert missing.health.reason == "SourceNotFound" and sum(rig.cloud.calls.values()) == 0
    source = rig.snap(disk, "s", 1)
    rig.cloud.fail_next("disks.create", Forbidden("no Microsoft.Compute/disks/write", code="LinkedAuthorizationFailed"))
    denied = await rig.run(spec(snapshotId=source), None)
    assert denied.health.state is HealthState.STALLED and denied.health.reason == "AuthorizationFailed"
    assert "docs/azure-setup.md" in denied.health.message


async def test_a_size_smaller_than_the_snapshot_is_refused_without_a_disk() -> None:
    rig = Rig()
    source = rig.snap(rig.disk(), "s", 1)
    report = await rig.run(spec(snapshotId=source, target={"sizeGB": 32}), None)
    assert report.health.reason == "InvalidSpec" and "sizeGB 32" in report.health.message
    assert rig.cloud.calls["disks.create"] == 0


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
async def test_deleting_the_restore_deletes_the_disk_only_when_told(policy: str) -> None:
    rig = Rig()
    source = rig.snap(rig.disk(), "s", 1)
    wanted = {**spec(snapshotId=source), "deletionPolicy": policy}
    await rig.run(wanted, None)
    report = await rig.restorer.finalize(RESTORE, SnapshotRestoreSpec.model_validate(wanted), rig.status)
    assert report.done
    left = [d.name for d in rig.cloud.disks]
    assert ("pg-0-restored" in left) is (policy == "Retain")


async def test_delete_never_removes_a_disk_another_made() -> None:
    rig = Rig()
    source = rig.snap(rig.disk(), "s", 1)
    wanted = {**spec(snapshotId=source), "deletionPolicy": "Delete"}
    await rig.run(wanted, None)
    made = next(d for d in rig.cloud.disks if d.name == "pg-0-restored")
    rig.cloud.remove_disk(made.id)
    theirs = rig.cloud.add_disk(SUB, "rg-restore", "pg-0-restored")  # someone else's, under the same name
    report = await rig.restorer.finalize(RESTORE, SnapshotRestoreSpec.model_validate(wanted), rig.status)
    assert report.done and "left alone" in report.message
    assert theirs in rig.cloud.disks
