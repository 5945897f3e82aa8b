"""Disk rules of the emulated Disk RP: a disk PUT (Empty, or Copy of a snapshot or disk), its update, and DELETE."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azsnap.emulator.arm import (
    ArmError,
    check_sku,
    check_snapshot_name,
    check_tags,
    normalize_location,
    parse_source_id,
)
from azsnap.emulator.records import (
    BACKGROUND_COPY_SKUS,
    CARRIED,
    DISK_SKUS,
    DiskRecord,
    Operation,
    RecordStore,
    SnapshotRecord,
    key,
)
from azsnap.emulator.snapshots import empty_size, kept_properties, source_missing

__all__ = ["delete_disk", "finish", "put_disk"]

_ZONES = frozenset({"1", "2", "3"})
_FAILED = {
    "code": "InternalOperationError",
    "message": "The disk operation could not be completed: an internal error occurred. Please retry.",
}


def _zones(raw: object) -> list[str] | None:
    """`zones`: absent (a regional disk) or one availability zone, as a list of one string."""
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) != 1 or raw[0] not in _ZONES:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{raw}' of parameter 'zones' is invalid: give one availability zone, '1', '2' or '3'.",
            target="zones",
        )
    return [str(raw[0])]


def _copy_size(props: dict[str, Any], source_gb: int, source_name: str) -> int:
    """The size of a disk copied from a source: the source's, or a larger `diskSizeGB` (never smaller)."""
    asked = props.get("diskSizeGB")
    if asked is None:
        return source_gb
    if not isinstance(asked, int) or isinstance(asked, bool) or asked <= 0:
        raise ArmError(
            400,
            "InvalidParameter",
            "The value of parameter 'diskSizeGB' must be a positive integer.",
            target="diskSizeGB",
        )
    if asked < source_gb:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The specified disk size {asked} GB is smaller than the size of the source {source_name} "
            f"({source_gb} GB). A disk can only be created with the same size or larger.",
            target="diskSizeGB",
        )
    return asked


def _usable_snapshot(snap: SnapshotRecord, now: datetime) -> None:
    """A disk is made only from a snapshot Azure can read: not Failed, its background copy complete."""
    if snap.state == "Failed":
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"The snapshot '{snap.name}' is in a failed state and cannot be the source of a disk.",
        )
    percent = snap.completion(now)
    if percent is not None and percent < 100.0:
        # Premium SSD v2 / Ultra snapshots are not instant access: usable once their background copy completes.
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"The snapshot '{snap.name}' is still copying in the background ({percent:g}% complete); create a disk "
            "from it once its copy is complete.",
        )


