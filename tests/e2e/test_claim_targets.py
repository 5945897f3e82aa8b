"""Claim targets end to end: kopf against the in-process Kubernetes API (claims, volumes, policies), the real Azure
SDK against the emulator, in emulated time.

A selector policy covers the three claims it matches, a fourth claim created later is covered by the reconcile its
creation wakes (long before the next slot), a deleted claim stops getting snapshots and keeps the ones it has, a
claim bound to another driver and a pending claim each show their reason, and a claim of another namespace is never
reached, even when its labels match.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import kopf
import pytest
from tests.support.claims import LABELS
from tests.support.claims import bind as _bind
from tests.support.claims import claim_manifest as _claim
from tests.support.claims import claim_of_disk as _claim_of_disk
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, condition, eventually, install_project_crd, policy_manifest

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.emulator import DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.offline.sandbox import Sandbox, azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]


def _snapshots(box: Sandbox, disk: str) -> list[str]:
    source = disk_id(disk).lower()
    return sorted(
        s["name"]
        for s in box.emulator.snapshots(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP)
        if s["properties"]["creationData"]["sourceResourceId"].lower() == source
    )


def _entries(kube: KubeEmulator) -> dict[str, dict[str, Any]]:
    status = (kube.get(*SNAPSHOT_POLICY, "default", "pg") or {}).get("status") or {}
    return {e["claim"]: e for e in status.get("disks") or []}


@asynccontextmanager
async def _operator(kube: KubeEmulator, *, disks: int = 6) -> AsyncIterator[Sandbox]:
    """The sandbox on the loop's clock, with the real handlers watching every namespace."""
    install_project_crd(kube)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    async with (
        azure_sandbox(LoopClock(EPOCH), disks=disks) as box,
        run_operator(kube=kube, memo=kopf.Memo({MEMO_KEY: box.runtime})),
    ):
        yield box


async def test_a_selector_policy_follows_its_claims_as_they_come_and_go(kube: KubeEmulator) -> None:
    async with _operator(kube) as box:
        for i in range(3):
            _claim_of_disk(kube, f"data-pg-{i}", f"disk-{i}")
        _claim_of_disk(kube, "data-pg-0", "disk-5", namespace="other")  # matching labels, another namespace
        kube.apply(_claim("pending-0", "default", LABELS))
        kube.apply(_claim("nfs-0", "default", LABELS))
        _bind(kube, "nfs-0", "default", {"csi": {"driver": "nfs.csi.k8s.io", "volumeHandle": "server/share"}})
        spec = {"volumeClaimSelector": {"matchLabels": LABELS}, "schedule": {"every": "1h"},
                "retention": {"keepLast": 5}}  # fmt: skip
        kube.apply(policy_manifest("pg", spec))

        def three_ready() -> bool:
            entries = _entries(kube)
            return sum(1 for e in entries.values() if e["state"] == "Ready") == 3

        await eventually(three_ready)
        status = (kube.get(*SNAPSHOT_POLICY, "default", "pg") or {})["status"]
        assert status["disksReady"] == "3/5"
        assert (condition(kube.get(*SNAPSHOT_POLICY, "default", "pg"), "Ready") or {}).get("status") == "True"
        entries = _entries(kube)
        assert (entries["pending-0"]["state"], entries["pending-0"]["reason"]) == ("Unresolved", "ClaimPending")
        assert (entries["nfs-0"]["state"], entries["nfs-0"]["reason"]) == ("Unresolved", "NotAzureDisk")
        assert "nfs.csi.k8s.io" in entries["nfs-0"]["message"]
        assert [len(_snapshots(box, f"disk-{i}")) for i in range(6)] == [1, 1, 1, 0, 0, 0]
        assert entries["data-pg-0"]["disk"] == disk_id("disk-0")  # this namespace's claim, never the other's

        # A fourth claim, created mid-hour: the reconcile its creation wakes covers it, long before the next slot.
        await asyncio.sleep(20 * 60)
        created_at = asyncio.get_running_loop().time()
        _claim_of_disk(kube, "data-pg-3", "disk-3")
        await eventually(lambda: _snapshots(box, "disk-3"), within=60)
        assert asyncio.get_running_loop().time() - created_at < 60
        await eventually(lambda: _entries(kube).get("data-pg-3", {}).get("state") == "Ready")
        assert kube.get(*SNAPSHOT_POLICY, "default", "pg")["status"]["disksReady"] == "4/6"  # type: ignore[index]

        # A claim deleted: no new snapshot of its disk, the one it has is kept (onSourceDiskDelete: Keep).
        kube.delete("", "v1", "persistentvolumeclaims", "default", "data-pg-0")
        await asyncio.sleep(2 * 3600)
        assert len(_snapshots(box, "disk-0")) == 1
        assert len(_snapshots(box, "disk-1")) == 3 and len(_snapshots(box, "disk-3")) >= 2
        gone = _entries(kube)["data-pg-0"]
        assert (gone["state"], gone["reason"], gone["count"]) == ("Unresolved", "ClaimNotFound", 1)
        assert _snapshots(box, "disk-5") == []

        # A claim relabelled out of the selector: the change wakes the policy, which stops snapshotting its disk.
        kube.patch("", "v1", "persistentvolumeclaims", "default", "data-pg-1", {"metadata": {"labels": {"app": "web"}}})
        relabelled_at = asyncio.get_running_loop().time()
        await eventually(lambda: _entries(kube)["data-pg-1"]["state"] == "Unresolved", within=60)
        assert asyncio.get_running_loop().time() - relabelled_at < 60
        assert _entries(kube)["data-pg-1"]["reason"] == "ClaimNotFound"
