"""`azsnap snapshots`: the VolumeSnapshots azsnap published for the policies' snapshots, read from the cluster.

For each policy that publishes (`spec.volumeSnapshots.enabled`), one list of the VolumeSnapshots in its namespace
carrying its labels; each is matched to its Azure snapshot by the `azsnap.io/snapshot-id` annotation, and shown with
whether the cluster's snapshot controller reports it ready (`status.readyToUse`) or the error it wrote. A cluster
that does not serve the snapshot API, or a user who may not list VolumeSnapshots, gets a note instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from azsnap.domain.models import PolicyRef
from azsnap.domain.volume_snapshots import ANNOTATION_SNAPSHOT_ID, GROUP, SNAPSHOTS, VERSION, owner_selector
from azsnap.tools.cluster import Cluster

__all__ = ["Published", "PublishedView", "face_cells", "face_json", "read_published"]


@dataclass(frozen=True)
class Published:
    """One published VolumeSnapshot: where it is, and what the snapshot controller says of it."""

    namespace: str
    name: str
    #: `status.readyToUse`; None while no snapshot controller has written a status.
    ready: bool | None
    error: str | None = None

    @property
    def ready_text(self) -> str:
        if self.ready is None:
            return "-"
        if self.ready:
            return "yes"
        return "no (error)" if self.error else "no"

    def json(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "name": self.name, "readyToUse": self.ready, "error": self.error}


@dataclass(frozen=True)
class PublishedView:
    """A publishing policy's VolumeSnapshots by the (lower-case) ARM ID of their snapshot, or why none were read."""

    namespace: str
    by_id: Mapping[str, Published] = field(default_factory=dict)
    note: str | None = None

    def of(self, snapshot_id: str) -> Published | None:
        return self.by_id.get(snapshot_id.lower())

    def summary(self, snapshot_ids: Sequence[str]) -> str:
        """The heading's words: how many of these snapshots are published, and how many of those are ready."""
        if self.note is not None:
            return f"VolumeSnapshots: {self.note}"
        found = [p for p in (self.of(i) for i in snapshot_ids) if p is not None]
        ready = sum(1 for p in found if p.ready)
        return f"{len(found)} published as VolumeSnapshots in namespace {self.namespace}, {ready} ready"

    def json(self, snapshot_ids: Sequence[str]) -> dict[str, Any]:
        found = [p for p in (self.of(i) for i in snapshot_ids) if p is not None]
        return {"namespace": self.namespace, "published": len(found), "ready": sum(1 for p in found if p.ready),
                "note": self.note}  # fmt: skip


def face_cells(view: PublishedView | None, snapshot_id: str) -> tuple[str, ...]:
    """The table's VOLUMESNAPSHOT and READY cells of a publishing policy's snapshot (none for the others)."""
    if view is None:
        return ()
    face = view.of(snapshot_id)
    return ("-", "-") if face is None else (f"{face.namespace}/{face.name}", face.ready_text)


def face_json(view: PublishedView | None, snapshot_id: str) -> dict[str, Any]:
    """The `volumeSnapshot` of a publishing policy's snapshot in `--json` (nothing for the others)."""
    if view is None:
        return {}
    face = view.of(snapshot_id)
    return {"volumeSnapshot": None if face is None else face.json()}


def _publishes(obj: Mapping[str, Any]) -> bool:
    return bool(((obj.get("spec") or {}).get("volumeSnapshots") or {}).get("enabled"))


def _published(item: Mapping[str, Any]) -> tuple[str, Published] | None:
    meta = item.get("metadata") or {}
    snapshot_id = str((meta.get("annotations") or {}).get(ANNOTATION_SNAPSHOT_ID) or "")
    if not snapshot_id:
        return None
    status = item.get("status") or {}
    ready = status.get("readyToUse")
    error = (status.get("error") or {}).get("message")
    published = Published(str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                          ready if isinstance(ready, bool) else None, str(error) if error else None)  # fmt: skip
    return snapshot_id.lower(), published


def read_published(cluster: Cluster, objects: Sequence[Mapping[str, Any]]) -> dict[str, PublishedView]:
    """Each publishing policy's view (by `namespace/name`); the others are left out."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    api = client.CustomObjectsApi(cluster.api_client)
    views: dict[str, PublishedView] = {}
    for obj in objects:
        if not _publishes(obj):
            continue
        meta = obj.get("metadata") or {}
        ref = PolicyRef(namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
                        uid=str(meta.get("uid") or ""))  # fmt: skip
        key = f"{ref.namespace}/{ref.name}"
        try:
            # the client types its answer as `object`: it is the API's JSON, as dicts
            listed: Any = api.list_namespaced_custom_object(
                GROUP, VERSION, ref.namespace, SNAPSHOTS, label_selector=owner_selector(ref)
            )
        except ApiException as exc:
            if exc.status == 404:
                note = f"the cluster does not serve {GROUP}/{VERSION} (install the snapshot CRDs and controller)"
            else:
                note = f"not readable ({exc.status} {exc.reason}: your user needs list on {SNAPSHOTS}.{GROUP})"
            views[key] = PublishedView(ref.namespace, note=note)
            continue
        except HTTPError as exc:
            views[key] = PublishedView(ref.namespace, note=f"not readable ({exc})")
            continue
        pairs = [p for p in (_published(item) for item in listed.get("items") or []) if p is not None]
        views[key] = PublishedView(ref.namespace, dict(pairs))
    return views
