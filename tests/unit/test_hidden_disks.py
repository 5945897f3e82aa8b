"""Disks `status.disks` leaves out behave as listed ones: a recreated disk is told, a gone claim's disk is kept or
retired by its policy, and `deletionPolicy: Delete` finds every disk the policy snapshotted, by its tags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.support.status import fold_status as fold
from tests.unit.test_targets import NODE_RG, SUB, bound, owned, policy, spec_of

from azsnap.clock import ManualClock
from azsnap.cloud.errors import TransientError
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.disk_accounts import account_key, decode_accounts, incarnation_digest
from azsnap.domain.models import Policy, PolicyRef
from azsnap.domain.observed import Disk, Limits
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.targets import MAX_DISK_ENTRIES
from azsnap.reconciler import Reconciler
from azsnap.reconciler.claims import ClaimInterest, ClaimStore
from azsnap.reconciler.core import ReconcilerConfig
from azsnap.reconciler.report import Event
from azsnap.tools.snapshots import gather

START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
COUNT = MAX_DISK_ENTRIES + 5
SELECTOR = {"volumeClaimSelector": {"matchLabels": {"app": "pg"}}}


def _claims(cloud: MemoryCloud) -> tuple[ClaimStore, list[Disk]]:
    """55 claims on 55 disks: all Ready with nothing missed, data-050 to data-054 sort last and are left out."""
    store, disks = ClaimStore(), []
    for i in range(COUNT):
        disk = cloud.add_disk(SUB, NODE_RG, f"pvc-{i:03}")
        bound(store, f"data-{i:03}", disk.id, labels={"app": "pg"})
        disks.append(disk)
    return store, disks


async def _first_round() -> tuple[ManualClock, MemoryCloud, ClaimStore, list[Disk], Policy, SnapshotPolicyStatus]:
    """The selector policy over the claims, after its first reconcile: every disk has its first snapshot."""
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store, disks = _claims(cloud)
    the_policy = policy(**SELECTOR)
    report = await Reconciler(cloud, clock).reconcile(the_policy, SnapshotPolicyStatus(), claims=store)
    return clock, cloud, store, disks, the_policy, fold(SnapshotPolicyStatus(), report)


def _shown(status: SnapshotPolicyStatus) -> dict[str, str | None]:
    return {e.claim: e.disk for e in status.disks or []}


async def test_a_disk_left_out_that_is_recreated_is_told_once_and_its_lineage_kept() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store, disks = _claims(cloud)
    the_policy = policy(**SELECTOR)
    reconciler = Reconciler(cloud, clock)
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(the_policy, SnapshotPolicyStatus(), claims=store))
    last = disks[-1]
    assert "data-054" not in _shown(status)
    account = decode_accounts(status.disk_accounts)[account_key(last.id)]
    assert account.incarnation == incarnation_digest(last.unique_id)

    cloud.remove_disk(last.id)
    again = cloud.add_disk(SUB, NODE_RG, "pvc-054")  # the same ARM ID, a new incarnation
    assert again.unique_id != last.unique_id
    events: list[Event] = []
    for hour in range(4):
        clock.advance(timedelta(hours=1))
        if hour == 2:
            reconciler = Reconciler(cloud, clock)  # a restart: only the status is remembered
        report = await reconciler.reconcile(the_policy, status, claims=store)
        status = fold(status, report)
        events += [e for e in report.events if e.reason == "NewDiskIncarnation"]
        assert "data-054" not in _shown(status), hour
    assert len(events) == 1 and "pvc-054" in events[0].message and again.unique_id in events[0].message
    assert decode_accounts(status.disk_accounts)[account_key(last.id)].incarnation == incarnation_digest(
        again.unique_id
    )
    # One lineage, two incarnations: the old disk's snapshot is an earlier incarnation's, and the newest of it stays
    # although keepLast 3 keeps only the new disk's three newest.
    ours = [s for s in cloud.snapshots if s.source_resource_id == last.id]
    old = [s for s in ours if s.source_unique_id == last.unique_id]
    assert len(old) == 1 and len(ours) == 4
    assert status.earlier_incarnations == 1


def _foreign_and_held(cloud: MemoryCloud, disks: list[Disk], ref: PolicyRef) -> tuple[str, str, str]:
    """A snapshot azsnap did not make, one of another policy, and one of this policy on hold (all of hidden disks)."""
    cloud.seed_snapshot(disks[-1], "not-ours")
    other = PolicyRef("shop", "other", "uid-other", 1)
    slot = START.replace(minute=0, second=0)
    cloud.seed_snapshot(
        disks[-2], naming.snapshot_name("pvc-053", other.uid, slot), tags=naming.ownership_tags(other, disks[-2], slot)
    )
    held = naming.snapshot_name("pvc-052", ref.uid, slot - timedelta(days=1))
    tags = {**naming.ownership_tags(ref, disks[-3], slot - timedelta(days=1)), naming.TAG_HOLD: "legal"}
    cloud.seed_snapshot(disks[-3], held, tags=tags)
    return "not-ours", naming.snapshot_name("pvc-053", other.uid, slot), held


@pytest.mark.parametrize("remembered", ["status", "empty status"])
async def test_deletion_finds_every_disk_of_gone_claims_left_out_and_touches_nothing_foreign(remembered: str) -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store, disks = _claims(cloud)
    the_policy = policy(**SELECTOR, deletionPolicy="Delete")
    foreign, others, held = _foreign_and_held(cloud, disks, the_policy.ref)
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    for _ in range(2):
        status = fold(status, await reconciler.reconcile(the_policy, status, claims=store))
        clock.advance(timedelta(hours=1))
    assert status.snapshot_count == 2 * COUNT + 1  # the held one is the policy's too

    # Every claim goes: 55 gone claims' disks, 50 listed and 5 left out, each found again at each reconcile.
    for i in range(COUNT):
        store.remove_claim("shop", f"data-{i:03}")
    for _ in range(3):
        report = await reconciler.reconcile(the_policy, status, claims=store)
        status = fold(status, report)
        clock.advance(timedelta(hours=1))
        assert status.disks_not_shown == 5 and len(status.disk_accounts or []) == 5
        assert status.snapshot_count == 2 * COUNT + 1 and not report.created
    unnamed = [e for e in status.disks or [] if e.claim.startswith("(claim of disk ")]
    assert all(e.reason == "ClaimNotFound" and e.state == "Unresolved" for e in status.disks or [])
    assert all("its name was not kept" in e.message for e in unnamed)
    assert all(len(owned(cloud, d.id)) >= 2 for d in disks)  # onSourceDiskDelete Keep: all kept

    # Deleted with deletionPolicy Delete, from its status or (a status lost) from two claims left: every snapshot
    # the policy made goes but the held one; the foreign ones stay.
    if remembered == "empty status":
        status = SnapshotPolicyStatus()
        for i in (0, 54):
            bound(store, f"data-{i:03}", disks[i].id, labels={"app": "pg"})
    done = await reconciler.finalize(the_policy, status=status, claims=store)
    assert done.done, done.message
    assert len(done.deleted) == 2 * COUNT
    left = sorted(s.name for s in cloud.snapshots)
    assert left == sorted([foreign, others, held])


async def test_apply_retention_retires_the_snapshots_of_gone_claims_left_out_but_never_the_newest() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store, disks = _claims(cloud)
    the_policy = policy(**SELECTOR, retention={"maxAge": "2h"}, onSourceDiskDelete="ApplyRetention")
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    for _ in range(3):
        status = fold(status, await reconciler.reconcile(the_policy, status, claims=store))
        clock.advance(timedelta(hours=1))
    assert all(len(owned(cloud, d.id)) >= 2 for d in disks)
    newest = {d.id: owned(cloud, d.id)[-1] for d in disks}
    for i in range(COUNT):
        store.remove_claim("shop", f"data-{i:03}")
    clock.advance(timedelta(hours=5))
    for _ in range(2):
        report = await reconciler.reconcile(the_policy, status, claims=store)
        status = fold(status, report)
    assert {d.id: owned(cloud, d.id) for d in disks} == {d: [n] for d, n in newest.items()}
    assert status.snapshot_count == COUNT
    assert (status.restore_points or {}).get("count") == COUNT  # a gone claim's disk can still be restored from
    assert status.earlier_incarnations == COUNT  # what a gone disk holds is all of an earlier incarnation


async def test_a_disk_left_out_is_kept_when_azure_cannot_tell_its_disk() -> None:
    clock, cloud, store, disks, the_policy, status = await _first_round()
    store.remove_claim("shop", "data-054")
    clock.advance(timedelta(minutes=5))  # the list is stale: the rediscovery must ask Azure
    cloud.fail_next("snapshots.list", TransientError("busy", code="ServerBusy", retry_after=30))  # the first list
    status = fold(status, await Reconciler(cloud, clock).reconcile(the_policy, status, claims=store))
    assert account_key(disks[-1].id) in decode_accounts(status.disk_accounts)
    clock.advance(timedelta(minutes=5))
    status = fold(status, await Reconciler(cloud, clock).reconcile(the_policy, status, claims=store))
    gone = {e.claim: e for e in status.disks or []}["(claim of disk pvc-054)"]
    assert (gone.disk, gone.count, gone.reason) == (disks[-1].id, 1, "ClaimNotFound")


async def test_the_snapshots_listing_shows_every_disk_not_only_those_status_lists() -> None:
    clock, cloud, _store, disks, the_policy, status = await _first_round()
    ref = the_policy.ref
    obj = {
        "metadata": {"namespace": ref.namespace, "name": ref.name, "uid": ref.uid},
        "spec": {**SELECTOR, "schedule": {"every": "1h"}, "retention": {"keepLast": 3}},
        "status": status.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }
    rows = await gather([obj], cloud, clock, Limits())
    assert sorted(r.disk_id for r in rows) == sorted(d.id for d in disks)
    assert all(len(r.snapshots) == 1 and r.problem is None for r in rows)
    assert [r.claim for r in rows if r.disk_id == disks[-1].id] == [None]  # left out: its claim's name is not kept


def test_a_claim_left_out_of_the_status_still_wakes_its_policy_when_relabelled_out() -> None:
    store = ClaimStore()
    for i in range(3):
        bound(
            store,
            f"data-{i}",
            f"/subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/disks/d{i}",
            labels={"app": "pg"},
        )
    interest = ClaimInterest()
    interest.remember("sel", "shop", spec_of(**SELECTOR))
    listed = {"disks": [{"claim": "data-0", "state": "Ready"}], "disksNotShown": 2}
    interest.remember_listed("sel", listed, store)
    assert interest.covering("shop", "data-2", {"app": "other"}) == ["sel"]  # relabelled out: the policy looks again
    assert interest.covering("shop", "web-0", {"app": "web"}) == []  # never its claim
    interest.remember_listed("sel", {"disks": [{"claim": "data-0", "state": "Ready"}]}, store)
    assert interest.covering("shop", "data-2", {"app": "other"}) == []  # nothing left out: the status says it all


async def test_an_on_demand_request_is_served_once_by_a_disk_left_out_while_another_disk_cannot_serve_it() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store, disks = _claims(cloud)
    for i in range(8):  # data-000's disk is at its cap (8 here): it can serve no request, so the policy's token stays
        cloud.seed_snapshot(disks[0], f"someone-else-{i}", created_at=START - timedelta(days=1))
    reconciler = Reconciler(cloud, clock, ReconcilerConfig(limits=Limits(per_disk_cap=8)))
    the_policy = policy(**SELECTOR)
    status, created = SnapshotPolicyStatus(), []
    for hour in range(6):  # asked once at 09:00; keepLast 3 deletes the on-demand snapshot three slots later
        report = await reconciler.reconcile(the_policy, status, claims=store, on_demand_token="backup-before-upgrade")
        status, created = fold(status, report), [*created, *report.created]
        assert "data-054" not in _shown(status), hour
        clock.advance(timedelta(minutes=60))
    on_demand = [name for name in created if name.startswith("pvc-054-") and name.endswith("-od")]
    assert len(on_demand) == 1, on_demand


async def test_a_status_lost_is_filled_again_from_the_policys_snapshots() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store, disks = _claims(cloud)
    the_policy = policy(**SELECTOR, retention={"maxAge": "2h"}, onSourceDiskDelete="ApplyRetention")
    status = SnapshotPolicyStatus()
    for _ in range(3):
        status = fold(status, await Reconciler(cloud, clock).reconcile(the_policy, status, claims=store))
        clock.advance(timedelta(hours=1))
    store.remove_claim("shop", "data-010")
    store.remove_claim("shop", "data-054")
    clock.advance(timedelta(hours=5))
    # The status is gone (wiped, or never written back): what Azure holds of the policy tells the disks again.
    report = await Reconciler(cloud, clock).reconcile(the_policy, SnapshotPolicyStatus(), claims=store)
    status = fold(SnapshotPolicyStatus(), report)
    gone = {e.claim: e for e in status.disks or [] if e.reason == "ClaimNotFound"}
    assert sorted(gone) == ["(claim of disk pvc-010)", "(claim of disk pvc-054)"]
    assert all(e.count == 1 for e in gone.values())  # ApplyRetention: all but the newest good one retired
    assert len(owned(cloud, disks[10].id)) == len(owned(cloud, disks[54].id)) == 1
    assert status.snapshot_count == sum(len(owned(cloud, d.id)) for d in disks)
