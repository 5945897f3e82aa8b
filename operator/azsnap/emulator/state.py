"""The emulated Disk RP's state and rules: disks, snapshots, long-running operations and Azure's per-disk limits."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from azsnap.emulator.arm import (
    ArmError,
    check_snapshot_name,
    check_tags,
    normalize_location,
    parse_source_id,
    resource_id,
)
from azsnap.emulator.config import EmulatorConfig
from azsnap.emulator.records import (
    BACKGROUND_COPY_SKUS,
    DISK_SKUS,
    GIB,
    OPERATION_TTL,
    SNAPSHOT_SKUS,
    DiskRecord,
    Key,
    Operation,
    SnapshotRecord,
    iso,
    key,
    sku_tier,
)

__all__ = ["BACKGROUND_COPY_SKUS", "DiskRecord", "Key", "Operation", "SnapshotRecord", "Store"]


@dataclass
class Store:
    """Everything the emulated RP holds, and its rules. Time is handed in (`now`); nothing here reads a clock."""

    config: EmulatorConfig
    disks: dict[Key, DiskRecord] = field(default_factory=dict)
    snapshots: dict[Key, SnapshotRecord] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
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
    ) -> DiskRecord:
        check_snapshot_name(name)
        if sku not in DISK_SKUS:
            raise ValueError(f"unknown disk sku {sku!r}; one of {sorted(DISK_SKUS)}")
        if size_gb <= 0:
            raise ValueError("size_gb must be positive")
        if written_gb is not None and not 0 <= written_gb <= size_gb:
            raise ValueError("written_gb must be between 0 and size_gb")
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
        )
        self.disks[k] = record
        self.groups.setdefault(k[:2], record.location)
        return record

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

    # ---- lookups and errors ------------------------------------------------------------------------------------

    def require_group(self, subscription_id: str, resource_group: str) -> None:
        if (subscription_id.lower(), resource_group.lower()) not in self.groups:
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{resource_group}' could not be found.")

    @staticmethod
    def not_found(kind: str, resource_group: str, name: str) -> ArmError:
        return ArmError(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.Compute/{kind}/{name}' under resource group '{resource_group}' was not found. "
            "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
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
        return [s for k, s in self.snapshots.items() if _in_scope(k, subscription_id, resource_group)]

    # ---- snapshot create ---------------------------------------------------------------------------------------

    def create_snapshot(
        self,
        now: datetime,
        subscription_id: str,
        resource_group: str,
        name: str,
        body: object,
        *,
        fail: Literal["lro_failed", "failed_after_limit"] | None = None,
    ) -> tuple[SnapshotRecord, Operation | None]:
        """Validate a PUT and start the create; an existing name comes back unchanged with no operation."""
        check_snapshot_name(name)
        self.require_group(subscription_id, resource_group)
        existing = self.snapshots.get(key(subscription_id, resource_group, name))
        if existing is not None:
            return existing, None
        if not isinstance(body, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
            )
        location = body.get("location")
        if not isinstance(location, str) or not location.strip():
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        location = normalize_location(location)
        tags = check_tags(body.get("tags"))
        props = body.get("properties")
        creation = props.get("creationData") if isinstance(props, dict) else None
        if not isinstance(props, dict) or not isinstance(creation, dict):
            raise ArmError(
                400,
                "InvalidParameter",
                "Required parameter 'creationData' is missing (null).",
                target="creationData",
            )
        option = creation.get("createOption")
        if option not in ("Copy", "CopyStart"):
            raise ArmError(
                400,
                "InvalidParameter",
                f"The value '{option}' of parameter 'creationData.createOption' is not supported for snapshots "
                "by this emulator: use Copy or CopyStart with a sourceResourceId.",
                target="creationData.createOption",
            )
        incremental = props.get("incremental", False)
        if not isinstance(incremental, bool):
            raise ArmError(
                400, "InvalidParameter", "The value of 'incremental' must be a boolean.", target="incremental"
            )
        source = parse_source_id(creation.get("sourceResourceId"))
        sku = self._snapshot_sku(body.get("sku"))
        record = SnapshotRecord(subscription_id, resource_group, name, {}, now)
        base_props: dict[str, Any]
        if source.kind == "disks":
            disk = self.disks.get(key(source.subscription_id, source.resource_group, source.name))
            if disk is None:
                raise ArmError(
                    404,
                    "NotFound",
                    f"Source disk '{source.name}' in resource group '{source.resource_group}' was not found.",
                    target="creationData.sourceResourceId",
                )
            if option == "Copy" and disk.location != location:
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"The snapshot must be in the region of its source disk ('{disk.location}'), not '{location}'; "
                    "use createOption CopyStart to copy across regions.",
                    target="location",
                )
            background = disk.sku in BACKGROUND_COPY_SKUS
            if background and not incremental:
                raise ArmError(
                    400,
                    "OperationNotAllowed",
                    f"Only incremental snapshots are supported for disks of sku {disk.sku}.",
                )
            if incremental:
                self._check_disk_limits(now, disk)
            size_gb, unique_source = disk.size_gb, disk.unique_id
            family = disk.family_id if incremental else None
            record.source_unique_id = disk.unique_id
            if background or option == "CopyStart":
                fraction = disk.written_gb / disk.size_gb if disk.size_gb else 1.0
                record.copy_minutes = 100.0 / self.config.copy_rate_percent_per_minute * fraction
            if incremental:
                self.created_at.setdefault(disk.unique_id, []).append(now)
        else:
            src = self.snapshots.get(key(source.subscription_id, source.resource_group, source.name))
            if src is None:
                raise ArmError(
                    404,
                    "NotFound",
                    f"Source snapshot '{source.name}' in resource group '{source.resource_group}' was not found.",
                    target="creationData.sourceResourceId",
                )
            src_props = src.body["properties"]
            size_gb, unique_source = int(src_props["diskSizeGB"]), str(src_props["uniqueId"])
            family = src_props.get("incrementalSnapshotFamilyId") if incremental else None
            if option == "CopyStart":
                record.copy_minutes = 100.0 / self.config.copy_rate_percent_per_minute
        base_props = {
            "creationData": {**creation, "sourceUniqueId": unique_source},
            "diskSizeGB": size_gb,
            "diskSizeBytes": size_gb * GIB,
            "uniqueId": self.new_id(),
            "incremental": incremental,
            "timeCreated": iso(now),
            "diskState": "Unattached",
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
        }
        if family is not None:
            base_props["incrementalSnapshotFamilyId"] = family
        record.body = {
            "id": resource_id(subscription_id, resource_group, "snapshots", name),
            "name": name,
            "type": "Microsoft.Compute/snapshots",
            "location": location,
            "tags": tags,
            "sku": {"name": sku, "tier": sku_tier(sku)},
            "properties": base_props,
        }
        self.snapshots[key(subscription_id, resource_group, name)] = record
        operation = self._start(now, subscription_id, location, "create", key(subscription_id, resource_group, name))
        if fail == "lro_failed":
            operation.error = {
                "code": "InternalOperationError",
                "message": "The snapshot could not be created: an internal error occurred. Please retry.",
            }
        elif fail == "failed_after_limit":
            operation.error = {
                "code": "SnapshotsLimitReached",
                "message": f"The limit of {self.config.per_disk_cap} incremental snapshots for the source disk was reached while the snapshot was being created.",
            }
            operation.keep_failed = True
        return record, operation

    @staticmethod
    def _snapshot_sku(raw: object) -> str:
        if raw is None:
            return "Standard_LRS"
        name = raw.get("name") if isinstance(raw, dict) else None
        if name is None:
            return "Standard_LRS"
        if name not in SNAPSHOT_SKUS:
            raise ArmError(
                400,
                "InvalidParameter",
                f"The value '{name}' of parameter 'sku.name' is invalid; use one of {', '.join(sorted(SNAPSHOT_SKUS))}.",
                target="sku.name",
            )
        return str(name)

    def _check_disk_limits(self, now: datetime, disk: DiskRecord) -> None:
        window_start = now - self.config.window
        recent = [t for t in self.created_at.get(disk.unique_id, []) if t > window_start]
        self.created_at[disk.unique_id] = recent
        if len(recent) >= self.config.window_creates:
            wait = max(1, int((recent[0] - window_start).total_seconds() + 0.999))
            minutes = int(self.config.window.total_seconds() // 60)
            self.violations.append(
                f"{iso(now)} {disk.id}: an incremental snapshot beyond {self.config.window_creates} in {minutes} minutes"
            )
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation 'Create incremental snapshot' is not allowed on disk '{disk.name}': at most "
                f"{self.config.window_creates} incremental snapshots of a disk may be created in {minutes} minutes. "
                f"Retry after {wait} seconds.",
            )
        existing = sum(
            1
            for s in self.snapshots.values()
            if s.source_unique_id == disk.unique_id and s.body["properties"]["incremental"]
        )
        if existing >= self.config.per_disk_cap:
            self.violations.append(
                f"{iso(now)} {disk.id}: incremental snapshot {existing + 1} beyond the cap of {self.config.per_disk_cap}"
            )
            raise ArmError(
                409,
                "SnapshotsLimitReached",
                f"The disk '{disk.name}' has reached the limit of {self.config.per_disk_cap} incremental snapshots. "
                "Delete existing incremental snapshots of the disk before creating new ones.",
            )
        pending = sum(1 for s in self.snapshots.values() if s.source_unique_id == disk.unique_id and s.copying(now))
        if disk.sku in BACKGROUND_COPY_SKUS and pending >= self.config.max_pending_copies:
            self.violations.append(
                f"{iso(now)} {disk.id}: a snapshot beyond {self.config.max_pending_copies} pending background copies"
            )
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Too many snapshots of disk '{disk.name}' are still copying in the background: at most "
                f"{self.config.max_pending_copies} may be pending. Retry after a pending copy completes.",
            )

    # ---- delete and operations ---------------------------------------------------------------------------------

    def delete_snapshot(
        self, now: datetime, subscription_id: str, resource_group: str, name: str, *, fail: bool = False
    ) -> Operation | None:
        """Start deleting; None when there is nothing to delete (ARM answers 204)."""
        self.require_group(subscription_id, resource_group)
        k = key(subscription_id, resource_group, name)
        record = self.snapshots.get(k)
        if record is None:
            return None
        operation = self._start(now, subscription_id, record.body["location"], "delete", k)
        if fail:
            operation.error = {
                "code": "InternalOperationError",
                "message": "The snapshot could not be deleted: an internal error occurred. Please retry.",
            }
        return operation

    def _start(
        self, now: datetime, subscription_id: str, location: str, kind: Literal["create", "delete"], target: Key
    ) -> Operation:
        operation = Operation(
            self.new_id(), subscription_id, location, kind, target, now, now + self.config.lro_duration
        )
        self.operations[operation.id] = operation
        return operation

    def settle(self, now: datetime) -> None:
        """Finish every operation whose time has come; forget old ones."""
        for operation in list(self.operations.values()):
            if operation.status == "InProgress" and now >= operation.due:
                self._finish(operation, now)
            elif operation.end is not None and now - operation.end > OPERATION_TTL:
                del self.operations[operation.id]

    def _finish(self, operation: Operation, now: datetime) -> None:
        operation.end = now
        operation.status = "Failed" if operation.error is not None else "Succeeded"
        record = self.snapshots.get(operation.target)
        if record is None:
            return
        if operation.kind == "delete":
            if operation.error is None:
                del self.snapshots[operation.target]
        elif operation.error is None:
            record.state = "Succeeded"
        elif operation.keep_failed:
            record.state = "Failed"
        else:
            del self.snapshots[operation.target]

    def operation(self, subscription_id: str, operation_id: str) -> Operation:
        found = self.operations.get(operation_id)
        if found is None or found.subscription_id.lower() != subscription_id.lower():
            raise ArmError(404, "NotFound", f"The operation '{operation_id}' was not found.")
        return found

    def operation_result(self, operation: Operation, now: datetime) -> dict[str, Any] | None:
        """What the operation's Location answers once it succeeded: the created snapshot (creates)."""
        if operation.kind == "create":
            record = self.snapshots.get(operation.target)
            if record is not None:
                return record.to_json(now)
        return None

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
