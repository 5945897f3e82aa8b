"""Copies of a policy over PersistentVolumeClaims, through the real SDK against the emulator: each claim's disk is
copied as a policy of its own would be (its own ownership tags, creation order, one copy at a time per disk,
sources held while needed), its accounting kept in its `status.disks` entry and summed per target in
`status.copies`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.e2e.test_copies_azure import NOW, SUB, TARGET, Rig, failed, make_config, make_rig
from tests.support.crd import schema_errors
from tests.support.status import fold_status as fold

from azsnap.domain import naming
from azsnap.domain.copies import TAG_COPY_DISK, TAG_COPY_OF, disk_hash
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler import Reconciler
from azsnap.reconciler.claims import ClaimStore

pytestmark = pytest.mark.e2e

DISKS = 3


def disk_of(i: int) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Compute/disks/disk-{i}"


def claims() -> ClaimStore:
    store = ClaimStore()
    for i in range(DISKS):
        uid = f"uid-claim-{i}"
        store.put_claim({
            "metadata": {"name": f"data-pg-{i}", "namespace": "shop", "uid": uid, "labels": {"app": "pg"}},
            "spec": {"volumeName": f"pv-{i}"}, "status": {"phase": "Bound"},
        })  # fmt: skip
        store.put_volume({
            "metadata": {"name": f"pv-{i}"},
            "spec": {"claimRef": {"namespace": "shop", "name": f"data-pg-{i}", "uid": uid},
                     "csi": {"driver": "disk.csi.azure.com", "volumeHandle": disk_of(i)}},
        })  # fmt: skip
    return store


def claim_policy() -> Policy:
    spec = {
        "volumeClaimSelector": {"matchLabels": {"app": "pg"}},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 1},
        "copies": [{**TARGET, "retention": {"keepLast": 2}}],
    }
    return Policy(PolicyRef("shop", "pg", "uid-pg", 1), SnapshotPolicySpec.model_validate(spec))


def running_per_disk(rig: Rig) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in rig.copies():
        if c["properties"].get("completionPercent", 100.0) < 100.0 and not failed(c):
            counts[c["tags"][TAG_COPY_DISK]] = counts.get(c["tags"][TAG_COPY_DISK], 0) + 1
    return counts


async def test_each_claim_disk_is_copied_in_order_one_at_a_time_with_its_status_summed() -> None:
    async with make_rig(make_config(), DISKS) as rig:
        policy, store = claim_policy(), claims()
        status = SnapshotPolicyStatus()
        reconciler = Reconciler(rig.cloud, rig.clock)
        most_per_disk, restarted = 0, False
        end = NOW + timedelta(hours=5, minutes=59)  # before the 15:00 slot, whose copy would start with its snapshot
        while rig.clock.now() < end:
            report = await reconciler.reconcile(policy, status, claims=store)
            status = fold(status, report)
            most_per_disk = max([most_per_disk, *running_per_disk(rig).values()])
            if not restarted and rig.clock.now() >= NOW + timedelta(hours=2, minutes=3) and running_per_disk(rig):
                reconciler, restarted = Reconciler(rig.cloud, rig.clock), True  # a restart mid-copy: no copy twice
            rig.clock.set(min(report.next_time, end))

        assert restarted and most_per_disk == 1  # one copy at a time per disk, though the three disks copy side by side
        assert rig.refusals() == 0 and rig.emulator.violations == []  # in order; no source deleted mid-copy
        puts = rig.copy_puts()
        assert len(puts) == len(set(puts)) == 6 * DISKS  # each hourly snapshot of each disk copied once
        copies = rig.copies()
        for i in range(DISKS):
            mine = [c for c in copies if c["tags"][TAG_COPY_DISK] == disk_hash(disk_of(i))]
            assert len(mine) == 2  # the target's keepLast 2, per disk
            assert all(c["tags"][TAG_COPY_OF].startswith(f"disk-{i}-") for c in mine)
            assert all(c["tags"][naming.TAG_POLICY_UID] == "uid-pg" for c in mine)
            assert len(rig.emulator.snapshots(SUB, "rg-data")) <= 2 * DISKS  # the sources' own retention went on

        entries = {e.claim: e for e in status.disks or []}
        assert sorted(entries) == [f"data-pg-{i}" for i in range(DISKS)]
        for entry in entries.values():
            (mine_state,) = entry.copies or []
            assert (mine_state["copiesHeld"], mine_state["copiesMissed"]) == (2, 0)
            assert mine_state["newestCopiedSlot"] == "2026-03-02T14:00:00Z"
            assert len(mine_state["recentLagSeconds"]) == 6  # 09:00 .. 14:00 seen complete, each counted once
        (summed,) = status.copies or []
        running = sum((e.copies or [{}])[0].get("copiesRunning", 0) for e in entries.values())
        assert (summed["copiesHeld"], summed["copiesMissed"], summed["copiesRunning"]) == (2 * DISKS, 0, running)
        assert summed["newestCopiedSlot"] == "2026-03-02T14:00:00Z"
        assert len(summed["recentLagSeconds"]) == 6 * DISKS
        assert 5 * 60 <= summed["lagP50Seconds"] <= summed["lagMaxSeconds"] <= 15 * 60
        doc: dict[str, Any] = {
            "apiVersion": "azsnap.io/v1alpha1",
            "kind": "SnapshotPolicy",
            "metadata": {"name": "pg", "namespace": "shop"},
            "spec": policy.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "status": status.model_dump(by_alias=True, exclude_none=True, mode="json"),
        }
        assert schema_errors(doc) == []  # the CRD accepts the spec and the per-disk copy status
