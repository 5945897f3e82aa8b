"""A stand-in for the external-snapshotter in the in-process API: the common snapshot-controller's binding of
pre-provisioned VolumeSnapshots, with the csi-snapshotter sidecar of the Azure Disk CSI driver (`csi_snapshotter`).

For a VolumeSnapshot whose `source.volumeSnapshotContentName` names a content, as the real controller does: the
`volumesnapshot-as-source-protection` finalizer (and the bound one when the content's policy is Delete); the
content's `volumeSnapshotRef.uid` (and its class, from the VolumeSnapshot's) filled in to bind the pair, then the
content's `volumesnapshotcontent-bound-protection` finalizer; the VolumeSnapshot's status copied from the content's
(`boundVolumeSnapshotContentName`, `creationTime`, `readyToUse`, `restoreSize` as a quantity, `error`) with the
`SnapshotCreated` and `SnapshotReady` events; a missing or misbound content written as an error with its event. A
VolumeSnapshot being deleted marks its bound content `volumesnapshot-being-deleted`, deletes the content when its
policy is Delete, and loses its finalizers (unless a claim is being restored from it). Dynamic snapshots (from a
claim) are not modelled: they are left as they are.

Tests, the demo and offline tools start it beside the in-process API with `running(kube, azure, clock)`, as a
cluster has the external-snapshotter installed; without it nothing ever becomes ready, as in a cluster without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, Final

import yaml

from azsnap.clock import Clock
from azsnap.domain.volume_snapshots import CONTENTS, GROUP, SNAPSHOTS, VERSION
from azsnap.emulator.kubernetes.csi_snapshotter import (
    BEING_DELETED,
    CONTENT_FINALIZER,
    AzureSnapshots,
    CsiSnapshotter,
    replacing,
)
from azsnap.emulator.kubernetes.emulator import KubeEmulator
from azsnap.emulator.kubernetes.protocol import _Watch

__all__ = ["AS_SOURCE", "BOUND", "RESYNC", "SnapshotController", "install_snapshot_crds", "running"]

AS_SOURCE: Final = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
BOUND: Final = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
#: Both controllers' default `--resync-period`: everything is looked at again this often, changed or not.
RESYNC: Final = timedelta(minutes=15)
_COMPONENT: Final = "snapshot-controller"
#: An object of the snapshot API: plural, namespace (None for a content), name.
Key = tuple[str, str | None, str]


def install_snapshot_crds(kube: KubeEmulator) -> None:
    """The snapshot.storage.k8s.io CRDs (azsnap's own manifests of them), as the external-snapshotter installs them."""
    data = resources.files("azsnap") / "data"
    for entry in sorted(data.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(f".{GROUP}.yaml"):
            kube.install_crd(yaml.safe_load(entry.read_text()))


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def quantity(size: int) -> str:
    """Bytes as Kubernetes prints a binary-SI quantity: the largest exact suffix (`4Gi`), or the plain number."""
    for power, suffix in ((6, "Ei"), (5, "Pi"), (4, "Ti"), (3, "Gi"), (2, "Mi"), (1, "Ki")):
        if size and size % 1024**power == 0:
            return f"{size // 1024**power}{suffix}"
    return str(size)


@dataclass
class SnapshotController:
    """The common controller and the sidecar, synced over every snapshot object whenever one changes."""

    kube: KubeEmulator
    azure: AzureSnapshots
    clock: Clock
    sidecar: CsiSnapshotter = field(init=False)

    def __post_init__(self) -> None:
        self.sidecar = CsiSnapshotter(self.kube, self.azure, self.clock, self._post)

    def sync(self, keys: Iterable[Key] | None = None) -> datetime | None:
        """Sync the objects named (every one when None), the other half of each pair and the contents whose retry
        is due, as the two controllers' work queues would; the time the next retry is due, if any."""
        now = self.clock.now()
        if keys is None:
            keys = [*((CONTENTS, None, n) for (_, _, _, n) in self._keys(CONTENTS)),
                    *((SNAPSHOTS, ns, n) for (_, _, ns, n) in self._keys(SNAPSHOTS))]  # fmt: skip
        wanted = set(keys) | {(CONTENTS, None, name) for name in self.sidecar.due(now)}
        for plural, namespace, name in list(wanted):
            obj = self._read(plural, namespace, name)
            spec = (obj or {}).get("spec") or {}
            if obj is not None and plural == CONTENTS:
                ref = spec.get("volumeSnapshotRef") or {}
                wanted.add((SNAPSHOTS, ref.get("namespace"), str(ref.get("name") or "")))
            elif obj is not None:
                for content in (
                    (spec.get("source") or {}).get("volumeSnapshotContentName"),
                    (obj.get("status") or {}).get("boundVolumeSnapshotContentName"),
                ):
                    if content:
                        wanted.add((CONTENTS, None, str(content)))
        for plural, namespace, name in sorted(wanted, key=lambda k: (k[0], k[1] or "", k[2])):
            obj = self._read(plural, namespace, name)
            if obj is None:
                if plural == CONTENTS:
                    self.sidecar.forget(name)
                continue
            if plural == CONTENTS:
                self.sidecar.sync(obj)
                self._content(self._read(CONTENTS, None, name))
            elif (obj.get("spec") or {}).get("source", {}).get("volumeSnapshotContentName"):
                self._snapshot(obj)
        return self.sidecar.next_due()

    def _keys(self, plural: str) -> list[tuple[str, str, str | None, str]]:
        return [k for k in self.kube.api._store if k[:2] == (GROUP, plural)]

    def _read(self, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object, not a copy (read only: every change goes through the API)."""
        return self.kube.api._stored(GROUP, plural, namespace, name)

    # ---- contents ----------------------------------------------------------------------------------------------

    def _content(self, content: dict[str, Any] | None) -> None:
        if content is None:
            return
        meta, spec = content["metadata"], content.get("spec") or {}
        ref = spec.get("volumeSnapshotRef") or {}
        if not ref.get("uid"):
            return  # pre-bound to a VolumeSnapshot that has not bound it yet: the VolumeSnapshot's sync does
        finalizers = list(meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp") and CONTENT_FINALIZER not in finalizers:
            self._meta(CONTENTS, None, meta["name"], {"finalizers": [*finalizers, CONTENT_FINALIZER]})
            return
        snapshot = self._read(SNAPSHOTS, ref.get("namespace"), str(ref.get("name") or ""))
        if snapshot is not None and snapshot["metadata"]["uid"] == ref["uid"] and _deleting(snapshot):
            self._mark(content)

    def _mark(self, content: Mapping[str, Any]) -> None:
        annotations = dict(content["metadata"].get("annotations") or {})
        if BEING_DELETED not in annotations:
            self._meta(
                CONTENTS, None, content["metadata"]["name"], {"annotations": {**annotations, BEING_DELETED: "yes"}}
            )

    # ---- VolumeSnapshots ---------------------------------------------------------------------------------------

    def _snapshot(self, snapshot: dict[str, Any]) -> None:
        meta, status = snapshot["metadata"], snapshot.get("status") or {}
        if meta.get("deletionTimestamp"):
            self._deleted(snapshot)
            return
        content = self._read(CONTENTS, None, snapshot["spec"]["source"]["volumeSnapshotContentName"])
        if content is not None and not (content.get("spec") or {}).get("source", {}).get("snapshotHandle"):
            what = "VolumeSnapshotContent is dynamically provisioned while expecting a pre-provisioned one"
            self._error(snapshot, "SnapshotContentMismatch", what)
            return
        if content is not None and not _points_at(content, snapshot, unbound_ok=True):
            message = f"VolumeSnapshotContent [{content['metadata']['name']}] is bound to a different snapshot"
            self._error(snapshot, "SnapshotContentMisbound", message)
            return
        wanted = [f for f in (AS_SOURCE,) if f not in (meta.get("finalizers") or [])]
        bound_name = status.get("boundVolumeSnapshotContentName")
        if content is not None and bound_name and content["spec"].get("deletionPolicy") == "Delete":
            wanted += [f for f in (BOUND,) if f not in (meta.get("finalizers") or [])]
        if wanted:
            self._meta(
                SNAPSHOTS, meta["namespace"], meta["name"], {"finalizers": [*(meta.get("finalizers") or []), *wanted]}
            )
            snapshot = self._read(SNAPSHOTS, meta["namespace"], meta["name"]) or snapshot
        if status.get("readyToUse") is True and bound_name:
            if content is None:
                self._error(snapshot, "SnapshotContentMissing", "VolumeSnapshotContent is missing")
            elif not _points_at(content, snapshot, unbound_ok=False):
                what = "VolumeSnapshotContent is not bound to the VolumeSnapshot correctly"
                self._error(snapshot, "SnapshotMisbound", what)
            return
        if content is None:
            self._error(snapshot, "SnapshotContentMissing", "VolumeSnapshotContent is missing")
            return
        content = self._bind(snapshot, content)
        self._copy_status(snapshot, content)

    def _bind(self, snapshot: Mapping[str, Any], content: dict[str, Any]) -> dict[str, Any]:
        """Fill the content's `volumeSnapshotRef.uid` (and class) so that the pair is bound both ways."""
        spec = content["spec"]
        class_name = (snapshot.get("spec") or {}).get("volumeSnapshotClassName")
        if spec["volumeSnapshotRef"].get("uid") and spec.get("volumeSnapshotClassName"):
            return content
        change: dict[str, Any] = {"volumeSnapshotRef": {"uid": snapshot["metadata"]["uid"]}}
        if class_name:
            change["volumeSnapshotClassName"] = class_name
        return self.kube.patch(GROUP, VERSION, CONTENTS, None, content["metadata"]["name"], {"spec": change})

    def _copy_status(self, snapshot: Mapping[str, Any], content: Mapping[str, Any]) -> None:
        """The VolumeSnapshot's status from its content's, field by field as the controller updates it."""
        source = content.get("status") or {}
        old = dict(snapshot.get("status") or {})
        new = dict(old)
        ready = source.get("readyToUse") is True
        new.setdefault("boundVolumeSnapshotContentName", content["metadata"]["name"])
        if "creationTime" not in new and source.get("creationTime") is not None:
            new["creationTime"] = _iso(datetime.fromtimestamp(int(source["creationTime"]) // 1_000_000_000, tz=UTC))
        if new.get("readyToUse") is not ready:
            new["readyToUse"] = ready
            if ready:
                new.pop("error", None)
        size = source.get("restoreSize")
        if size is not None and new.get("restoreSize") in (None, "0"):
            new["restoreSize"] = quantity(int(size))
        if source.get("error") != new.get("error"):
            if source.get("error") is None:
                new.pop("error", None)
            else:
                new["error"] = copy.deepcopy(source["error"])
        if new == old:
            return
        self._write_status(snapshot, old, new)
        key = f"{snapshot['metadata']['namespace']}/{snapshot['metadata']['name']}"
        if "creationTime" not in old and "creationTime" in new:
            self._post(
                snapshot, "Normal", "SnapshotCreated", f"Snapshot {key} was successfully created by the CSI driver."
            )
        if old.get("readyToUse") is not True and ready:
            self._post(snapshot, "Normal", "SnapshotReady", f"Snapshot {key} is ready to use.")

    def _deleted(self, snapshot: Mapping[str, Any]) -> None:
        meta = snapshot["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        if AS_SOURCE not in finalizers and BOUND not in finalizers:
            return
        bound = (snapshot.get("status") or {}).get("boundVolumeSnapshotContentName")
        content = self._read(CONTENTS, None, bound) if bound else None
        if content is not None and not _points_at(content, snapshot, unbound_ok=False):
            content = None
        if content is not None and self._restoring(snapshot):
            self._post(snapshot, "Warning", "SnapshotDeletePending", "Snapshot is being used to restore a PVC")
            return
        cascade = content is not None and content["spec"].get("deletionPolicy") == "Delete"
        if content is not None:
            self._mark(content)
            if cascade:
                self.kube.delete(GROUP, VERSION, CONTENTS, None, content["metadata"]["name"])
        kept = [f for f in finalizers if f != AS_SOURCE and (cascade or f != BOUND)]
        self._meta(SNAPSHOTS, meta["namespace"], meta["name"], {"finalizers": kept or None})

    def _restoring(self, snapshot: Mapping[str, Any]) -> bool:
        """Whether a claim of the namespace is being restored from the VolumeSnapshot (it names it and is Pending)."""
        meta = snapshot["metadata"]
        for claim in self.kube.api._select("", "persistentvolumeclaims", meta["namespace"], None, "", ""):
            source = (claim.get("spec") or {}).get("dataSource") or {}
            pending = (claim.get("status") or {}).get("phase") == "Pending"
            if pending and source.get("kind") == "VolumeSnapshot" and source.get("name") == meta["name"]:
                return True
        return False

    # ---- writes ------------------------------------------------------------------------------------------------

    def _meta(self, plural: str, namespace: str | None, name: str, change: Mapping[str, Any]) -> None:
        self.kube.patch(GROUP, VERSION, plural, namespace, name, {"metadata": dict(change)})

    def _write_status(self, snapshot: Mapping[str, Any], old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        meta = snapshot["metadata"]
        patch = {"status": replacing(old, new)}
        self.kube.patch(GROUP, VERSION, SNAPSHOTS, meta["namespace"], meta["name"], patch, subresource="status")

    def _error(self, snapshot: Mapping[str, Any], reason: str, message: str) -> None:
        """An error on the VolumeSnapshot (and readyToUse false), with its event; nothing when already set."""
        old = dict(snapshot.get("status") or {})
        if (old.get("error") or {}).get("message") == message:
            return
        new = {**old, "error": {"message": message, "time": _iso(self.clock.now())}, "readyToUse": False}
        self._write_status(snapshot, old, new)
        self._post(snapshot, "Warning", reason, message)

    def _post(self, obj: Mapping[str, Any], kind: str, reason: str, message: str, component: str = _COMPONENT) -> None:
        """A core/v1 Event about the object, as a controller's event recorder posts it."""
        meta = obj.get("metadata") or {}
        now = _iso(self.clock.now())
        involved = {"apiVersion": f"{GROUP}/{VERSION}", "kind": obj.get("kind"), "name": meta.get("name"),
                    "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}  # fmt: skip
        if meta.get("namespace"):
            involved["namespace"] = meta["namespace"]
        self.kube.apply({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace") or "default"},
            "involvedObject": involved, "reason": reason, "message": message, "type": kind,
            "source": {"component": component}, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        })  # fmt: skip


def _deleting(snapshot: Mapping[str, Any]) -> bool:
    meta = snapshot["metadata"]
    finalizers = meta.get("finalizers") or []
    return bool(meta.get("deletionTimestamp")) and (AS_SOURCE in finalizers or BOUND in finalizers)


def _points_at(content: Mapping[str, Any], snapshot: Mapping[str, Any], *, unbound_ok: bool) -> bool:
    """Whether the content's `volumeSnapshotRef` names the VolumeSnapshot (by UID too, unless not bound yet)."""
    ref = (content.get("spec") or {}).get("volumeSnapshotRef") or {}
    meta = snapshot["metadata"]
    if (ref.get("name"), ref.get("namespace")) != (meta["name"], meta["namespace"]):
        return False
    return ref.get("uid") == meta["uid"] or (unbound_ok and not ref.get("uid"))


@contextlib.asynccontextmanager
async def running(kube: KubeEmulator, azure: AzureSnapshots, clock: Clock) -> AsyncIterator[SnapshotController]:
    """The controller, syncing whenever a snapshot object changes, when a retry is due and every `RESYNC`."""
    controller = SnapshotController(kube, azure, clock)
    changed = asyncio.Event()
    pending: set[Key] = set()
    watches = {plural: _Watch(GROUP, plural, None, None, "", "") for plural in (SNAPSHOTS, CONTENTS)}

    async def relay(plural: str, watch: _Watch) -> None:
        while True:
            _kind, obj = await watch.queue.get()
            meta = obj.get("metadata") or {}
            pending.add((plural, meta.get("namespace"), str(meta.get("name") or "")))
            changed.set()

    async def loop() -> None:
        resynced = clock.now()
        due = controller.sync()
        while True:
            wait = RESYNC if due is None else min(RESYNC, max(due - clock.now(), timedelta(0)))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait.total_seconds()):
                    await changed.wait()
            changed.clear()
            keys, full = set(pending), clock.now() - resynced >= RESYNC
            pending.clear()
            resynced = clock.now() if full else resynced
            due = controller.sync(None if full else keys)

    for watch in watches.values():
        kube.api._watches.add(watch)
    tasks = [asyncio.create_task(relay(p, w)) for p, w in watches.items()] + [asyncio.create_task(loop())]
    try:
        yield controller
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for watch in watches.values():
            kube.api._watches.discard(watch)
