"""Claims in the in-process Kubernetes API, and what the volume controllers do with them (a volume, both Bound)."""

from __future__ import annotations

from typing import Any, Final

from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.offline.sandbox import disk_id

__all__ = ["LABELS", "azure_disk", "bind", "claim_manifest", "claim_of_disk"]

LABELS: Final = {"app": "pg"}


def claim_manifest(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}},
                 "storageClassName": "managed-csi"},
    }  # fmt: skip


def bind(kube: KubeEmulator, name: str, namespace: str, source: dict[str, Any]) -> None:
    """What the volume controllers do: a PersistentVolume made for the claim, and both marked Bound."""
    volume = f"pv-{namespace}-{name}"
    claim = kube.get("", "v1", "persistentvolumeclaims", namespace, name) or {}
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
        "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "4Gi"}, "storageClassName": "managed-csi",
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": name,
                              "uid": claim["metadata"]["uid"]}, **source},
    })  # fmt: skip
    kube.patch("", "v1", "persistentvolumeclaims", namespace, name, {"spec": {"volumeName": volume}})
    bound = {"status": {"phase": "Bound", "capacity": {"storage": "4Gi"}}}
    kube.patch("", "v1", "persistentvolumeclaims", namespace, name, bound, subresource="status")
    kube.patch("", "v1", "persistentvolumes", None, volume, {"status": {"phase": "Bound"}}, subresource="status")


def azure_disk(name: str) -> dict[str, Any]:
    """A volume source: the Azure Disk CSI driver's handle of the emulator's disk."""
    return {"csi": {"driver": "disk.csi.azure.com", "volumeHandle": disk_id(name)}}


def claim_of_disk(kube: KubeEmulator, name: str, disk: str, *, namespace: str = "default") -> None:
    """A claim labelled `LABELS`, bound to a CSI volume of the disk."""
    kube.apply(claim_manifest(name, namespace, LABELS))
    bind(kube, name, namespace, azure_disk(disk))
