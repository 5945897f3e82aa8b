"""A stand-in for the csi-snapshotter sidecar beside the Azure Disk CSI driver: the status of pre-provisioned contents.

What the real sidecar does for a `VolumeSnapshotContent` of its driver whose `source.snapshotHandle` is set (a
pre-provisioned one, as azsnap publishes): it asks the driver's ListSnapshots for that ID and writes
`status.snapshotHandle`, `readyToUse`, `creationTime` (Unix nanoseconds) and `restoreSize` (bytes); once ready it
never asks again. When the class named cannot be read or the driver does not find the snapshot, it writes
`readyToUse: false` and `status.error` (`Failed to check and update snapshot content: …`), posts a
`SnapshotContentCheckandUpdateFailed` warning (both only when the message changes) and retries with a back-off from
1 s doubling to 5 min (its `--retry-interval-start`/`--retry-interval-max` defaults). A content being deleted loses
its `volumesnapshotcontent-bound-protection` finalizer once it is unbound or its VolumeSnapshot is being deleted.

The driver's answer is read from the Azure emulator: ready when the snapshot's provisioning state is `Succeeded`
and, unless it is an instant-access snapshot, its `completionPercent` (when present) is 100; the size is
`diskSizeGB` GiB, which Azure leaves out while the snapshot is still being created (the driver then errs).
Not modelled: dynamically provisioned contents (a `volumeHandle`), and deleting the Azure snapshot of a content with
`deletionPolicy: Delete` (such a content keeps its finalizer, as when the driver fails to delete).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from azsnap.clock import Clock
from azsnap.domain.volume_snapshots import CONTENTS, DRIVER, GROUP, VERSION
from azsnap.emulator.kubernetes.emulator import KubeEmulator

__all__ = [
    "BEING_DELETED",
    "CONTENT_FINALIZER",
    "RETRY_MAX",
    "RETRY_START",
    "AzureSnapshots",
    "CsiSnapshotter",
    "Listed",
    "list_snapshot",
    "replacing",
]

CONTENT_FINALIZER: Final = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
BEING_DELETED: Final = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
RETRY_START: Final = timedelta(seconds=1)
RETRY_MAX: Final = timedelta(minutes=5)
_GIB: Final = 1024**3
_COMPONENT: Final = f"csi-snapshotter {DRIVER}"

#: Post an event about an object: (object, type, reason, message, component).
Post = Callable[[Mapping[str, Any], str, str, str, str], None]


class AzureSnapshots(Protocol):
    """What the CSI driver reads: one snapshot by ARM ID as Azure's GET shows it, or None (`Emulator.snapshot`)."""

    def snapshot(self, arm_id: str) -> dict[str, Any] | None: ...


class _Failed(Exception):
    """The sidecar's check failed; the message is what it writes into `status.error`."""


