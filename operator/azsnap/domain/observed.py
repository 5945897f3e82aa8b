"""What azsnap observes in Azure (disks and snapshots), as plain immutable values, and the per-disk limits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

__all__ = ["Disk", "DiskSku", "DiskTier", "Limits", "Snapshot", "SnapshotState"]


class DiskSku(StrEnum):
    """The managed disk SKUs Azure takes (`DiskStorageAccountTypes`)."""

    STANDARD_LRS = "Standard_LRS"
    STANDARD_SSD_LRS = "StandardSSD_LRS"
    STANDARD_SSD_ZRS = "StandardSSD_ZRS"
    PREMIUM_LRS = "Premium_LRS"
    PREMIUM_ZRS = "Premium_ZRS"
    PREMIUM_V2_LRS = "PremiumV2_LRS"
    ULTRA_SSD_LRS = "UltraSSD_LRS"


class DiskTier(StrEnum):
    """Disk families that matter for snapshot behaviour."""

    STANDARD = "Standard"  # Standard HDD/SSD, Premium SSD: snapshots are usable at once
    PREMIUM_V2 = "PremiumV2"  # Premium SSD v2: snapshots copy in the background
    ULTRA = "Ultra"  # Ultra Disk: snapshots copy in the background


#: Disk SKUs whose incremental snapshots copy in the background.
BACKGROUND_COPY_SKUS: Final = {"PremiumV2_LRS": DiskTier.PREMIUM_V2, "UltraSSD_LRS": DiskTier.ULTRA}


@dataclass(frozen=True)
class Disk:
    """A managed disk as read from Azure."""

    id: str
    name: str
    subscription_id: str
    resource_group: str
    location: str
    unique_id: str
    sku: str | None = None
    size_bytes: int = 0
    provisioning_state: str = "Succeeded"
    #: For a disk that is itself being copied (e.g. restored from a snapshot): 0-100, else None.
    completion_percent: float | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    #: What the disk was made from (`creationData.sourceResourceId`), if anything.
    source_resource_id: str | None = None
    zone: str | None = None

    @property
    def tier(self) -> DiskTier:
        return BACKGROUND_COPY_SKUS.get(self.sku or "", DiskTier.STANDARD)

    @property
    def copies_in_background(self) -> bool:
        return self.tier is not DiskTier.STANDARD

    @property
    def is_copying(self) -> bool:
        return self.completion_percent is not None and self.completion_percent < 100


class SnapshotState(StrEnum):
    """A snapshot's life as azsnap understands it."""

    CREATING = "Creating"  # provisioningState Creating/Updating
    COPYING = "Copying"  # Succeeded, but completionPercent < 100 (Premium SSD v2, Ultra)
    SUCCEEDED = "Succeeded"  # usable
    FAILED = "Failed"
    UNKNOWN = "Unknown"  # a provisioningState azsnap does not know: never deleted on that basis


@dataclass(frozen=True)
class Snapshot:
    """A snapshot as read from Azure."""

    id: str
    name: str
    resource_group: str
    location: str
    source_resource_id: str | None
    source_unique_id: str | None
    time_created: datetime | None
    provisioning_state: str | None
    tags: Mapping[str, str] = field(default_factory=dict)
    incremental: bool = True
    completion_percent: float | None = None
    size_bytes: int = 0
    #: `creationData.createOption` (`CopyStart` for a cross-region copy), and its `copyCompletionError.errorCode`.
    create_option: str | None = None
    copy_error: str | None = None

    @property
    def state(self) -> SnapshotState:
        ps = (self.provisioning_state or "").lower()
        if self.copy_error is not None:
            return SnapshotState.FAILED  # a CopyStart's background copy failed: it never completes
        if ps == "succeeded":
            if self.completion_percent is not None and self.completion_percent < 100:
                return SnapshotState.COPYING
            return SnapshotState.SUCCEEDED
        if ps in {"creating", "updating", "accepted", "running"}:
            return SnapshotState.CREATING
        if ps in {"failed", "canceled"}:
            return SnapshotState.FAILED
        return SnapshotState.UNKNOWN

    def is_of_disk(self, disk: Disk) -> bool:
        """True when Azure says this snapshot was taken from `disk` (ID case-insensitive, same unique ID)."""
        if (self.source_resource_id or "").lower() != disk.id.lower():
            return False
        return self.source_unique_id is None or self.source_unique_id == disk.unique_id


@dataclass(frozen=True)
class Limits:
    """Azure's per-disk snapshot limits (documented defaults; configurable)."""

    #: At most this many incremental snapshots of one disk ...
    window_creates: int = 7
    #: ... in any window of this length.
    window: timedelta = timedelta(minutes=5)
    #: At most this many incremental snapshots per disk.
    per_disk_cap: int = 500
    #: Premium SSD v2 / Ultra: at most this many snapshots still copying per disk.
    max_pending_copies: int = 3
    #: Cross-region copies (CopyStart) running at once per subscription and target region.
    max_parallel_copies: int = 100
    #: A failed snapshot is deleted after this grace period (kept a while so people can look at it).
    failed_grace: timedelta = timedelta(hours=1)
