"""Helpers for tests of VolumeSnapshot publishing: our snapshot CRDs in the in-process API, and bound claims."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import yaml

from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.offline.sandbox import disk_id

__all__ = ["CRDS", "LABELS", "claim_of_disk", "install_snapshot_crds"]

CRDS: Final = Path(__file__).resolve().parents[1] / "data" / "crds"
LABELS: Final = {"app": "pg"}


def install_snapshot_crds(kube: KubeEmulator) -> None:
    """The snapshot.storage.k8s.io CRDs (our test manifests), as a cluster with the external-snapshotter has them."""
    for path in sorted(CRDS.glob("*.snapshot.storage.k8s.io.yaml")):
        kube.install_crd(yaml.safe_load(path.read_text()))


def claim_of_disk(kube: KubeEmulator, name: str, disk: str, *, namespace: str = "default") -> None:
    """A claim, and what the volume controllers do: a CSI volume of the disk made for it, both Bound."""
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace, "labels": LABELS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}},
                 "storageClassName": "managed-csi"},
    })  # fmt: skip
    volume = f"pv-{namespace}-{name}"
    claim = kube.get("", "v1", "persistentvolumeclaims", namespace, name) or {}
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
        "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "4Gi"}, "storageClassName": "managed-csi",
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": name,
                              "uid": claim["metadata"]["uid"]},
                 "csi": {"driver": "disk.csi.azure.com", "volumeHandle": disk_id(disk)}},
    })  # fmt: skip
    kube.patch("", "v1", "persistentvolumeclaims", namespace, name, {"spec": {"volumeName": volume}})
    bound = {"status": {"phase": "Bound", "capacity": {"storage": "4Gi"}}}
    kube.patch("", "v1", "persistentvolumeclaims", namespace, name, bound, subresource="status")
    kube.patch("", "v1", "persistentvolumes", None, volume, {"status": {"phase": "Bound"}}, subresource="status")