def replacing(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """A merge patch that makes `old` into `new` (a field left out is set to null, which removes it)."""
    return {**{key: None for key in old if key not in new}, **new}


@dataclass(frozen=True)
class Listed:
    """The driver's ListSnapshots entry for a handle."""

    ready: bool
    created_ns: int
    size: int


def list_snapshot(azure: AzureSnapshots, handle: str) -> Listed:
    """The Azure Disk CSI driver's answer for one snapshot ID; `LookupError` with the sidecar's words if none."""
    body = azure.snapshot(handle)
    if body is None:  # the driver answers "not found" with an empty list, which the sidecar turns into this
        raise LookupError(f"can not find snapshot for snapshotID {handle}")
    props = body.get("properties") or {}
    if props.get("diskSizeGB") is None:
        raise LookupError("rpc error: code = Unknown desc = diskSizeGB of snapshot property is nil")
    ready = str(props.get("provisioningState") or "").lower() == "succeeded"
    instant = (props.get("creationData") or {}).get("instantAccessDurationMinutes") is not None
    if ready and not instant and float(props.get("completionPercent", 100.0)) < 100.0:
        ready = False  # a Premium SSD v2 or Ultra snapshot still copying its data in the background
    created = datetime.fromisoformat(str(props["timeCreated"]).replace("Z", "+00:00"))
    return Listed(ready, int(created.timestamp()) * 1_000_000_000 + created.microsecond * 1000,
                  int(props["diskSizeGB"]) * _GIB)  # fmt: skip


@dataclass
class CsiSnapshotter:
    """The sidecar's content loop over the in-process API; `sync` handles one content and says when to look again."""

    kube: KubeEmulator
    azure: AzureSnapshots
    clock: Clock
    post: Post
    _retry: dict[str, tuple[datetime, timedelta]] = field(default_factory=dict)

    def due(self, now: datetime) -> list[str]:
        """The contents whose retry is due by `now`."""
        return [name for name, (when, _) in self._retry.items() if when <= now]

    def forget(self, name: str) -> None:
        """The content is gone: no more retries for it."""
        self._retry.pop(name, None)

    def next_due(self) -> datetime | None:
        """When the earliest retry is due, if any is waiting."""
        return min((when for when, _ in self._retry.values()), default=None)

    def sync(self, content: Mapping[str, Any]) -> datetime | None:
        """Bring one content's status in line with the driver; the time it wants another look, if any."""
        meta, spec = content.get("metadata") or {}, content.get("spec") or {}
        name = str(meta.get("name") or "")
        handle = (spec.get("source") or {}).get("snapshotHandle")
        if spec.get("driver") != DRIVER or not handle:
            return None
        if meta.get("deletionTimestamp"):
            self._retry.pop(name, None)
            unbound = not (spec.get("volumeSnapshotRef") or {}).get("uid")
            marked = BEING_DELETED in (meta.get("annotations") or {})
            finalizers = list(meta.get("finalizers") or [])
            if (unbound or marked) and spec.get("deletionPolicy") == "Retain" and CONTENT_FINALIZER in finalizers:
                finalizers.remove(CONTENT_FINALIZER)
                self.kube.patch(GROUP, VERSION, CONTENTS, None, name, {"metadata": {"finalizers": finalizers}})
            return None
        status = content.get("status") or {}
        if status.get("readyToUse") is True:
            self._retry.pop(name, None)
            return None
        now = self.clock.now()
        due = self._retry.get(name)
        if due is not None and now < due[0]:
            return due[0]
        try:
            listed = self._check(name, spec, str(handle))
        except _Failed as exc:
            self._error(content, f"Failed to check and update snapshot content: {exc}", now)
            return self._again(name, now)
        self._status(name, status, str(handle), listed)
        if listed.ready:
            self._retry.pop(name, None)
            return None
        return self._again(name, now)

    def _check(self, name: str, spec: Mapping[str, Any], handle: str) -> Listed:
        class_name = spec.get("volumeSnapshotClassName")
        if class_name and self.kube.get(GROUP, VERSION, "volumesnapshotclasses", None, str(class_name)) is None:
            raise _Failed(
                f"failed to get snapshot class {class_name} for snapshot content {name}: "
                f'volumesnapshotclass.{GROUP} "{class_name}" not found'
            )
        try:
            return list_snapshot(self.azure, handle)
        except LookupError as exc:
            raise _Failed(f"failed to list snapshot for content {name}: {json.dumps(str(exc.args[0]))}") from exc

    def _again(self, name: str, now: datetime) -> datetime:
        """The rate limiter's next try: 1 s, then doubling, at most 5 min."""
        previous = self._retry.get(name)
        delay = RETRY_START if previous is None else min(previous[1] * 2, RETRY_MAX)
        self._retry[name] = (now + delay, delay)
        return now + delay

    def _status(self, name: str, status: Mapping[str, Any], handle: str, listed: Listed) -> None:
        """What the sidecar writes after a successful look: only fields not set yet, and readyToUse when it differs."""
        new = dict(status)
        new.setdefault("snapshotHandle", handle)
        if new.get("readyToUse") is not listed.ready:
            new["readyToUse"] = listed.ready
            if listed.ready:
                new.pop("error", None)
        new.setdefault("creationTime", listed.created_ns)
        if "restoreSize" not in new and listed.size > 0:
            new["restoreSize"] = listed.size
        if new != status:
            self.kube.patch(
                GROUP, VERSION, CONTENTS, None, name, {"status": replacing(status, new)}, subresource="status"
            )

    def _error(self, content: Mapping[str, Any], message: str, now: datetime) -> None:
        status = content.get("status") or {}
        if (status.get("error") or {}).get("message") == message:
            return  # the same error is set already: no write, no event
        name = str(content["metadata"]["name"])
        error = {"message": message, "time": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        patch = {"status": {"error": error, "readyToUse": False}}
        self.kube.patch(GROUP, VERSION, CONTENTS, None, name, patch, subresource="status")
        self.post(content, "Warning", "SnapshotContentCheckandUpdateFailed", message, _COMPONENT)
