"""The SnapshotRestore kind, pure: its spec and status models, which snapshot to restore, and the restored disk's phase.

Mirrors `crds/snapshotrestores.azsnap.io.yaml`. A restore makes one new managed disk from one snapshot, chosen once
(the newest good snapshot of a policy, the newest at or before a time, or one named by its ARM ID) and then pinned
in status, so a later reconcile never switches to a newer snapshot. It never changes a disk it did not make: the
disk it makes carries its UID in a tag.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from azsnap.domain import naming
from azsnap.domain.models import RESOURCE_GROUP_PATTERN, DeletionPolicy, PolicyRef
from azsnap.domain.observed import Disk, DiskSku, Snapshot, SnapshotState
from azsnap.domain.policy_status import Condition

__all__ = [
    "DISK_NAME_PATTERN",
    "KIND",
    "PLURAL",
    "SNAPSHOT_ID_PATTERN",
    "TAG_RESTORE",
    "TAG_RESTORE_UID",
    "ClaimSpec",
    "DiskSku",
    "Phase",
    "RestoreRef",
    "RestoreSource",
    "RestoreTarget",
    "SnapshotRef",
    "SnapshotRestoreSpec",
    "SnapshotRestoreStatus",
    "VolumeSpec",
    "choose_snapshot",
    "disk_phase",
    "disk_status",
    "made_by",
    "pinned",
    "restore_tags",
    "snapshot_coordinates",
]

KIND: Final = "SnapshotRestore"
PLURAL: Final = "snapshotrestores"
#: The restore's UID on the disk it made: the proof that the disk is the restore's own.
TAG_RESTORE_UID: Final = "azsnap-restore-uid"
#: `namespace/name` of the restore, for people reading the disk's tags.
TAG_RESTORE: Final = "azsnap-restore"
#: The snapshot the disk was made from.
TAG_SOURCE_SNAPSHOT: Final = "azsnap-source-snapshot"

#: ARM ID of a snapshot (case-insensitive, as ARM compares IDs); shared with the CRD schema (RE2 syntax).
SNAPSHOT_ID_PATTERN: Final = (
    r"(?i)^/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"/resourceGroups/[-a-z0-9_.()]{0,89}[-a-z0-9_()]/providers/Microsoft\.Compute/snapshots/"
    r"[a-z0-9]([a-z0-9_.-]{0,78}[a-z0-9_])?$"
)
_SNAPSHOT_ID: Final = re.compile(SNAPSHOT_ID_PATTERN)
#: Azure's managed disk names: 1-80 of letters, digits, `_`, `.`, `-`; starting alphanumeric, ending alphanumeric or `_`.
DISK_NAME_PATTERN: Final = r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$"
#: A Kubernetes object name (RFC 1123 subdomain): a policy, a PersistentVolume, a PersistentVolumeClaim.
K8S_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
MAX_SIZE_GB: Final = 65536


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


K8sName = Annotated[str, Field(min_length=1, max_length=253, pattern=K8S_NAME_PATTERN)]


class RestoreSource(_Model):
    """Which snapshot: a policy's newest good one (at or before a time, if given), or one by its ARM ID."""

    policy: K8sName | None = Field(default=None, description="A SnapshotPolicy in the restore's namespace.")
    at_or_before: datetime | None = None
    snapshot_id: str | None = Field(default=None, max_length=400, pattern=SNAPSHOT_ID_PATTERN)

    @model_validator(mode="after")
    def _one_source(self) -> RestoreSource:
        if (self.policy is None) == (self.snapshot_id is None):
            raise ValueError("give exactly one of policy and snapshotId")
        if self.at_or_before is not None and self.policy is None:
            raise ValueError("atOrBefore picks among a policy's snapshots: give policy with it")
        if self.at_or_before is not None and self.at_or_before.tzinfo is None:
            raise ValueError("atOrBefore needs a time zone (an RFC 3339 time such as 2026-03-01T12:00:00Z)")
        return self


class RestoreTarget(_Model):
    """The new managed disk; its region is the snapshot's, as Azure requires."""

    name: str = Field(min_length=1, max_length=80, pattern=DISK_NAME_PATTERN)
    resource_group: str = Field(min_length=1, max_length=90, pattern=RESOURCE_GROUP_PATTERN)
    sku: DiskSku = DiskSku.STANDARD_SSD_LRS
    zone: Literal["1", "2", "3"] | None = None
    size_gb: int | None = Field(default=None, alias="sizeGB", ge=1, le=MAX_SIZE_GB, strict=True)


class VolumeSpec(_Model):
    """A PersistentVolume bound to the new disk through the Azure Disk CSI driver."""

    name: K8sName
    storage_class_name: str = Field(default="", max_length=253)


class ClaimSpec(_Model):
    """A PersistentVolumeClaim in the restore's namespace, bound to that PersistentVolume."""

    name: K8sName
    storage_class_name: str = Field(default="", max_length=253)


