"""The emulated Disk RP's state: disks, snapshots, resource groups and the long-running operations that change them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from azsnap.emulator import disks as disk_rules
from azsnap.emulator import snapshots as snapshot_rules
from azsnap.emulator.arm import ArmError, check_snapshot_name, normalize_location
from azsnap.emulator.config import EmulatorConfig
from azsnap.emulator.indexes import OperationTable, SnapshotTable
from azsnap.emulator.records import (
    BACKGROUND_COPY_SKUS,
    CARRIED,
    DISK_SKUS,
    OPERATION_TTL,
    DiskRecord,
    Key,
    Operation,
    OperationKind,
    SnapshotRecord,
    key,
)

__all__ = ["BACKGROUND_COPY_SKUS", "DiskRecord", "Key", "Operation", "SnapshotRecord", "Store"]


@dataclass
class Store:
    """Everything the emulated RP holds, and its rules. Time is handed in (`now`); nothing here reads a clock."""

    config: EmulatorConfig
    disks: dict[Key, DiskRecord] = field(default_factory=dict)
    snapshots: SnapshotTable = field(default_factory=SnapshotTable)
    operations: OperationTable = field(default_factory=OperationTable)
    #: Resource groups that exist: (subscription, group) lower-cased → their location.
    groups: dict[tuple[str, str], str] = field(default_factory=dict)
    #: Creation times of incremental snapshots per disk uniqueId (deleted ones still count in the window).
    created_at: dict[str, list[datetime]] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))

    # ---- disks -------------------------------------------------------------------------------------------------

    def seed_disk(
        self,
        now: datetime,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        location: str,
        sku: str,
        size_gb: int,
        written_gb: float | None,
        os_properties: Mapping[str, Any] | None = None,
    ) -> DiskRecord:
        check_snapshot_name(name)
        if sku not in DISK_SKUS:
            raise ValueError(f"unknown disk sku {sku!r}; one of {sorted(DISK_SKUS)}")
        if size_gb <= 0:
            raise ValueError("size_gb must be positive")
        if written_gb is not None and not 0 <= written_gb <= size_gb:
            raise ValueError("written_gb must be between 0 and size_gb")
        unknown = sorted(set(os_properties or {}) - set(CARRIED))
        if unknown:
            raise ValueError(f"unknown OS properties {unknown}; only {list(CARRIED)}")
        k = key(subscription_id, resource_group, name)
        if k in self.disks:
            raise ValueError(f"disk {name} already exists in {resource_group}")
        record = DiskRecord(
            subscription_id,
            resource_group,
            name,
            normalize_location(location),
            sku,
            size_gb,
            float(size_gb if written_gb is None else written_gb),
            self.new_id(),
            self.new_id(),
            now,
            carried=dict(os_properties or {}),
        )
        self.disks[k] = record
        self.groups.setdefault(k[:2], record.location)
        return record

    def add_group(self, subscription_id: str, resource_group: str, location: str) -> None:
        """Create an empty resource group (a copy target in another region); an existing one keeps its location."""
        self.groups.setdefault((subscription_id.lower(), resource_group.lower()), normalize_location(location))

    def delete_disk(self, subscription_id: str, resource_group: str, name: str) -> DiskRecord:
        record = self.disks.pop(key(subscription_id, resource_group, name), None)
        if record is None:
            raise KeyError(f"no disk {name} in {resource_group}")
        return record

    def get_disk(self, subscription_id: str, resource_group: str, name: str) -> DiskRecord:
        self.require_group(subscription_id, resource_group)
        record = self.disks.get(key(subscription_id, resource_group, name))
        if record is None:
            raise self.not_found("disks", resource_group, name)
        return record

    def list_disks(self, subscription_id: str, resource_group: str | None) -> list[DiskRecord]:
        if resource_group is not None:
            self.require_group(subscription_id, resource_group)
        return [d for k, d in self.disks.items() if _in_scope(k, subscription_id, resource_group)]

    def put_disk(
        self, now: datetime, subscription_id: str, resource_group: str, name: str, body: object, *, fail: bool = False
    ) -> tuple[DiskRecord, Operation]:
        """Create a disk (Empty, or Copy of a snapshot or disk) or update an existing one's tags.

        `fail`: the create is accepted and its operation ends `Failed` (the disk is then gone).
        """
        return disk_rules.put_disk(self, now, subscription_id, resource_group, name, body, fail=fail)

    def start_disk_delete(
        self, now: datetime, subscription_id: str, resource_group: str, name: str, *, fail: bool = False
    ) -> Operation | None:
        """Start deleting a disk through ARM; None when there is nothing to delete (ARM answers 204)."""
        return disk_rules.delete_disk(self, now, subscription_id, resource_group, name, fail=fail)

    # ---- lookups and errors ------------------------------------------------------------------------------------

    def require_group(self, subscription_id: str, resource_group: str) -> None:
        if (subscription_id.lower(), resource_group.lower()) not in self.groups:
            raise ArmError(
                404,
                "ResourceGroupNotFound",
                f"Resource group '{resource_group}' could not be found.",
                arm_level=True,
            )

    @staticmethod
    def not_found(kind: str, resource_group: str, name: str) -> ArmError:
        return ArmError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.Compute/{kind}/{name}' under resource group '{resource_group}' was not found. "
            "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
            arm_level=True,
        )

    def group_location(self, subscription_id: str, resource_group: str | None) -> str:
        if resource_group is not None:
            found = self.groups.get((subscription_id.lower(), resource_group.lower()))
            if found is not None:
                return found
        return next((loc for (sub, _), loc in self.groups.items() if sub == subscription_id.lower()), "")

    def get_snapshot(self, subscription_id: str, resource_group: str, name: str) -> SnapshotRecord:
        self.require_group(subscription_id, resource_group)
        record = self.snapshots.get(key(subscription_id, resource_group, name))
        if record is None:
            raise self.not_found("snapshots", resource_group, name)
        return record

    def list_snapshots(self, subscription_id: str, resource_group: str | None) -> list[SnapshotRecord]:
        if resource_group is not None:
            self.require_group(subscription_id, resource_group)
        return self.snapshots.in_scope(subscription_id, resource_group)

    def snapshots_of(self, unique_id: str) -> list[SnapshotRecord]:
        """Every snapshot copied from the disk with this uniqueId, in any group and state."""
        return self.snapshots.of_source(unique_id)

    def copies_of_source(self, source: Key) -> list[SnapshotRecord]:
        """The CopyStart copies of one snapshot, in any state."""
        return self.snapshots.copies_of_source(source)

    def copies_of_family(self, family: str) -> list[SnapshotRecord]:
        """The CopyStart copies of one disk family's snapshots, in any state."""
        return self.snapshots.copies_of_family(family)

    def copies_running(self, now: datetime) -> list[SnapshotRecord]:
        """The CopyStart copies still copying."""
        return self.snapshots.copies_running(now)

    # ---- snapshots (the rules live in `snapshots.py`) ----------------------------------------------------------

    def put_snapshot(
        self,
        now: datetime,
        subscription_id: str,
        resource_group: str,
        name: str,
        body: object,
        *,
        fail: Literal["lro_failed", "failed_after_limit", "copy_failed"] | None = None,
    ) -> tuple[SnapshotRecord, Operation | None]:
        """A snapshot PUT: a create, or an update when the name exists (Azure answers both 202 Updating)."""
        check_snapshot_name(name)
        self.require_group(subscription_id, resource_group)
        existing = self.snapshots.get(key(subscription_id, resource_group, name))
        if existing is not None:
            return existing, self.update_snapshot(now, existing, body)
        return self.create_snapshot(now, subscription_id, resource_group, name, body, fail=fail)

    def create_snapshot(
        self,
        now: datetime,
        subscription_id: str,
        resource_group: str,
        name: str,
        body: object,
        *,
        fail: Literal["lro_failed", "failed_after_limit", "copy_failed"] | None = None,
    ) -> tuple[SnapshotRecord, Operation | None]:
        """Validate a create and start it; an existing name comes back unchanged with no operation."""
        check_snapshot_name(name)
        self.require_group(subscription_id, resource_group)
        existing = self.snapshots.get(key(subscription_id, resource_group, name))
        if existing is not None:
            return existing, None
        return snapshot_rules.create(self, now, subscription_id, resource_group, name, body, fail=fail)

    def update_snapshot(self, now: datetime, record: SnapshotRecord, body: object) -> Operation:
        """A PUT to an existing snapshot: the changes Azure allows are applied when the operation ends."""
        return snapshot_rules.update(self, now, record, body)

    def delete_snapshot(
        self, now: datetime, subscription_id: str, resource_group: str, name: str, *, fail: bool = False
    ) -> Operation | None:
        """Start deleting; None when there is nothing to delete (ARM answers 204)."""
        self.require_group(subscription_id, resource_group)
        k = key(subscription_id, resource_group, name)
        record = self.snapshots.get(k)
        if record is None:
            return None
        operation = self.start(now, subscription_id, record.location, "delete", k)
        if fail:
            operation.error = {
                "code": "InternalOperationError",
                "message": "The snapshot could not be deleted: an internal error occurred. Please retry.",
            }
        return operation

    def snapshot_access(
        self, now: datetime, subscription_id: str, resource_group: str, name: str, action: str, body: object
    ) -> Operation:
        """`beginGetAccess` (grant read access: diskState ActiveSAS) or `endGetAccess` (revoke it)."""
        record = self.get_snapshot(subscription_id, resource_group, name)
        return snapshot_rules.access(self, now, record, action, body)

    # ---- operations --------------------------------------------------------------------------------------------

    def start(
        self,
        now: datetime,
        subscription_id: str,
        location: str,
        kind: OperationKind,
        target: Key,
        *,
        duration: str | None = None,
        target_kind: Literal["snapshots", "disks"] = "snapshots",
    ) -> Operation:
        """Register an operation that runs for the configured duration of `duration` (default: its kind)."""
        operation = Operation(
            self.new_id(),
            subscription_id,
            normalize_location(location),
            kind,
            target,
            now,
            now + self.config.duration(duration or kind),
            target_kind=target_kind,
            partition=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription_id.lower()}/{normalize_location(location)}")),
        )
        self.operations[operation.id] = operation
        return operation

    def settle(self, now: datetime) -> None:
        """Finish every operation whose time has come; forget old ones."""
        for disk in self.disks.values():
            if disk.hydrate_minutes is not None and disk.completion != 100.0:  # only those still hydrating
                disk.hydrate(now)
        for operation in self.operations.ended_before(now - OPERATION_TTL):
            del self.operations[operation.id]
        for operation in self.operations.due(now):
            self._finish(operation, now)
            self.operations.ended(operation)

    def _finish(self, operation: Operation, now: datetime) -> None:
        operation.end = now
        operation.status = "Failed" if operation.error is not None else "Succeeded"
        if operation.target_kind == "disks":
            disk_rules.finish(self, operation)
        else:
            snapshot_rules.finish(self, operation, now)

    def operation(self, subscription_id: str, operation_id: str) -> Operation:
        found = self.operations.get(operation_id)
        if found is None or found.subscription_id.lower() != subscription_id.lower():
            raise ArmError(404, "NotFound", f"The operation '{operation_id}' was not found.")
        return found

    def operation_result(self, operation: Operation, now: datetime) -> dict[str, Any] | None:
        """What a succeeded operation answers with: the resource (create, update), `accessSAS` (grant), or nothing."""
        if operation.kind == "grant":
            return {"accessSAS": snapshot_rules.access_sas(operation)}
        if operation.kind not in ("create", "update"):
            return None
        if operation.target_kind == "disks":
            disk = self.disks.get(operation.target)
            if disk is None:
                return None
            output = disk.to_json()
            output["properties"].pop("completionPercent", None)  # progress is on the disk's GET, as for snapshots
            return output
        record = self.snapshots.get(operation.target)
        if record is None:
            return None
        result = record.to_json(now)
        # Azure's operation output has no copy progress: completionPercent is only on the snapshot's GET.
        result["properties"].pop("completionPercent", None)
        return result

    def reset(self, *, keep_disks: bool) -> None:
        self.snapshots.clear()
        self.operations.clear()
        self.created_at.clear()
        self.violations.clear()
        if not keep_disks:
            self.disks.clear()
            self.groups.clear()


def _in_scope(k: Key, subscription_id: str, resource_group: str | None) -> bool:
    return k[0] == subscription_id.lower() and (resource_group is None or k[1] == resource_group.lower())
