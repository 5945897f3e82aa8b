"""Claim targets: the spec's three targets (model and CRD alike), claims resolved to disks, and the reconcile of each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.crd import schema_errors
from tests.support.status import fold_status as fold

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.conditions import HealthState
from azsnap.domain.models import DeletionPolicy, Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.scope import ScopeGuard
from azsnap.domain.targets import MAX_DISK_ENTRIES, DiskEntry, bounded_entries
from azsnap.domain.validation import validate_manifest
from azsnap.domain.volumes import ClaimProblem, resolve_targets
from azsnap.reconciler import Reconciler
from azsnap.reconciler.claims import ClaimInterest, ClaimStore, slim_claim, slim_volume

SUB = "00000000-0000-0000-0000-000000000000"
NODE_RG = "mc_rg-aks_aks-1_westeurope"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


def disk_id(name: str, group: str = NODE_RG) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/disks/{name}"


def manifest(**spec: Any) -> dict[str, Any]:
    body = {"schedule": {"every": "1h"}, "retention": {"keepLast": 3}, **spec}
    return {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": body,
    }


def claim(
    name: str, namespace: str = "shop", *, labels: dict[str, str] | None = None, volume: str = ""
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}", "labels": labels or {}},
        "spec": {"volumeName": volume} if volume else {},
        "status": {"phase": "Bound" if volume else "Pending"},
    }


def volume(name: str, claim_name: str, source: dict[str, Any], namespace: str = "shop") -> dict[str, Any]:
    ref = {"namespace": namespace, "name": claim_name, "uid": f"uid-{namespace}-{claim_name}"}
    return {"metadata": {"name": name}, "spec": {"claimRef": ref, **source}}


def csi(disk: str) -> dict[str, Any]:
    return {"csi": {"driver": "disk.csi.azure.com", "volumeHandle": disk}}


def bound(store: ClaimStore, name: str, disk: str, *, labels: dict[str, str] | None = None, ns: str = "shop") -> None:
    store.put_claim(claim(name, ns, labels=labels, volume=f"pv-{ns}-{name}"))
    store.put_volume(volume(f"pv-{ns}-{name}", name, csi(disk), ns))


# -- the spec ------------------------------------------------------------------------------------------------------

TARGETS = {
    "disk": {"disk": {"id": disk_id("d")}},
    "claim": {"volumeClaim": "data-pg-0"},
    "selector": {"volumeClaimSelector": {"matchLabels": {"app": "pg"}}},
}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_each_target_alone_is_valid_for_the_crd_and_the_model(target: str) -> None:
    doc = manifest(**TARGETS[target])
    assert schema_errors(doc) == []
    spec, errors = validate_manifest(doc)
    assert errors == [] and spec is not None


@pytest.mark.parametrize("pair", [("disk", "claim"), ("claim", "selector"), ("disk", "selector"), ()])
def test_none_or_two_targets_are_refused_by_the_crd_and_the_model_alike(pair: tuple[str, ...]) -> None:
    doc = manifest(**{k: v for name in pair for k, v in TARGETS[name].items()})
    crd = [str(e) for e in schema_errors(doc)]
    assert crd == ["spec: set exactly one of disk (an ARM ID), volumeClaim (a PersistentVolumeClaim of this namespace) "
                   "and volumeClaimSelector (a label selector over this namespace's PersistentVolumeClaims)"]  # fmt: skip
    spec, errors = validate_manifest(doc)
    assert spec is None and [e.path for e in errors] == ["spec"]
    assert errors[0].message.startswith("set exactly one of disk (an ARM ID), volumeClaim")


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ({"matchExpressions": [{"key": "app", "operator": "Exists", "values": ["x"]}]}, "values"),
        ({"matchExpressions": [{"key": "app", "operator": "In"}]}, "values"),
        ({"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]}, "operator"),
        ({"matchLabels": {"app": 3}}, "matchLabels"),
    ],
)
def test_a_bad_selector_is_refused_by_the_crd_and_the_model(selector: dict[str, Any], problem: str) -> None:
    doc = manifest(volumeClaimSelector=selector)
    assert any(problem in str(e) for e in schema_errors(doc))
    spec, errors = validate_manifest(doc)
    assert spec is None and any(e.path.startswith("spec.volumeClaimSelector") for e in errors), errors


def test_a_claim_name_must_be_a_kubernetes_name() -> None:
    doc = manifest(volumeClaim="Data_PG")
    assert any("volumeClaim" in str(e) for e in schema_errors(doc))
    spec, errors = validate_manifest(doc)
    assert spec is None and [e.path for e in errors] == ["spec.volumeClaim"]
    assert "not a PersistentVolumeClaim name" in errors[0].message


# -- resolution ----------------------------------------------------------------------------------------------------


def spec_of(**target: Any) -> SnapshotPolicySpec:
    return SnapshotPolicySpec.model_validate({"schedule": {"every": "1h"}, "retention": {"keepLast": 3}, **target})


def test_a_selector_resolves_the_claims_it_matches_in_its_own_namespace_only() -> None:
    store = ClaimStore()
    for i in range(3):
        bound(store, f"data-pg-{i}", disk_id(f"pvc-{i}"), labels={"app": "pg"})
    bound(store, "data-web-0", disk_id("pvc-web"), labels={"app": "web"})
    bound(store, "data-pg-9", disk_id("pvc-other-ns"), labels={"app": "pg"}, ns="other")
    resolved = resolve_targets(spec_of(volumeClaimSelector={"matchLabels": {"app": "pg"}}), "shop", store)
    assert [(r.claim, r.disk_id) for r in resolved] == [(f"shop/data-pg-{i}", disk_id(f"pvc-{i}")) for i in range(3)]


def test_problems_come_with_their_reasons() -> None:
    store = ClaimStore()
    store.put_claim(claim("pending", labels={"app": "pg"}))
    store.put_claim(claim("nfs", labels={"app": "pg"}, volume="pv-nfs"))
    store.put_volume(volume("pv-nfs", "nfs", {"csi": {"driver": "nfs.csi.k8s.io", "volumeHandle": "x"}}))
    bound(store, "a", disk_id("pvc-a"), labels={"app": "pg"})
    bound(store, "b", disk_id("pvc-a", group="other-rg"), labels={"app": "pg"})  # same disk name: would collide
    resolved = resolve_targets(spec_of(volumeClaimSelector={"matchLabels": {"app": "pg"}}), "shop", store)
    reasons = {r.claim: r.problem for r in resolved}
    assert reasons == {
        "shop/a": None,
        "shop/b": ClaimProblem.DUPLICATE_DISK,
        "shop/nfs": ClaimProblem.NOT_AZURE_DISK,
        "shop/pending": ClaimProblem.CLAIM_PENDING,
    }
    gone = resolve_targets(spec_of(volumeClaim="nope"), "shop", store)
    assert [r.problem for r in gone] == [ClaimProblem.CLAIM_NOT_FOUND]


def test_the_slim_copies_keep_what_resolution_reads() -> None:
    store = ClaimStore()
    full_claim = {**claim("a", labels={"app": "pg"}, volume="pv-a"), "spec": {"volumeName": "pv-a", "resources": {}}}
    full_volume = volume("pv-a", "a", {**csi(disk_id("pvc-a")), "capacity": {"storage": "4Gi"}})
    full_volume["spec"]["csi"]["volumeAttributes"] = {"big": "x" * 1000}
    store.put_claim(slim_claim(full_claim))
    store.put_volume(slim_volume(full_volume))
    (found,) = resolve_targets(spec_of(volumeClaim="a"), "shop", store)
    assert found.disk_id == disk_id("pvc-a")
    assert "volumeAttributes" not in str(slim_volume(full_volume))


def test_interest_wakes_only_the_policies_that_cover_a_claim() -> None:
    interest = ClaimInterest()
    interest.remember("sel", "shop", spec_of(volumeClaimSelector={"matchLabels": {"app": "pg"}}))
    interest.remember("one", "shop", spec_of(volumeClaim="data-pg-0"))
    interest.remember("elsewhere", "other", spec_of(volumeClaimSelector={}))
    interest.remember("disk", "shop", spec_of(disk={"id": disk_id("d")}))
    assert sorted(interest.covering("shop", "data-pg-0", {"app": "pg"})) == ["one", "sel"]
    assert interest.covering("shop", "data-web-0", {"app": "web"}) == []
    assert interest.covering("other", "x", {}) == ["elsewhere"]
    assert sorted(interest.covering("shop", "unknown", None)) == ["sel"]
    # A claim the selector's status lists wakes it even once relabelled out of the selector (to mark it gone).
    interest.remember_listed("sel", {"disks": [{"claim": "data-pg-1", "state": "Ready"}]})
    assert interest.covering("shop", "data-pg-1", {"app": "other"}) == ["sel"]
    interest.forget("sel")
    assert interest.covering("shop", "data-pg-1", {"app": "pg"}) == []  # forgotten with its policy


def test_entries_are_bounded_worst_first() -> None:
    entries = [DiskEntry(claim=f"c{i:03}", state="Ready", missed=0) for i in range(120)]
    entries.append(DiskEntry(claim="z-stalled", state="Stalled"))
    entries.append(DiskEntry(claim="y-missed", state="Ready", missed=4))
    shown, hidden = bounded_entries(entries)
    assert len(shown) == MAX_DISK_ENTRIES and hidden == 122 - MAX_DISK_ENTRIES
    assert [e.claim for e in shown[:3]] == ["z-stalled", "y-missed", "c000"]


# -- the reconcile -------------------------------------------------------------------------------------------------


def policy(**target: Any) -> Policy:
    return Policy(PolicyRef("shop", "pg", "uid-pg", 1), spec_of(**target))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def cloud(clock: ManualClock) -> MemoryCloud:
    return MemoryCloud(clock)


def owned(cloud: MemoryCloud, disk: str) -> list[str]:
    return sorted(s.name for s in cloud.snapshots if (s.source_resource_id or "").lower() == disk.lower())


async def test_a_selector_policy_snapshots_each_disk_and_reports_each_claim(
    cloud: MemoryCloud, clock: ManualClock
) -> None:
    store = ClaimStore()
    disks = [cloud.add_disk(SUB, NODE_RG, f"pvc-{i}") for i in range(2)]
    for i, disk in enumerate(disks):
        bound(store, f"data-pg-{i}", disk.id, labels={"app": "pg"})
    store.put_claim(claim("data-pg-2", labels={"app": "pg"}))  # pending
    reconciler = Reconciler(cloud, clock)
    the_policy = policy(volumeClaimSelector={"matchLabels": {"app": "pg"}})
    report = await reconciler.reconcile(the_policy, SnapshotPolicyStatus(), claims=store)
    assert report.health.state is HealthState.READY
    assert len(report.created) == 2 and all(len(owned(cloud, d.id)) == 1 for d in disks)
    status = fold(SnapshotPolicyStatus(), report)
    assert status.disks_ready == "2/3" and status.snapshot_count == 2 and status.disks_not_shown == 0
    by_claim = {e.claim: e for e in status.disks or []}
    assert by_claim["data-pg-2"].state == "Unresolved" and by_claim["data-pg-2"].reason == "ClaimPending"
    assert by_claim["data-pg-0"].state == "Ready" and by_claim["data-pg-0"].count == 1
    assert by_claim["data-pg-0"].slots_accounted_until is not None
    assert status.disk_name is None
    # Nothing due: a second reconcile creates nothing (one plan per disk, on each disk's own accounting).
    again = await reconciler.reconcile(the_policy, status, claims=store)
    assert again.created == ()

    # The claim is bound later: the next reconcile covers it.
    third = cloud.add_disk(SUB, NODE_RG, "pvc-2")
    bound(store, "data-pg-2", third.id, labels={"app": "pg"})
    status = fold(status, again)
    report = await reconciler.reconcile(the_policy, status, claims=store)
    assert report.created and owned(cloud, third.id)
    status = fold(status, report)
    assert status.disks_ready == "3/3"

    # A claim deleted: no new snapshot of its disk, the old ones kept and still counted.
    store.remove_claim("shop", "data-pg-0")
    clock.advance(timedelta(hours=3))
    report = await reconciler.reconcile(the_policy, status, claims=store)
    status = fold(status, report)
    assert len(owned(cloud, disks[0].id)) == 1
    assert len(owned(cloud, disks[1].id)) == 2
    gone = {e.claim: e for e in status.disks or []}["data-pg-0"]
    assert (gone.state, gone.reason, gone.count) == ("Unresolved", "ClaimNotFound", 1)
    assert "keeps them all" in gone.message
    assert status.disks_ready == "2/2" and report.health.state is HealthState.READY


async def test_a_claim_policy_without_a_disk_says_why_and_makes_no_azure_call(
    cloud: MemoryCloud, clock: ManualClock
) -> None:
    store = ClaimStore()
    store.put_claim(claim("data", volume="pv-nfs"))
    store.put_volume(volume("pv-nfs", "data", {"nfs": {"server": "x", "path": "/"}}))
    reconciler = Reconciler(cloud, clock)
    report = await reconciler.reconcile(policy(volumeClaim="data"), SnapshotPolicyStatus(), claims=store)
    assert (report.health.state, report.health.reason) == (HealthState.STALLED, "NotAzureDisk")
    assert "uses nfs, not an Azure disk" in report.health.message
    assert sum(cloud.calls.values()) == 0
    none = await reconciler.reconcile(
        policy(volumeClaimSelector={"matchLabels": {"a": "b"}}), SnapshotPolicyStatus(), claims=store
    )
    assert (none.health.state, none.health.reason) == (HealthState.STALLED, "NoClaims")
    pending = ClaimStore()
    pending.put_claim(claim("data"))
    report = await reconciler.reconcile(policy(volumeClaim="data"), SnapshotPolicyStatus(), claims=pending)
    assert (report.health.state, report.health.reason) == (HealthState.RETRYING, "ClaimPending")
    unseen = await reconciler.reconcile(policy(volumeClaim="data"), SnapshotPolicyStatus(), claims=None)
    assert unseen.health.reason == "ClaimsUnavailable"


async def test_scope_for_a_claim_disk_checks_where_snapshots_go_not_the_node_group(
    cloud: MemoryCloud, clock: ManualClock
) -> None:
    store = ClaimStore()
    disk = cloud.add_disk(SUB, NODE_RG, "pvc-0")
    bound(store, "data", disk.id)
    guard = ScopeGuard.from_yaml(
        f"- namespaces: [shop]\n  subscriptions: ['{SUB}']\n  diskResourceGroups: [rg-shop]\n"
        "  snapshotResourceGroups: [rg-shop-snapshots]\n"
    )
    reconciler = Reconciler(cloud, clock, scope=guard)
    allowed = policy(volumeClaim="data", snapshot={"resourceGroup": "rg-shop-snapshots"})
    report = await reconciler.reconcile(allowed, SnapshotPolicyStatus(), claims=store)
    assert report.health.state is HealthState.READY and report.created
    refused = policy(volumeClaim="data")  # snapshots would go to the node resource group, which no rule lists
    report = await reconciler.reconcile(refused, SnapshotPolicyStatus(), claims=store)
    assert (report.health.state, report.health.reason) == (HealthState.STALLED, "ScopeNotAllowed")
    assert "set spec.snapshot.resourceGroup" in report.health.message
    # A disk target in the node resource group is still refused: only a claim of the namespace opens it.
    direct = Policy(
        PolicyRef("shop", "d", "uid-d", 1),
        spec_of(disk={"id": disk.id}, snapshot={"resourceGroup": "rg-shop-snapshots"}),
    )
    assert guard.check(direct) is not None


async def test_deletion_with_delete_removes_the_snapshots_of_every_claim_disk(
    cloud: MemoryCloud, clock: ManualClock
) -> None:
    store = ClaimStore()
    disks = [cloud.add_disk(SUB, NODE_RG, f"pvc-{i}") for i in range(2)]
    for i, disk in enumerate(disks):
        bound(store, f"d{i}", disk.id, labels={"app": "pg"})
    reconciler = Reconciler(cloud, clock)
    the_policy = policy(volumeClaimSelector={"matchLabels": {"app": "pg"}}, deletionPolicy="Delete")
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(the_policy, SnapshotPolicyStatus(), claims=store))
    cloud.seed_snapshot(disks[0], "not-ours")
    store.remove_claim("shop", "d1")  # known only from the status now
    kept = Policy(the_policy.ref, the_policy.spec.model_copy(update={"deletion_policy": DeletionPolicy.RETAIN}))
    assert (await reconciler.finalize(kept, status=status, claims=store)).deleted == ()
    done = await reconciler.finalize(the_policy, status=status, claims=store)
    assert done.done and len(done.deleted) == 2
    assert (owned(cloud, disks[0].id), owned(cloud, disks[1].id)) == (["not-ours"], [])


async def test_many_claims_keep_the_status_bounded_and_the_worst_in_view(
    cloud: MemoryCloud, clock: ManualClock
) -> None:
    store = ClaimStore()
    for i in range(MAX_DISK_ENTRIES + 10):
        disk = cloud.add_disk(SUB, NODE_RG, f"pvc-{i:03}")
        bound(store, f"data-{i:03}", disk.id, labels={"app": "pg"})
    store.put_claim(claim("zz-pending", labels={"app": "pg"}))
    reconciler = Reconciler(cloud, clock)
    the_policy = policy(volumeClaimSelector={"matchLabels": {"app": "pg"}})
    report = await reconciler.reconcile(the_policy, SnapshotPolicyStatus(), claims=store)
    status = fold(SnapshotPolicyStatus(), report)
    assert len(status.disks or []) == MAX_DISK_ENTRIES and status.disks_not_shown == 11
    assert (status.disks or [])[0].claim == "zz-pending"  # the one not Ready comes first, whatever its name
    assert status.disks_ready == f"{MAX_DISK_ENTRIES + 10}/{MAX_DISK_ENTRIES + 11}"
    assert status.snapshot_count == MAX_DISK_ENTRIES + 10  # every disk took its slot, shown in disks or not
    assert len(report.events) == 10 and report.events[-1].reason == "MoreEvents"


async def test_apply_retention_retires_a_gone_claims_snapshots_but_never_the_newest(
    cloud: MemoryCloud, clock: ManualClock
) -> None:
    store = ClaimStore()
    disk = cloud.add_disk(SUB, NODE_RG, "pvc-0")
    bound(store, "data", disk.id, labels={"app": "pg"})
    reconciler = Reconciler(cloud, clock)
    the_policy = policy(
        volumeClaimSelector={"matchLabels": {"app": "pg"}},
        retention={"maxAge": "2h"},
        onSourceDiskDelete="ApplyRetention",
    )
    status = SnapshotPolicyStatus()
    for _ in range(4):
        report = await reconciler.reconcile(the_policy, status, claims=store)
        status = fold(status, report)
        clock.advance(timedelta(hours=1))
    held = owned(cloud, disk.id)
    assert len(held) >= 2
    store.remove_claim("shop", "data")
    clock.advance(timedelta(hours=5))
    report = await reconciler.reconcile(the_policy, status, claims=store)
    status = fold(status, report)
    assert owned(cloud, disk.id) == held[-1:]  # all past maxAge, but the newest good one stays
    gone = {e.claim: e for e in status.disks or []}["data"]
    assert (gone.reason, gone.count) == ("ClaimNotFound", 1)
    assert "deletes them by retention" in gone.message
