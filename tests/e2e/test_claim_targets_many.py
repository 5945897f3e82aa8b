"""A selector over more claims than `status.disks` lists, end to end: kopf against the in-process Kubernetes API, the
real Azure SDK against the emulator, in emulated time.

Of 55 claims, the five `status.disks` leaves out are deleted: their disks get the gone claim's entry (found again
by the policy's snapshots), keep their snapshots (`onSourceDiskDelete: Keep`) and get no new one. The policy is then
deleted with `deletionPolicy: Delete`: every snapshot it made goes, of listed and left-out disks alike, and a
snapshot someone else made of a left-out disk stays.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tests.e2e.test_claim_targets import LABELS, _claim_of_disk, _operator, _snapshots
from tests.support.kube import SNAPSHOT_POLICY, eventually, policy_manifest

from azsnap.cloud.interface import SnapshotRequest
from azsnap.domain.targets import MAX_DISK_ENTRIES
from azsnap.emulator import DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.offline.sandbox import Sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

COUNT = MAX_DISK_ENTRIES + 5


def _ours(box: Sandbox, disk: str) -> list[str]:
    return [name for name in _snapshots(box, disk) if name != "manual-backup"]


def _status(kube: KubeEmulator) -> dict[str, Any]:
    return (kube.get(*SNAPSHOT_POLICY, "default", "pg") or {}).get("status") or {}


async def test_deleting_claims_left_out_and_then_the_policy_cleans_up_every_disk_and_nothing_foreign(
    kube: KubeEmulator,
) -> None:
    async with _operator(kube, disks=COUNT) as box:
        for i in range(COUNT):
            _claim_of_disk(kube, f"data-{i:03}", f"disk-{i}")
        foreign = SnapshotRequest(
            subscription_id=DEMO_SUBSCRIPTION,
            resource_group=DEMO_RESOURCE_GROUP,
            name="manual-backup",
            location="westeurope",
            source_disk_id=disk_id(f"disk-{COUNT - 1}"),
            tags={"owner": "someone-else"},
        )
        await box.cloud.create_snapshot(foreign)
        spec = {"volumeClaimSelector": {"matchLabels": LABELS}, "schedule": {"every": "1h"},
                "retention": {"keepLast": 5}, "deletionPolicy": "Delete"}  # fmt: skip
        kube.apply(policy_manifest("pg", spec))
        await eventually(lambda: _status(kube).get("disksReady") == f"{COUNT}/{COUNT}", within=600)
        left_out = [f"data-{i:03}" for i in range(MAX_DISK_ENTRIES, COUNT)]  # all Ready: the last names are left out
        assert _status(kube)["disksNotShown"] == 5
        assert not {e["claim"] for e in _status(kube)["disks"]} & set(left_out)
        await asyncio.sleep(3600)  # a second slot for every disk
        await eventually(lambda: all(len(_ours(box, f"disk-{i}")) == 2 for i in range(COUNT)), within=600)

        for name in left_out:
            kube.delete("", "v1", "persistentvolumeclaims", "default", name)

        def gone_listed() -> bool:
            entries = _status(kube).get("disks") or []
            return sum(1 for e in entries if e.get("reason") == "ClaimNotFound") == 5

        # Not a wake-up latency test (test_claim_targets has those): on a loaded machine the five deletions' wakes
        # may each wait for a reconcile of 55 disks, so the window is wide; gone claims' disks get nothing new meanwhile.
        await eventually(gone_listed, within=3000)
        await asyncio.sleep(2 * 3600)
        gone = [e for e in _status(kube)["disks"] if e.get("reason") == "ClaimNotFound"]
        assert sorted(e["claim"] for e in gone) == [f"(claim of disk disk-{i})" for i in range(MAX_DISK_ENTRIES, COUNT)]
        assert all(e["count"] == 2 and e["state"] == "Unresolved" for e in gone)
        for i in range(MAX_DISK_ENTRIES, COUNT):  # no new snapshot of a gone claim's disk, the two it has kept
            assert len(_ours(box, f"disk-{i}")) == 2, i
        assert all(len(_ours(box, f"disk-{i}")) >= 3 for i in range(MAX_DISK_ENTRIES))  # the others go on
        assert _status(kube)["snapshotCount"] >= 2 * 5 + 3 * MAX_DISK_ENTRIES  # a gone claim's disk still counts

        kube.delete(*SNAPSHOT_POLICY, "default", "pg")
        await eventually(lambda: kube.get(*SNAPSHOT_POLICY, "default", "pg") is None, within=1800)
        assert [s["name"] for s in box.emulator.snapshots()] == ["manual-backup"]
