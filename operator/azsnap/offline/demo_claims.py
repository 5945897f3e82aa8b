"""The demo's StatefulSet-like claims: `data-postgres-<i>` (app=postgres) on Azure Disk CSI volumes, one more mid-run.

Kubernetes has no volume controllers in the demo: what they would do (a PersistentVolume made for the claim, both
marked Bound) is done here, through the API as they would. The disks live in a node resource group, as AKS's do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from azsnap.emulator import DEMO_LOCATION, DEMO_SUBSCRIPTION, Emulator
from azsnap.offline.sandbox import disk_id

if TYPE_CHECKING:
    from azsnap.emulator.kubernetes import KubeEmulator

__all__ = ["CLAIMS", "FIRST_CLAIMS", "NODE_GROUP", "add_claim", "seed_claim_disks", "start_claims", "wants_claims"]

#: The cluster's node resource group, where the Azure Disk CSI driver creates the claims' disks.
NODE_GROUP: Final = "mc_rg-demo_aks-demo_westeurope"
#: Claims at the start; one more is added halfway through the run, as a StatefulSet scaling up would.
FIRST_CLAIMS: Final = 3
CLAIMS: Final = FIRST_CLAIMS + 1
_LABELS: Final = {"app": "postgres"}


def wants_claims(manifests: Iterable[Mapping[str, Any]]) -> bool:
    """Whether any policy targets claims (then the demo makes them)."""
    return any("disk" not in (m.get("spec") or {}) for m in manifests)


def _disk(index: int) -> str:
    return f"pvc-postgres-{index}"


def seed_claim_disks(emulator: Emulator) -> None:
    """The claims' disks, in the node resource group."""
    for i in range(CLAIMS):
        emulator.seed_disk(DEMO_SUBSCRIPTION, NODE_GROUP, _disk(i), location=DEMO_LOCATION)


def add_claim(kube: KubeEmulator, index: int, namespace: str = "default") -> None:
    """Claim `data-postgres-<index>`, bound to a CSI volume of its disk, as the provisioner and binder leave it."""
    name, volume = f"data-postgres-{index}", f"pvc-postgres-{index}"
    claim = kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(_LABELS)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "128Gi"}},
                 "storageClassName": "managed-csi"},
    })  # fmt: skip
    handle = disk_id(_disk(index), resource_group=NODE_GROUP)
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
        "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "128Gi"}, "storageClassName": "managed-csi",
                 "csi": {"driver": "disk.csi.azure.com", "volumeHandle": handle},
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": name,
                              "uid": claim["metadata"]["uid"]}},
    })  # fmt: skip
    kube.patch("", "v1", "persistentvolumeclaims", namespace, name, {"spec": {"volumeName": volume}})
    bound = {"status": {"phase": "Bound", "capacity": {"storage": "128Gi"}}}
    kube.patch("", "v1", "persistentvolumeclaims", namespace, name, bound, subresource="status")
    kube.patch("", "v1", "persistentvolumes", None, volume, {"status": {"phase": "Bound"}}, subresource="status")


def start_claims(kube: KubeEmulator, emulator: Emulator, manifests: Iterable[Mapping[str, Any]], hours: float) -> None:
    """When a policy targets claims: their disks, the first claims now, one more half an hour before mid-run."""
    if not wants_claims(manifests):
        return
    seed_claim_disks(emulator)
    for i in range(FIRST_CLAIMS):
        add_claim(kube, i)
    # A StatefulSet scales up halfway through, between two slots (call_later runs on the loop's emulated clock).
    asyncio.get_running_loop().call_later((hours / 2 - 0.5) * 3600, add_claim, kube, FIRST_CLAIMS)
