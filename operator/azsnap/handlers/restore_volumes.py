"""Creates a restored disk's PersistentVolume and claim through the Kubernetes API, with kopf's connection info.

Two requests per object at most (a create, and a read when it already exists), so no client library
(`handlers/kube_session.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azsnap.domain.observed import Disk
from azsnap.domain.restore import RestoreRef, SnapshotRestoreSpec
from azsnap.domain.restore_volumes import LABEL_RESTORE_UID, claim_manifest, volume_manifest
from azsnap.handlers.kube_session import KubeSession

__all__ = ["KubeVolumes", "VolumeConflict"]


class VolumeConflict(Exception):
    """A volume or claim of that name exists and was not made by this restore."""


class KubeVolumes(KubeSession):
    """`VolumeWriter` over HTTP: creates what a restore's spec asks for, once, and never takes over another's."""

    async def _create(self, path: str, manifest: Mapping[str, Any], restore: RestoreRef) -> bool:
        """POST the object; True when created now, False when this restore's one already exists."""
        url = self._url(path)
        async with self.session.post(url, json=manifest, headers=self._headers()) as answer:
            if answer.status in (200, 201):
                return True
            if answer.status != 409:
                raise RuntimeError(f"the Kubernetes API answered {answer.status}: {(await answer.text())[:300]}")
        name = manifest["metadata"]["name"]
        async with self.session.get(f"{url}/{name}", headers=self._headers()) as found:
            found.raise_for_status()
            labels = ((await found.json()).get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_RESTORE_UID) != restore.uid:
            raise VolumeConflict(f"{manifest['kind']} {name} already exists and was not made by this restore")
        return False

    async def ensure_volume(self, restore: RestoreRef, spec: SnapshotRestoreSpec, disk: Disk) -> list[str]:
        made: list[str] = []
        if spec.persistent_volume is None:
            return made
        if await self._create("/api/v1/persistentvolumes", volume_manifest(restore, spec, disk), restore):
            made.append(f"PersistentVolume {spec.persistent_volume.name}")
        if spec.persistent_volume_claim is not None:
            path = f"/api/v1/namespaces/{restore.namespace}/persistentvolumeclaims"
            if await self._create(path, claim_manifest(restore, spec, disk), restore):
                made.append(f"PersistentVolumeClaim {spec.persistent_volume_claim.name}")
        return made