def put_disk(
    store: RecordStore,
    now: datetime,
    subscription_id: str,
    resource_group: str,
    name: str,
    body: object,
    *,
    fail: bool = False,
) -> tuple[DiskRecord, Operation]:
    """Validate a disk PUT and start it: a new disk is `Creating` until its operation ends."""
    check_snapshot_name(name)
    store.require_group(subscription_id, resource_group)
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")
    location = body.get("location")
    if not isinstance(location, str) or not location.strip():
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    location = normalize_location(location)
    tags = check_tags(body.get("tags"))
    props = body.get("properties")
    creation = props.get("creationData") if isinstance(props, dict) else None
    if not isinstance(props, dict) or not isinstance(creation, dict):
        raise ArmError(
            400, "InvalidParameter", "Required parameter 'creationData' is missing (null).", target="creationData"
        )
    k = key(subscription_id, resource_group, name)
    existing = store.disks.get(k)
    if existing is not None:
        asked = {k2: str(v).lower() for k2, v in creation.items() if k2 != "sourceUniqueId"}
        held = {k2: str(v).lower() for k2, v in existing.creation.items() if k2 != "sourceUniqueId"}
        if asked != held:
            raise ArmError(
                409,
                "PropertyChangeNotAllowed",
                "Changing property 'creationData' is not allowed.",
                target="creationData",
            )
        operation = store.start(now, subscription_id, existing.location, "update", k, target_kind="disks")
        operation.changes = {"tags": tags}
        return existing, operation
    sku = check_sku(body.get("sku"), DISK_SKUS)
    zones = _zones(body.get("zones"))
    option = creation.get("createOption")
    hydrates = False
    carried = {k2: v for k2, v in props.items() if k2 in CARRIED}
    creation_out: dict[str, Any] = dict(creation)
    if option == "Empty":
        size_gb, written = empty_size(props), 0.0
    elif option == "Copy":
        source = parse_source_id(creation.get("sourceResourceId"))
        src_key = key(source.subscription_id, source.resource_group, source.name)
        if source.kind == "snapshots":
            # Azure accepts a disk from a snapshot that is still Creating (provisioning-states recording).
            snap = store.snapshots.get(src_key)
            if snap is None or snap.location != location:
                raise source_missing(source.name)
            _usable_snapshot(snap, now)
            src_props = snap.body["properties"]
            written = float(src_props["diskSizeGB"])
            size_gb = _copy_size(props, int(src_props["diskSizeGB"]), source.name)
            hydrates = sku in BACKGROUND_COPY_SKUS
            carried = {**{k2: v for k2, v in src_props.items() if k2 in CARRIED}, **carried}
            creation_out["sourceUniqueId"] = src_props["uniqueId"]
        else:
            disk = store.disks.get(src_key)
            if disk is None or disk.location != location:
                raise source_missing(source.name)
            size_gb, written = _copy_size(props, disk.size_gb, source.name), disk.written_gb
            carried = {**disk.carried, **carried}
            creation_out["sourceUniqueId"] = disk.unique_id
    else:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{option}' of parameter 'creationData.createOption' is not supported for disks by this "
            "emulator: use Empty or Copy.",
            target="creationData.createOption",
        )
    encryption = props.get("encryption")
    record = DiskRecord(
        subscription_id,
        resource_group,
        name,
        location,
        sku,
        size_gb,
        written,
        store.new_id(),
        store.new_id(),
        now,
        state="Creating",
        creation=creation_out,
        tags=tags,
        carried=carried,
        zones=zones,
    )
    if hydrates:
        rate = store.config.copy_rate_percent_per_minute
        record.hydrate_minutes = 0.0 if store.config.copies_with_operation else 100.0 / rate * (written / size_gb)
        record.hydrate(now)
    if isinstance(encryption, dict):
        record.encryption = dict(kept_properties({"encryption": encryption})["encryption"])
    store.disks[k] = record
    store.groups.setdefault(k[:2], location)
    operation = store.start(now, subscription_id, location, "create", k, target_kind="disks")
    if fail:
        operation.error = dict(_FAILED)
    return record, operation


def delete_disk(
    store: RecordStore, now: datetime, subscription_id: str, resource_group: str, name: str, *, fail: bool = False
) -> Operation | None:
    """Start deleting a disk; None when it does not exist (204). Its snapshots stay, as in Azure."""
    store.require_group(subscription_id, resource_group)
    k = key(subscription_id, resource_group, name)
    disk = store.disks.get(k)
    if disk is None:
        return None
    operation = store.start(now, subscription_id, disk.location, "delete", k, target_kind="disks")
    if fail:
        operation.error = dict(_FAILED)
    return operation


def finish(store: RecordStore, operation: Operation) -> None:
    """Apply a disk operation's effect when it ends."""
    disk = store.disks.get(operation.target)
    if disk is None:
        return
    if operation.kind == "delete":
        if operation.error is None:
            del store.disks[operation.target]
    elif operation.kind == "update":
        disk.tags = dict((operation.changes or {}).get("tags", disk.tags))
    elif operation.error is None:
        disk.state = "Succeeded"
    else:
        del store.disks[operation.target]
