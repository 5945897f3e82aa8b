"""`MemoryCloud`'s disks made from snapshots: Azure's rules for such a disk, and Premium SSD v2 / Ultra hydration."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Final

from azsnap.clock import Clock
from azsnap.cloud.errors import PermanentError, TransientError
from azsnap.cloud.interface import DiskRequest
from azsnap.domain.observed import BACKGROUND_COPY_SKUS, Disk, DiskSku, Snapshot, SnapshotState

__all__ = ["DISK_SKUS", "RestoredDisks"]

#: The disk SKUs Azure takes (`DiskStorageAccountTypes` in the API description).
DISK_SKUS: Final = frozenset(sku.value for sku in DiskSku)
_ZONES: Final = frozenset({"1", "2", "3"})
_GIB: Final = 1024**3


class RestoredDisks:
    """Checks a disk-from-snapshot request as Azure does, and renders the disks it made (hydrating ones in progress)."""

    def __init__(self, clock: Clock, hydrate_duration: timedelta) -> None:
        self._clock = clock
        self.hydrate_duration = hydrate_duration
        self._made_at: dict[str, datetime] = {}  # disk ID (lower-cased) → when it was made, for hydrating SKUs

    def check(self, request: DiskRequest, source: Snapshot) -> None:
        """Raise what Azure answers to a disk PUT (Copy of `source`) it refuses."""
        if request.sku not in DISK_SKUS:
            raise PermanentError(
                f"The value '{request.sku}' of parameter 'sku.name' is invalid; use one of "
                f"{', '.join(sorted(DISK_SKUS))}.",
                code="InvalidParameter",
                status=400,
            )
        if request.zone is not None and request.zone not in _ZONES:
            raise PermanentError(
                f"The value '{request.zone}' of parameter 'zones' is invalid; use 1, 2 or 3.",
                code="InvalidParameter",
                status=400,
            )
        if source.state is SnapshotState.FAILED:
            raise PermanentError(
                f"The snapshot {source.name} is in a failed state and cannot be used as a source.",
                code="InvalidParameter",
                status=400,
            )
        if source.state is SnapshotState.COPYING:
            # Snapshots of Premium SSD v2 / Ultra disks are usable only once their background copy is complete.
            raise TransientError(
                f"The snapshot {source.name} is still copying in the background "
                f"({source.completion_percent:g}% complete); a disk can be made from it once it is complete.",
                code="OperationNotAllowed",
                status=409,
            )
        source_gb = -(-source.size_bytes // _GIB)
        if request.size_gb is not None and request.size_gb < source_gb:
            raise PermanentError(
                f"The disk size {request.size_gb} GB is smaller than the size of the source snapshot "
                f"{source.name} ({source_gb} GB); a disk can only be the same size or larger.",
                code="InvalidParameter",
                status=400,
            )

    def made(self, disk: Disk) -> None:
        if (disk.sku or "") in BACKGROUND_COPY_SKUS:
            self._made_at[disk.id.lower()] = self._clock.now()

    def forget(self, disk_id: str) -> None:
        self._made_at.pop(disk_id.lower(), None)

    def render(self, disk: Disk) -> Disk:
        """The disk as a GET shows it now: a hydrating Premium SSD v2 / Ultra disk carries `completionPercent`."""
        made = self._made_at.get(disk.id.lower())
        if made is None:
            return disk
        total = self.hydrate_duration.total_seconds()
        done = 100.0 if total <= 0 else (self._clock.now() - made).total_seconds() / total * 100.0
        return dataclasses.replace(disk, completion_percent=float(min(100.0, max(0.0, round(done, 1)))))
