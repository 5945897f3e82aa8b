"""Whether published VolumeSnapshots are usable: what the cluster's snapshot controller wrote in their status.

Pure. The external-snapshotter binds each pre-provisioned pair and writes `status.readyToUse` (true once the CSI
driver's ListSnapshots finds the handle and calls it ready; for Azure disks, provisioning state `Succeeded`),
`creationTime`, `restoreSize` and `boundVolumeSnapshotContentName`; when the driver cannot find or read the
snapshot it writes `readyToUse: false` and `status.error` (a message and a time), and keeps retrying. A restore
from a VolumeSnapshot that is not ready waits, so one that stays not ready with an error is worth a warning.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

__all__ = ["NOT_READY_AFTER", "NotReady", "Readiness", "readiness"]

#: A VolumeSnapshot older than this that is not ready and carries an error is reported: the controller retried
#: for a while (its back-off starts at a second) and the error stayed.
NOT_READY_AFTER: Final = timedelta(minutes=5)


@dataclass(frozen=True)
class NotReady:
    """A published VolumeSnapshot the controller reports not ready, with the error it wrote."""

    name: str
    message: str


@dataclass(frozen=True)
class Readiness:
    """Of the published VolumeSnapshots: how many are ready, and those that stay not ready with an error."""

    ready: int = 0
    not_ready: tuple[NotReady, ...] = ()
    #: Published VolumeSnapshots that no controller has written a status for yet.
    unreported: int = 0


def _created(obj: Mapping[str, Any]) -> datetime | None:
    value = (obj.get("metadata") or {}).get("creationTimestamp")
    try:
        return None if not value else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def readiness(objects: Iterable[Mapping[str, Any]], published: Collection[str], now: datetime) -> Readiness:
    """Readiness of the `published` VolumeSnapshots, as `objects` (listed, status included) show them at `now`.

    One published but not among `objects` was made after the listing: no controller has seen it yet.
    """
    listed = {str((obj.get("metadata") or {}).get("name") or ""): obj for obj in objects}
    ready = unreported = 0
    failing: list[NotReady] = []
    for name in published:
        obj = listed.get(name, {})
        status = obj.get("status") or {}
        if status.get("readyToUse") is True:
            ready += 1
            continue
        error = status.get("error") or {}
        created = _created(obj)
        if status.get("readyToUse") is False and error.get("message") and created and now - created >= NOT_READY_AFTER:
            failing.append(NotReady(name, str(error["message"])))
        elif "readyToUse" not in status:
            unreported += 1
    return Readiness(ready, tuple(sorted(failing, key=lambda n: n.name)), unreported)
