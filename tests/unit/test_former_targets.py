"""Copy targets removed from `spec.copies`: kept in `status.formerCopyTargets` while they hold the policy's copies
(bounded), told once, no retention applied to them, and found by `deletionPolicy: Delete`, in any subscription."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.support.crd import schema_errors
from tests.support.status import fold_status as fold
from tests.unit.test_reconciler_copies import OTHER_SUB, RG, START, SUB, TARGET, make_policy, run
from tests.unit.test_targets import NODE_RG, bound
from tests.unit.test_targets import policy as claim_policy

from azsnap.clock import ManualClock
from azsnap.cloud.errors import TransientError
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.copies import ROLE_COPY, TAG_ROLE
from azsnap.domain.former_targets import MAX_FORMER_TARGETS, former_status, removed_targets
from azsnap.domain.models import CopyTarget, Policy
from azsnap.domain.observed import Snapshot
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler import Reconciler
from azsnap.reconciler.claims import ClaimStore
from azsnap.reconciler.copies import COPY_POLL

AWAY = {"region": "swedencentral", "resourceGroup": "rg-far", "subscriptionId": OTHER_SUB}


def entry(region: str, group: str, sub: str = SUB, held: int | None = 2) -> dict[str, Any]:
    found: dict[str, Any] = {"region": region, "resourceGroup": group, "subscriptionId": sub}
    return found if held is None else {**found, "copiesHeld": held}


def test_a_target_the_spec_no_longer_names_becomes_former_until_its_copies_are_gone() -> None:
    spec = [CopyTarget.model_validate(TARGET)]
    copies = [entry("northeurope", "rg-dr"), entry("swedencentral", "rg-far", OTHER_SUB)]
    (gone,) = removed_targets(spec, copies, None)
    assert (gone.region, gone.resource_group, gone.subscription_id, gone.held, gone.new) == (
        "swedencentral", "rg-far", OTHER_SUB, 2, True,
    )  # fmt: skip
    assert former_status([gone], {gone.place: 3}) == [entry("swedencentral", "rg-far", OTHER_SUB, 3)]
    assert former_status([gone], {gone.place: None}) == [entry("swedencentral", "rg-far", OTHER_SUB, 2)]
    assert former_status([gone], {gone.place: 0}) is None  # its copies are gone: the entry goes
    (again,) = removed_targets(spec, [copies[0]], [entry("swedencentral", "rg-far", OTHER_SUB)])
    assert not again.new  # already former: no second warning
    back = [*spec, CopyTarget.model_validate(AWAY)]
    assert removed_targets(back, None, [entry("swedencentral", "rg-far", OTHER_SUB)]) == []  # back in the spec
    # A spec target without a subscription is the disk's: it names the entry in whatever subscription it shows.
    assert removed_targets(spec, [entry("northeurope", "rg-dr", OTHER_SUB)], None) == []


def test_former_targets_are_bounded_to_the_last_removed() -> None:
    former = [entry(f"region{i}", f"rg-{i}") for i in range(MAX_FORMER_TARGETS)]
    candidates = removed_targets([], [entry("westus", "rg-new")], former)
    kept = former_status(candidates, {t.place: 1 for t in candidates}) or []
    assert len(kept) == MAX_FORMER_TARGETS and kept[-1]["region"] == "westus" and kept[0]["region"] == "region1"


def copies_of(cloud: MemoryCloud, sub: str, group: str) -> list[str]:
    return sorted(
        s.name
        for s in cloud.snapshots
        if s.resource_group == group
        and s.id.lower().startswith(f"/subscriptions/{sub}/")
        and s.tags.get(TAG_ROLE) == ROLE_COPY
    )


async def finalized(reconciler: Reconciler, clock: ManualClock, policy: Policy, status: SnapshotPolicyStatus) -> bool:
    """The finalizer's passes (every 30 s) until it is done: a copy still running ends first."""
    for _ in range(60):
        if (await reconciler.finalize(policy, status=status)).done:
            return True
        clock.advance(timedelta(seconds=30))
    return False


async def _copied_into_two_targets() -> tuple[ManualClock, MemoryCloud, Reconciler, Policy, SnapshotPolicyStatus]:
    """A Delete policy's disk copied for 3.5 hours into rg-dr and into rg-far of another subscription (which keeps
    2), and the same policy with rg-far removed from its spec."""
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    both = make_policy(disk, copies=[TARGET, {**AWAY, "retention": {"keepLast": 2}}], deletionPolicy="Delete")
    statuses = await run(reconciler, [both], clock, START + timedelta(hours=3, minutes=30))
    assert len(copies_of(cloud, OTHER_SUB, "rg-far")) == 2
    near = make_policy(disk, copies=[TARGET], deletionPolicy="Delete")
    return clock, cloud, reconciler, near, statuses[both.ref.uid]


