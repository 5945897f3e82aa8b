"""What the emulated Disk RP holds: disk, snapshot and operation records, and the ARM JSON they answer with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from azsnap.emulator.arm import resource_id

__all__ = [
    "BACKGROUND_COPY_SKUS",
    "DISK_SKUS",
    "GIB",
    "OPERATION_TTL",
    "SNAPSHOT_SKUS",
    "DiskRecord",
    "Key",
    "Operation",
    "SnapshotRecord",
    "iso",
    "key",
    "sku_tier",
]

GIB: Final = 1024**3
BACKGROUND_COPY_SKUS: Final = frozenset({"PremiumV2_LRS", "UltraSSD_LRS"})
DISK_SKUS: Final = frozenset(
    {
        "Standard_LRS",
        "Premium_LRS",
        "StandardSSD_LRS",
        "UltraSSD_LRS",
        "Premium_ZRS",
        "StandardSSD_ZRS",
        "PremiumV2_LRS",
    }
)
SNAPSHOT_SKUS: Final = frozenset({"Standard_LRS", "Premium_LRS", "Standard_ZRS"})
#: Operations are forgotten this long after they end.
OPERATION_TTL: Final = timedelta(hours=1)

#: (subscription, resource group, name), lower-cased: ARM names are case-insensitive.
Key = tuple[str, str, str]


def key(subscription_id: str, resource_group: str, name: str) -> Key:
    return (subscription_id.lower(), resource_group.lower(), name.lower())


def iso(when: datetime) -> str:
    return when.isoformat()


def sku_tier(sku: str) -> str:
    return "Premium" if sku.startswith(("Premium", "Ultra")) else "Standard"


@dataclass
class DiskRecord:
    """A managed disk (only what snapshots need)."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    sku: str
    size_gb: int
    written_gb: float
    unique_id: str
    family_id: str
    time_created: datetime

    @property
    def id(self) -> str:
        return resource_id(self.subscription_id, self.resource_group, "disks", self.name)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Compute/disks",
            "location": self.location,
            "tags": {},
            "sku": {"name": self.sku, "tier": sku_tier(self.sku)},
            "properties": {
                "creationData": {"createOption": "Empty"},
                "diskSizeGB": self.size_gb,
                "diskSizeBytes": self.size_gb * GIB,
                "uniqueId": self.unique_id,
                "provisioningState": "Succeeded",
                "diskState": "Unattached",
                "timeCreated": iso(self.time_created),
                "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
                "networkAccessPolicy": "AllowAll",
                "publicNetworkAccess": "Enabled",
            },
        }


@dataclass
class SnapshotRecord:
    """A snapshot: its static JSON plus what changes over emulated time."""

    subscription_id: str
    resource_group: str
    name: str
    body: dict[str, Any]
    created: datetime
    state: Literal["Updating", "Succeeded", "Failed"] = "Updating"
    #: The disk it copies (by uniqueId) and how long its background copy takes; None if it does not copy.
    source_unique_id: str | None = None
    copy_minutes: float | None = None

    @property
    def location(self) -> str:
        return str(self.body.get("location", ""))

    def completion(self, now: datetime) -> float | None:
        if self.copy_minutes is None:
            return None
        if self.copy_minutes <= 0:
            return 100.0
        done = (now - self.created).total_seconds() / 60.0 / self.copy_minutes * 100.0
        return round(min(100.0, max(0.0, done)), 1)

    def copying(self, now: datetime) -> bool:
        percent = self.completion(now)
        return self.state != "Failed" and percent is not None and percent < 100.0

    def to_json(self, now: datetime) -> dict[str, Any]:
        body = {**self.body, "properties": dict(self.body["properties"])}
        props = body["properties"]
        props["provisioningState"] = self.state
        percent = self.completion(now)
        if percent is not None:
            props["completionPercent"] = percent
            props["snapshotAccessState"] = "Available" if percent >= 100.0 else "Pending"
        else:
            props["snapshotAccessState"] = "Available" if self.state == "Succeeded" else "Pending"
        return body


@dataclass
class Operation:
    """A long-running create or delete, InProgress until `due`."""

    id: str
    subscription_id: str
    location: str
    kind: Literal["create", "delete"]
    target: Key
    start: datetime
    due: datetime
    #: The error the operation ends with (None: it succeeds), and whether the snapshot stays behind `Failed`.
    error: dict[str, Any] | None = None
    keep_failed: bool = False
    status: Literal["InProgress", "Succeeded", "Failed"] = "InProgress"
    end: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.id, "status": self.status, "startTime": iso(self.start)}
        if self.end is not None:
            body["endTime"] = iso(self.end)
        if self.status == "Failed" and self.error is not None:
            body["error"] = self.error
        return body
