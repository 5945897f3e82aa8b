"""Helpers for tests of VolumeSnapshot publishing: the snapshot CRDs in the in-process API (`install_snapshot_crds`),
a VolumeSnapshotClass, bound claims, the operator with publishing on, and reading what it published."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import kopf
from tests.support.claims import LABELS, claim_of_disk
from tests.support.kube import SNAPSHOT_POLICY, condition, policy_manifest

from azsnap.domain.volume_snapshots import CONTENTS, GROUP, SNAPSHOTS, VERSION
from azsnap.emulator import DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.emulator.kubernetes.snapshot_controller import install_snapshot_crds
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.handlers.volume_snapshots import KubeSnapshots
from azsnap.offline.sandbox import Sandbox, disk_id

__all__ = [
    "CLASS",
    "LABELS",
    "PUBLISH",
    "azure_ids",
    "claim_of_disk",
    "contents",
    "handles",
    "install_snapshot_crds",
    "operator",
    "pg_policy",
    "published_status",
    "ready",
    "volume_snapshots",
]

PUBLISH: Final = {"enabled": True, "volumeSnapshotClassName": "csi-azuredisk-vsc"}


CLASS: Final = {
    "apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshotClass", "metadata": {"name": "csi-azuredisk-vsc"},
    "driver": "disk.csi.azure.com", "deletionPolicy": "Delete",
}  # fmt: skip


def azure_ids(box: Sandbox, disk: str) -> set[str]:
    """The ARM IDs of the disk's snapshots in Azure now."""
    source = disk_id(disk).lower()
    return {
        s["id"]
        for s in box.emulator.snapshots(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP)
        if s["properties"]["creationData"]["sourceResourceId"].lower() == source
    }


def volume_snapshots(kube: KubeEmulator, namespace: str = "default") -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in kube.list(GROUP, VERSION, SNAPSHOTS, namespace)}


def contents(kube: KubeEmulator) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in kube.list(GROUP, VERSION, CONTENTS, None)}


def handles(kube: KubeEmulator) -> set[str]:
    """The snapshot handles of the published contents."""
    return {c["spec"]["source"]["snapshotHandle"] for c in contents(kube).values()}


def published_status(kube: KubeEmulator, name: str = "pg") -> Mapping[str, Any]:
    return ((kube.get(*SNAPSHOT_POLICY, "default", name) or {}).get("status") or {}).get("volumeSnapshots") or {}


def ready(kube: KubeEmulator, name: str) -> bool:
    return (condition(kube.get(*SNAPSHOT_POLICY, "default", name), "Ready") or {}).get("status") == "True"


@asynccontextmanager
async def operator(kube: KubeEmulator, box: Sandbox, *, publishing: bool = True) -> AsyncIterator[None]:
    """The real handlers on the sandbox's runtime; with `publishing` the operator's switch is on."""
    if publishing:
        box.runtime.snapshot_objects = KubeSnapshots(kopf.ConnectionInfo(server=kube.url))
    try:
        async with run_operator(kube=kube, memo=kopf.Memo({MEMO_KEY: box.runtime})):
            yield
    finally:
        if isinstance(box.runtime.snapshot_objects, KubeSnapshots):
            await box.runtime.snapshot_objects.close()
        box.runtime.snapshot_objects = None
        box.runtime.publisher = None


def pg_policy(keep_last: int = 2, **extra: Any) -> dict[str, Any]:
    spec = {"volumeClaimSelector": {"matchLabels": LABELS}, "schedule": {"every": "1h"},
            "retention": {"keepLast": keep_last}, "volumeSnapshots": PUBLISH, **extra}  # fmt: skip
    return policy_manifest("pg", spec)
