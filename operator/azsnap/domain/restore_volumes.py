"""The PersistentVolume and claim of a restored disk, pure: what azsnap asks the Kubernetes API to create."""

from __future__ import annotations

from typing import Any, Final

from azsnap.domain.observed import Disk
from azsnap.domain.restore import RestoreRef, SnapshotRestoreSpec

__all__ = ["CSI_DRIVER", "LABEL_RESTORE_UID", "claim_manifest", "volume_manifest"]

#: The Azure Disk CSI driver: its volumeHandle is the disk's ARM ID.
CSI_DRIVER: Final = "disk.csi.azure.com"
#: The driver's zone topology key; its values are `<region>-<zone>`.
ZONE_KEY: Final = "topology.disk.csi.azure.com/zone"
#: On the volume and claim: the restore that made them (azsnap never touches one without it).
LABEL_RESTORE_UID: Final = "azsnap.io/restore-uid"
_GIB: Final = 1024**3


def _meta(name: str, restore: RestoreRef, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"app.kubernetes.io/managed-by": "azsnap", LABEL_RESTORE_UID: restore.uid},
    }
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _size(disk: Disk) -> str:
    return f"{max(1, -(-disk.size_bytes // _GIB))}Gi"


def volume_manifest(restore: RestoreRef, spec: SnapshotRestoreSpec, disk: Disk) -> dict[str, Any]:
    """A PersistentVolume for the disk (reclaim policy Retain: deleting it never deletes the disk)."""
    assert spec.persistent_volume is not None
    volume: dict[str, Any] = {
        "capacity": {"storage": _size(disk)},
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": "Retain",
        "storageClassName": spec.persistent_volume.storage_class_name,
        "volumeMode": "Filesystem",
        "csi": {"driver": CSI_DRIVER, "volumeHandle": disk.id},
    }
    claim = spec.persistent_volume_claim
    if claim is not None:
        # Pre-bound to the claim, so no other claim can take the volume first.
        volume["claimRef"] = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "namespace": restore.namespace,
            "name": claim.name,
        }
    if disk.zone:
        # A zonal disk attaches only to nodes of its zone.
        term = {"matchExpressions": [{"key": ZONE_KEY, "operator": "In", "values": [f"{disk.location}-{disk.zone}"]}]}
        volume["nodeAffinity"] = {"required": {"nodeSelectorTerms": [term]}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": _meta(spec.persistent_volume.name, restore),
        "spec": volume,
    }


def claim_manifest(restore: RestoreRef, spec: SnapshotRestoreSpec, disk: Disk) -> dict[str, Any]:
    """A PersistentVolumeClaim in the restore's namespace, bound to the restore's PersistentVolume by name."""
    assert spec.persistent_volume is not None and spec.persistent_volume_claim is not None
    claim = spec.persistent_volume_claim
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(claim.name, restore, restore.namespace),
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": _size(disk)}},
            "storageClassName": claim.storage_class_name or spec.persistent_volume.storage_class_name,
            "volumeMode": "Filesystem",
            "volumeName": spec.persistent_volume.name,
        },
    }
