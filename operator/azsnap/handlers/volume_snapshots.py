"""The kopf side of VolumeSnapshot publishing: the snapshot.storage.k8s.io objects over HTTP, and the step's wiring.

The policy handler runs `publisher(runtime).step(...)` after each reconcile. With the operator's switch off
(`AZSNAP_VOLUME_SNAPSHOTS`, the chart's `volumeSnapshots.enabled`, which also grants the RBAC) the publisher has
no objects to write and a policy that asks is told so in its status. The requests are list (by label), create and
delete; kopf does not watch these kinds (nothing of them wakes a policy).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import kopf

from azsnap.domain.volume_snapshots import GROUP, VERSION
from azsnap.handlers.kube_session import KubeSession
from azsnap.handlers.runtime import Runtime
from azsnap.reconciler.volume_snapshots import Publisher, SnapshotApiError, SnapshotApiMissing

__all__ = ["KubeSnapshots", "publisher"]


class KubeSnapshots(KubeSession):
    """`SnapshotObjects` over HTTP: VolumeSnapshots (namespaced) and VolumeSnapshotContents (cluster-scoped)."""

    def _path(self, plural: str, namespace: str | None) -> str:
        scope = f"/namespaces/{namespace}" if namespace else ""
        return self._url(f"/apis/{GROUP}/{VERSION}{scope}/{plural}")

    async def list(self, plural: str, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        url = f"{self._path(plural, namespace)}?labelSelector={quote(selector)}"
        async with self.session.get(url, headers=self._headers()) as answer:
            if answer.status == 404:
                raise SnapshotApiMissing(f"{plural}.{GROUP}/{VERSION} is not served")
            await _raise_for(answer, "list", plural)
            items = (await answer.json()).get("items") or []
        return [dict(item) for item in items if isinstance(item, Mapping)]

    async def create(self, plural: str, namespace: str | None, manifest: Mapping[str, Any]) -> bool:
        async with self.session.post(self._path(plural, namespace), json=manifest, headers=self._headers()) as answer:
            if answer.status == 409:
                return False  # one of that name: made by an earlier run, or not azsnap's (then never touched)
            if answer.status == 404:
                raise SnapshotApiMissing(f"{plural}.{GROUP}/{VERSION} is not served")
            await _raise_for(answer, "create", plural)
        return True

    async def delete(self, plural: str, namespace: str | None, name: str) -> None:
        url = f"{self._path(plural, namespace)}/{name}"
        async with self.session.delete(url, headers=self._headers()) as answer:
            if answer.status != 404:
                await _raise_for(answer, "delete", plural)


async def _raise_for(answer: Any, verb: str, plural: str) -> None:
    if answer.status < 300:
        return
    text = await answer.text()
    with contextlib.suppress(ValueError, AttributeError):
        text = str(json.loads(text).get("message") or text)
    raise SnapshotApiError(f"the Kubernetes API answered {answer.status} to {verb} {plural}: {text[:300]}")


def publisher(runtime: Runtime) -> Publisher:
    """The runtime's publisher, made on first use from the policies' observer (and `runtime.snapshot_objects`)."""
    if runtime.publisher is None:
        runtime.publisher = Publisher(runtime.reconciler.observer, runtime.clock, runtime.snapshot_objects)
    return runtime.publisher


def login(settings: kopf.OperatorSettings) -> KubeSnapshots | None:
    """The objects' client with kopf's own login (the pod's service account in a cluster, the kubeconfig elsewhere)."""
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    return None if info is None else KubeSnapshots(info)
