"""The demo's VolumeSnapshots: its claim policies publish their snapshots, and a snapshot controller binds them.

When a policy of the demo targets claims, the demo runs as a cluster with the external-snapshotter would: the
snapshot CRDs and a VolumeSnapshotClass of the Azure Disk CSI driver are installed, the in-process stand-in for the
snapshot controller and CSI sidecar runs (it reads the snapshot handles from the Azure emulator), the operator's
publishing switch is on, and the policies of one claim ask for `spec.volumeSnapshots` (unless they say otherwise).
At the end the summary says, per publishing policy, how many VolumeSnapshots it has and how many are ready to use.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from azsnap.domain.volume_snapshots import DRIVER, GROUP, LABEL_POLICY, SNAPSHOTS, VERSION
from azsnap.offline.demo_claims import wants_claims

if TYPE_CHECKING:
    from azsnap.emulator.kubernetes import KubeEmulator
    from azsnap.offline.sandbox import Sandbox

__all__ = ["CLASS_NAME", "about_volume_snapshots", "publish_claim_policies", "publishing", "volume_snapshot_lines"]

#: The VolumeSnapshotClass the demo installs and its claim policies name.
CLASS_NAME: Final = "csi-azuredisk-vsc"


def publish_claim_policies(manifests: Iterable[dict[str, Any]]) -> None:
    """Turn publishing on in each policy of one claim (`volumeClaim`) that does not say.

    Not in the selector policies: every object the snapshot API writes is checked against its CRD's CEL rules, so
    publishing the selector example's hundreds of snapshots would make the demo take much longer; one claim shows it.
    """
    for manifest in manifests:
        spec = manifest.get("spec") or {}
        if "volumeClaim" in spec:
            spec.setdefault("volumeSnapshots", {"enabled": True, "volumeSnapshotClassName": CLASS_NAME})


@contextlib.asynccontextmanager
async def publishing(kube: KubeEmulator, box: Sandbox, manifests: Iterable[Mapping[str, Any]]) -> AsyncIterator[None]:
    """With claim policies: the snapshot CRDs, a class, the stand-in controller and the operator's switch on."""
    if not wants_claims(manifests):
        yield
        return
    import kopf

    from azsnap.emulator.kubernetes.snapshot_controller import install_snapshot_crds, running
    from azsnap.handlers.volume_snapshots import KubeSnapshots

    install_snapshot_crds(kube)
    kube.apply({"apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshotClass", "metadata": {"name": CLASS_NAME},
                "driver": DRIVER, "deletionPolicy": "Delete"})  # fmt: skip
    objects = box.runtime.snapshot_objects = KubeSnapshots(kopf.ConnectionInfo(server=kube.url))
    try:
        async with running(kube, box.emulator, box.clock):
            yield
    finally:
        await objects.close()
        box.runtime.snapshot_objects = None


def about_volume_snapshots(event: Mapping[str, Any]) -> bool:
    """Whether an Event is the snapshot controller's about its objects (the demo counts and shows azsnap's only)."""
    return str((event.get("involvedObject") or {}).get("apiVersion") or "").startswith(f"{GROUP}/")


def volume_snapshot_lines(kube: KubeEmulator, policies: Iterable[Mapping[str, Any]]) -> list[str]:
    """Per publishing policy: its VolumeSnapshots now, how many are ready, and what its status says."""
    count: Counter[tuple[str, str]] = Counter()
    ready: Counter[tuple[str, str]] = Counter()
    for obj in kube.list(GROUP, VERSION, SNAPSHOTS, None):
        owner = (obj["metadata"].get("labels") or {}).get(LABEL_POLICY)
        if owner:
            count[obj["metadata"]["namespace"], owner] += 1
            ready[obj["metadata"]["namespace"], owner] += bool((obj.get("status") or {}).get("readyToUse"))
    lines = []
    for policy in policies:
        status = (policy.get("status") or {}).get("volumeSnapshots")
        if not status:
            continue
        key = (policy["metadata"]["namespace"], policy["metadata"]["name"])
        lines.append(
            f"VolumeSnapshots of {key[1]}: {count[key]} in namespace {key[0]}, {ready[key]} ready to use (status: "
            f"{status.get('state')}, {status.get('published', 0)} published, {status.get('ready', 0)} ready)"
        )
    return lines