class SnapshotRestoreSpec(_Model):
    """The desired state: one new disk from one snapshot (and optionally a volume and claim for it)."""

    source: RestoreSource
    target: RestoreTarget
    persistent_volume: VolumeSpec | None = None
    persistent_volume_claim: ClaimSpec | None = None
    #: Retain: deleting the restore leaves the disk. Delete: the restore's own disk goes with it.
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN

    @model_validator(mode="after")
    def _claim_needs_volume(self) -> SnapshotRestoreSpec:
        if self.persistent_volume_claim is not None and self.persistent_volume is None:
            raise ValueError("persistentVolumeClaim binds to the restore's persistentVolume: give persistentVolume too")
        return self


class SnapshotRef(_Model):
    """The snapshot a restore chose (pinned once chosen)."""

    id: str
    name: str
    time_created: datetime | None = None


class RestoredDisk(_Model):
    """The disk as last read."""

    id: str
    name: str
    sku: str | None = None
    size_gb: int | None = Field(default=None, alias="sizeGB")
    zone: str | None = None
    completion_percent: float | None = None


class SnapshotRestoreStatus(_Model):
    """What the operator observed and did; written only through the status subresource."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    phase: str | None = None
    source_snapshot: SnapshotRef | None = None
    disk: RestoredDisk | None = None
    #: The disk's name, for `kubectl get`.
    disk_name: str | None = None
    persistent_volume: str | None = None
    persistent_volume_claim: str | None = None
    #: When the disk became usable (Premium SSD v2 / Ultra: fully hydrated).
    ready_time: datetime | None = None

    @field_validator("phase")
    @classmethod
    def _known_phase(cls, value: str | None) -> str | None:
        return value if value is None or value in set(Phase) else None


@dataclass(frozen=True)
class RestoreRef:
    """Identity of a SnapshotRestore object in the cluster."""

    namespace: str
    name: str
    uid: str
    generation: int = 1


class Phase(StrEnum):
    """Where a restore is."""

    PENDING = "Pending"  # nothing made yet
    CREATING = "Creating"  # Azure is making the disk
    HYDRATING = "Hydrating"  # made; a Premium SSD v2 / Ultra disk still copying its data in
    READY = "Ready"  # usable
    FAILED = "Failed"  # will not become usable without a person


def snapshot_coordinates(snapshot_id: str) -> tuple[str, str, str]:
    """(subscription, resource group, name) of a snapshot's ARM ID; ValueError when it is not one."""
    if not snapshot_id.isascii() or not _SNAPSHOT_ID.fullmatch(snapshot_id):
        raise ValueError(f"{snapshot_id!r} is not the ARM ID of a snapshot")
    parts = snapshot_id.split("/")
    return parts[2].lower(), parts[4], parts[8]


def choose_snapshot(
    candidates: Iterable[Snapshot], policy: PolicyRef, disk_id: str, at_or_before: datetime | None
) -> Snapshot | None:
    """The newest usable snapshot the policy made of its disk (at or before `at_or_before`), or None.

    Usable: Azure reports it `Succeeded` (a Premium SSD v2 / Ultra snapshot: its background copy complete).
    """
    usable = [
        s
        for s in candidates
        if naming.owns(s, policy, disk_id)
        and s.state is SnapshotState.SUCCEEDED
        and s.time_created is not None
        and (at_or_before is None or s.time_created <= at_or_before)
    ]
    return max(usable, key=lambda s: (s.time_created, s.name), default=None)


def restore_tags(restore: RestoreRef, snapshot: Snapshot) -> dict[str, str]:
    """The tags of the disk a restore makes: azsnap's, the restore's UID and name, the source snapshot."""
    return {
        naming.TAG_MANAGED_BY: naming.MANAGED_BY_VALUE,
        TAG_RESTORE_UID: restore.uid,
        TAG_RESTORE: f"{restore.namespace}/{restore.name}"[:256],
        TAG_SOURCE_SNAPSHOT: snapshot.name,
    }


def made_by(disk: Disk, restore_uid: str) -> bool:
    """True only when the disk's tags say this restore made it."""
    return bool(restore_uid) and naming.tag(disk.tags, TAG_RESTORE_UID) == restore_uid


def disk_phase(disk: Disk) -> Phase:
    """The restore's phase from its disk as Azure reports it."""
    state = disk.provisioning_state.lower()
    if state in ("failed", "canceled"):
        return Phase.FAILED
    if state != "succeeded":
        return Phase.CREATING
    return Phase.HYDRATING if disk.is_copying else Phase.READY


def disk_status(disk: Disk) -> dict[str, Any]:
    """`status.disk` for a disk as read."""
    fields: dict[str, Any] = {"id": disk.id, "name": disk.name, "sku": disk.sku, "sizeGB": disk.size_bytes // 1024**3}
    if disk.zone:
        fields["zone"] = disk.zone
    if disk.completion_percent is not None:
        fields["completionPercent"] = disk.completion_percent
    return fields


def pinned(status: Mapping[str, Any]) -> str | None:
    """The snapshot ID a restore chose in an earlier reconcile, if any."""
    source = status.get("sourceSnapshot")
    return str(source["id"]) if isinstance(source, Mapping) and source.get("id") else None