async def test_a_removed_target_in_another_subscription_is_kept_told_and_found_by_delete() -> None:
    clock, cloud, reconciler, near, status = await _copied_into_two_targets()
    far = copies_of(cloud, OTHER_SUB, "rg-far")
    report = await reconciler.reconcile(near, status)
    assert report.status["formerCopyTargets"] == [entry("swedencentral", "rg-far", OTHER_SUB, 2)]
    assert [e.reason for e in report.events].count("CopyTargetRemoved") == 1
    status = fold(status, report)
    statuses = await run(reconciler, [near], clock, START + timedelta(hours=9), {near.ref.uid: status})
    status = statuses[near.ref.uid]
    assert copies_of(cloud, OTHER_SUB, "rg-far") == far  # no retention there any more: all kept
    assert status.former_copy_targets == [entry("swedencentral", "rg-far", OTHER_SUB, 2)]

    assert await finalized(reconciler, clock, near, SnapshotPolicyStatus())  # a status that forgot them
    assert copies_of(cloud, OTHER_SUB, "rg-far") == far  # another subscription: only the record leads there
    assert copies_of(cloud, SUB, "rg-dr") == []
    assert await finalized(reconciler, clock, near, status)
    assert copies_of(cloud, OTHER_SUB, "rg-far") == []


async def test_a_target_put_back_leaves_the_record_and_its_retention_applies_again() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    both = make_policy(disk, copies=[TARGET, {**AWAY, "retention": {"keepLast": 3}}])
    statuses = await run(reconciler, [both], clock, START + timedelta(hours=3, minutes=30))
    near = make_policy(disk, copies=[TARGET])
    status = fold(statuses[both.ref.uid], await reconciler.reconcile(near, statuses[both.ref.uid]))
    assert status.former_copy_targets and len(copies_of(cloud, OTHER_SUB, "rg-far")) == 3
    again = make_policy(disk, copies=[TARGET, {**AWAY, "retention": {"keepLast": 1}}])
    report = await reconciler.reconcile(again, status)
    assert report.status["formerCopyTargets"] is None
    assert len(copies_of(cloud, OTHER_SUB, "rg-far")) == 1


def test_the_crd_accepts_former_copy_targets() -> None:
    status = {"formerCopyTargets": [entry(f"region{i}", f"rg-{i}", OTHER_SUB, i) for i in range(MAX_FORMER_TARGETS)]}
    doc = {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"disk": {"id": f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/d"},
                 "schedule": {"every": "1h"}, "retention": {"keepLast": 2}},
        "status": status,
    }  # fmt: skip
    assert schema_errors(doc) == []
    status["formerCopyTargets"].append(entry("one-too-many", "rg"))
    assert [e.path for e in schema_errors(doc)] == ["status.formerCopyTargets"]


async def test_a_claim_policys_removed_target_in_another_subscription_is_emptied_by_delete() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store = ClaimStore()
    for i in range(3):
        bound(store, f"data-{i}", cloud.add_disk(SUB, NODE_RG, f"pvc-{i}").id, labels={"app": "pg"})
    selector = {"volumeClaimSelector": {"matchLabels": {"app": "pg"}}, "deletionPolicy": "Delete"}
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    for the_policy, hours in (
        (claim_policy(copies=[TARGET, AWAY], **selector), 2.5),
        (claim_policy(copies=[TARGET], **selector), 4),
    ):
        while clock.now() < START + timedelta(hours=hours):
            report = await reconciler.reconcile(the_policy, status, claims=store)
            status = fold(status, report)
            clock.set(min(report.next_time, START + timedelta(hours=hours)))
    far = copies_of(cloud, OTHER_SUB, "rg-far")
    assert len(far) == 3 * 3  # each disk's 09:00 … 11:00, kept: no retention there any more
    assert status.former_copy_targets == [entry("swedencentral", "rg-far", OTHER_SUB, 9)]
    assert await finalized(reconciler, clock, the_policy, status)
    assert copies_of(cloud, OTHER_SUB, "rg-far") == [] and copies_of(cloud, SUB, "rg-dr") == []


async def test_a_copy_still_running_into_a_removed_target_keeps_its_source_until_it_ends() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=90))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    copying = make_policy(disk, retention={"keepLast": 1})  # 09:00's copy runs until 10:30
    statuses = await run(reconciler, [copying], clock, START + timedelta(minutes=10))
    gone = make_policy(disk, retention={"keepLast": 1}, copies=None)
    status = fold(statuses[copying.ref.uid], await reconciler.reconcile(gone, statuses[copying.ref.uid]))
    assert status.former_copy_targets == [entry("northeurope", "rg-dr", SUB, 1)]
    statuses = await run(reconciler, [gone], clock, START + timedelta(hours=1, minutes=5), {gone.ref.uid: status})
    sources = sorted(s.name for s in cloud.snapshots if s.resource_group == RG)
    assert len(sources) == 2  # keepLast 1 would keep only 10:00's: 09:00's stays while its copy runs
    assert cloud.violations == []  # never a source deleted under its running copy
    await run(reconciler, [gone], clock, START + timedelta(hours=2, minutes=5), statuses)
    assert len([s for s in cloud.snapshots if s.resource_group == RG]) == 1  # the copy ended: retention goes on
    assert cloud.violations == []


