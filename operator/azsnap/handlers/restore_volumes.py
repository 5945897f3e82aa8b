"""Creates a restored disk's PersistentVolume and claim through the Kubernetes API, with kopf's connection info.

Two requests per object at most (a create, and a read when it already exists), so no client library: the
credentials come from kopf's own login (the service account in a pod, a kubeconfig elsewhere).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import aiohttp
import kopf

from azsnap.domain.observed import Disk
from azsnap.domain.restore import RestoreRef, SnapshotRestoreSpec
from azsnap.domain.restore_volumes import LABEL_RESTORE_UID, claim_manifest, volume_manifest

__all__ = ["KubeVolumes", "VolumeConflict"]

#: A pod's service-account token, re-read for every request (the kubelet rotates it).
TOKEN_FILE: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


class VolumeConflict(Exception):
    """A volume or claim of that name exists and was not made by this restore."""


class KubeVolumes:
    """`VolumeWriter` over HTTP: creates what a restore's spec asks for, once, and never takes over another's."""

    def __init__(self, info: kopf.ConnectionInfo) -> None:
        self._info = info
        self._session: aiohttp.ClientSession | None = None

    def _ssl(self) -> ssl.SSLContext | bool:
        info = self._info
        if info.insecure:
            return False
        context = ssl.create_default_context(
            cafile=str(info.ca_path) if info.ca_path else None,
            cadata=info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data,
        )
        if info.certificate_path and info.private_key_path:
            context.load_cert_chain(str(info.certificate_path), str(info.private_key_path))
        return context

    def _headers(self) -> dict[str, str]:
        token = self._info.token
        if TOKEN_FILE.exists() and self._info.scheme in (None, "Bearer") and token:
            token = TOKEN_FILE.read_text().strip() or token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _create(self, path: str, manifest: Mapping[str, Any], restore: RestoreRef) -> bool:
        """POST the object; True when created now, False when this restore's one already exists."""
        if self._session is None:
            ssl_arg = self._ssl() if self._info.server.startswith("https") else True
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_arg))
        url = self._info.server.rstrip("/") + path
        async with self._session.post(url, json=manifest, headers=self._headers()) as answer:
            if answer.status in (200, 201):
                return True
            if answer.status != 409:
                raise RuntimeError(f"the Kubernetes API answered {answer.status}: {(await answer.text())[:300]}")
        name = manifest["metadata"]["name"]
        async with self._session.get(f"{url}/{name}", headers=self._headers()) as found:
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

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
