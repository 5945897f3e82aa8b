"""What the emulated Disk RP holds: disk, snapshot and operation records, and the ARM JSON they answer with."""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol

from azsnap.emulator.arm import resource_id
from azsnap.emulator.config import EmulatorConfig

__all__ = [
    "BACKGROUND_COPY_SKUS",
    "CARRIED",
    "DISK_SKUS",
    "GIB",
    "OPERATION_TTL",
    "SNAPSHOT_SKUS",
    "DiskRecord",
    "Key",
    "Operation",
    "RecordStore",
    "SnapshotRecord",
    "iso",
    "key",
    "premium_tier",
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


#: Premium SSD performance tiers: (largest size in GiB, tier, IOPS, MB/s), as Azure reports them on a disk.
_PREMIUM_TIERS: Final = (
    (4, "P1", 120, 25),
    (8, "P2", 120, 25),
    (16, "P3", 120, 25),
    (32, "P4", 120, 25),
    (64, "P6", 240, 50),
    (128, "P10", 500, 100),
    (256, "P15", 1100, 125),
    (512, "P20", 2300, 150),
    (1024, "P30", 5000, 200),
    (2048, "P40", 7500, 250),
    (4096, "P50", 7500, 250),
    (8192, "P60", 16000, 500),
    (16384, "P70", 18000, 750),
    (32767, "P80", 20000, 900),
)

#: Properties a snapshot or disk carries over from its source (an OS disk's image facts).
CARRIED: Final = ("osType", "hyperVGeneration", "supportedCapabilities")

DiskState = Literal["Creating", "Updating", "Succeeded", "Failed"]


@dataclass
class DiskRecord:
    """A managed disk: seeded through the control routes, or made by a PUT (Empty, or Copy of a snapshot)."""

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
    state: DiskState = "Succeeded"
    creation: dict[str, Any] = field(default_factory=lambda: {"createOption": "Empty"})
    tags: dict[str, str] = field(default_factory=dict)
    #: osType, hyperVGeneration, supportedCapabilities: what a snapshot of this disk carries.
    carried: dict[str, Any] = field(default_factory=dict)
    encryption: dict[str, Any] = field(default_factory=lambda: {"type": "EncryptionAtRestWithPlatformKey"})
    access: bool = False
    zones: list[str] | None = None
    #: A Premium SSD v2 / Ultra disk made from a snapshot hydrates in the background: minutes to 100 %, and the
    #: `completionPercent` as of the store's last settle (None: no hydration).
    hydrate_minutes: float | None = None
    completion: float | None = None

    def hydrate(self, now: datetime) -> None:
        """Bring `completion` up to `now`."""
        if self.hydrate_minutes is None:
            return
        if self.hydrate_minutes <= 0:
            self.completion = 100.0
            return
        done = (now - self.time_created).total_seconds() / 60.0 / self.hydrate_minutes * 100.0
        self.completion = round(min(100.0, max(0.0, done)), 1)

    @property
    def id(self) -> str:
        return resource_id(self.subscription_id, self.resource_group, "disks", self.name)

    def to_json(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            **self.carried,
            "creationData": dict(self.creation),
            "diskSizeGB": self.size_gb,
        }
        tier = premium_tier(self.sku, self.size_gb)
        if tier is not None:
            props["diskIOPSReadWrite"], props["diskMBpsReadWrite"] = tier[1], tier[2]
        props |= {
            "encryption": dict(self.encryption),
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
            "timeCreated": iso(self.time_created),
            "provisioningState": self.state,
            "diskState": "ActiveSAS" if self.access else "Unattached",
            "diskSizeBytes": self.size_gb * GIB,
            "uniqueId": self.unique_id,
        }
        if tier is not None:
            props["tier"] = tier[0]
        if self.completion is not None:
            props["completionPercent"] = self.completion
        zones = {"zones": list(self.zones)} if self.zones else {}
        return {
            "id": self.id,
            "name": self.name,
            "type": "Microsoft.Compute/disks",
            "location": self.location,
            "tags": dict(self.tags),
            "sku": {"name": self.sku, "tier": sku_tier(self.sku)},
            **zones,
            "properties": props,
        }


def premium_tier(sku: str, size_gb: int) -> tuple[str, int, int] | None:
    """(tier, IOPS, MB/s) of a Premium SSD of this size; None for other SKUs."""
    if not sku.startswith("Premium_"):
        return None
    for largest, tier, iops, mbps in _PREMIUM_TIERS:
        if size_gb <= largest:
            return tier, iops, mbps
    return None


SnapshotState = Literal["Creating", "Updating", "Succeeded", "Failed"]


@dataclass
class SnapshotRecord:
    """A snapshot: its JSON as a GET shows it once made, plus what changes over emulated time."""

    subscription_id: str
    resource_group: str
    name: str
    body: dict[str, Any]
    created: datetime
    state: SnapshotState = "Creating"
    #: The disk it copies (by uniqueId) and how long its background copy takes; None if it does not copy.
    source_unique_id: str | None = None
    copy_minutes: float | None = None
    #: Until when read access is granted (`beginGetAccess`): diskState `ActiveSAS` until then.
    access_until: datetime | None = None
    #: A CopyStart's source (key), its disk family and creation time; when and how the copy stops failed.
    copy_source: Key | None = None
    copy_family: str | None = None
    copy_source_time: datetime | None = None
    copy_stop: datetime | None = None
    copy_error: dict[str, Any] | None = None

    def copy_failed(self, now: datetime) -> bool:
        return self.copy_error is not None and self.copy_stop is not None and now >= self.copy_stop

    @property
    def location(self) -> str:
        return str(self.body.get("location", ""))

    def completion(self, now: datetime) -> float | None:
        if self.copy_minutes is None:
            return None
        if self.copy_stop is not None and self.copy_error is not None:
            now = min(now, self.copy_stop)  # a failed copy stops where it failed
        if self.copy_minutes <= 0:
            return 0.0 if self.copy_failed(now) else 100.0
        done = (now - self.created).total_seconds() / 60.0 / self.copy_minutes * 100.0
        return round(min(100.0, max(0.0, done)), 1)

    def copying(self, now: datetime) -> bool:
        percent = self.completion(now)
        return self.state != "Failed" and percent is not None and percent < 100.0 and not self.copy_failed(now)

    def to_json(self, now: datetime) -> dict[str, Any]:
        body = {**self.body, "properties": dict(self.body["properties"])}
        props = body["properties"]
        if self.state == "Creating":
            # Azure's GET of a snapshot still being created has no size yet (provisioning-states recording).
            props.pop("diskSizeGB", None)
            props.pop("diskSizeBytes", None)
        props["provisioningState"] = self.state
        granted = self.access_until is not None and now < self.access_until
        props["diskState"] = "ActiveSAS" if granted else "Unattached"
        percent = self.completion(now)
        if percent is not None:
            props["completionPercent"] = percent
            props["snapshotAccessState"] = "Available" if percent >= 100.0 else "Pending"
            if self.copy_failed(now):
                props["copyCompletionError"] = dict(self.copy_error or {})
        else:
            props["snapshotAccessState"] = "Available" if self.state == "Succeeded" else "Pending"
        return body


OperationKind = Literal["create", "update", "delete", "grant", "revoke"]


@dataclass
class Operation:
    """A long-running operation on a snapshot or disk (`target_kind`), InProgress until `due`."""

    id: str
    subscription_id: str
    location: str
    kind: OperationKind
    target: Key
    start: datetime
    due: datetime
    #: The error the operation ends with (None: it succeeds), and whether the snapshot stays behind `Failed`.
    error: dict[str, Any] | None = None
    keep_failed: bool = False
    status: Literal["InProgress", "Succeeded", "Failed"] = "InProgress"
    end: datetime | None = None
    target_kind: Literal["snapshots", "disks"] = "snapshots"
    #: An update's new content, applied when the operation ends.
    changes: dict[str, Any] | None = None
    #: The `p` query parameter of the operation's URLs (Azure's partition id; one per region here).
    partition: str = ""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"startTime": iso(self.start)}
        if self.end is not None:
            body["endTime"] = iso(self.end)
        body["status"] = self.status
        if self.status == "Failed" and self.error is not None:
            body["error"] = self.error
        body["name"] = self.id
        return body


class RecordStore(Protocol):
    """What the per-resource rules (`disks`, `snapshots`) use of `azsnap.emulator.state.Store`, which calls them."""

    config: EmulatorConfig
    disks: dict[Key, DiskRecord]
    groups: dict[tuple[str, str], str]
    created_at: dict[str, list[datetime]]
    violations: list[str]

    @property
    def new_id(self) -> Callable[[], str]: ...

    @property
    def snapshots(self) -> MutableMapping[Key, SnapshotRecord]: ...

    def snapshots_of(self, unique_id: str) -> list[SnapshotRecord]: ...

    def copies_of_source(self, source: Key) -> list[SnapshotRecord]: ...

    def copies_of_family(self, family: str) -> list[SnapshotRecord]: ...

    def copies_running(self, now: datetime) -> list[SnapshotRecord]: ...

    def require_group(self, subscription_id: str, resource_group: str) -> None: ...

    def start(
        self,
        now: datetime,
        subscription_id: str,
        location: str,
        kind: OperationKind,
        target: Key,
        *,
        duration: str | None = ...,
        target_kind: Literal["snapshots", "disks"] = ...,
    ) -> Operation: ...