async def test_a_copy_running_into_a_target_in_another_subscription_keeps_its_source_as_the_target_leaves() -> None:
    """The reconcile that sees the target leave is the one whose retention would delete the source: the target is
    only in `status.copies` then (not yet in `formerCopyTargets`), and its copy runs in another subscription."""
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=90))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    copying = make_policy(disk, retention={"keepLast": 1}, copies=[AWAY])  # 09:00's copy runs until 10:30
    statuses = await run(reconciler, [copying], clock, START + timedelta(minutes=10))
    assert statuses[copying.ref.uid].former_copy_targets is None
    clock.set(START + timedelta(hours=1))  # 10:00 is due: keepLast 1 would delete 09:00's snapshot, the source
    gone = make_policy(disk, retention={"keepLast": 1}, copies=None)
    report = await reconciler.reconcile(gone, statuses[copying.ref.uid])
    assert report.status["formerCopyTargets"] == [entry("swedencentral", "rg-far", OTHER_SUB, 1)]
    assert len([s for s in cloud.snapshots if s.resource_group == RG]) == 2  # 09:00's stays while its copy runs
    assert cloud.violations == []  # never a source deleted under its running copy


async def test_a_policy_deleted_before_a_reconcile_saw_its_target_leave_still_deletes_the_copies_there() -> None:
    clock, cloud, reconciler, near, status = await _copied_into_two_targets()
    assert status.former_copy_targets is None  # the target is only in status.copies when the policy goes
    assert await finalized(reconciler, clock, near, status)
    assert copies_of(cloud, OTHER_SUB, "rg-far") == [] and copies_of(cloud, SUB, "rg-dr") == []


async def test_a_claim_disks_copy_running_into_a_removed_target_keeps_its_source_past_the_first_reconcile() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=90))
    store = ClaimStore()
    bound(store, "data-0", cloud.add_disk(SUB, NODE_RG, "pvc-0").id, labels={"app": "pg"})
    selector = {"volumeClaimSelector": {"matchLabels": {"app": "pg"}}, "retention": {"keepLast": 1}}
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    for the_policy, until in (
        (claim_policy(copies=[AWAY], **selector), START + timedelta(minutes=10)),  # 09:00's copy runs until 10:30
        (claim_policy(**selector), START + timedelta(hours=1, minutes=5)),  # 10:00 is due: 09:00's would go
    ):
        while clock.now() < until:
            report = await reconciler.reconcile(the_policy, status, claims=store)
            status = fold(status, report)
            clock.set(min(report.next_time, until))
    assert status.former_copy_targets == [entry("swedencentral", "rg-far", OTHER_SUB, 1)]
    assert len([s for s in cloud.snapshots if s.resource_group == NODE_RG]) == 2  # 09:00's stays: its copy runs
    assert cloud.violations == []  # never a source deleted under its running copy


class _FarListFails(MemoryCloud):
    """Lists of the other subscription fail, as Azure's answer would while that subscription is unreachable."""

    async def list_snapshots(self, subscription_id: str, resource_group: str | None) -> list[Snapshot]:
        if subscription_id == OTHER_SUB:
            raise TransientError("the other subscription cannot be listed", code="ServerBusy")
        return await super().list_snapshots(subscription_id, resource_group)


async def test_a_removed_target_that_cannot_be_listed_holds_back_every_source_delete() -> None:
    """Whether a copy still runs into a removed target is unknown while its list fails: no source is deleted then,
    as for a target still in the spec, and the policy says why."""
    clock = ManualClock(START)
    cloud = _FarListFails(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    policy = make_policy(disk, retention={"keepLast": 1}, copies=None)
    statuses = await run(Reconciler(cloud, clock), [policy], clock, START + timedelta(minutes=10))
    assert len([s for s in cloud.snapshots if s.resource_group == RG]) == 1
    far = {"region": AWAY["region"], "resourceGroup": AWAY["resourceGroup"], "subscriptionId": OTHER_SUB}
    status = statuses[policy.ref.uid].model_copy(update={"copies": [far]})  # the target just left the spec
    clock.set(START + timedelta(hours=1))  # 10:00 is due: keepLast 1 would delete 09:00's snapshot
    report = await Reconciler(cloud, clock).reconcile(policy, status)
    assert len(report.created) == 1
    assert len([s for s in cloud.snapshots if s.resource_group == RG]) == 2  # 09:00's kept: it may be a source
    assert "cannot be listed" in report.health.message
    assert report.next_time <= clock.now() + COPY_POLL  # looked at again soon, not at the next slot
