"""Snapshot rules of the emulated Disk RP: create (Copy, CopyStart, Empty), update, access, and Azure's disk limits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, Literal

from azsnap.emulator import copies
from azsnap.emulator.arm import ArmError, check_sku, check_tags, normalize_location, parse_source_id, resource_id
from azsnap.emulator.records import (
    BACKGROUND_COPY_SKUS,
    CARRIED,
    GIB,
    SNAPSHOT_SKUS,
    Operation,
    RecordStore,
    SnapshotRecord,
    iso,
    key,
    sku_tier,
)

__all__ = ["READ_ONLY", "access", "access_sas", "create", "echo", "finish", "kept_properties", "update"]

#: Properties the server sets: never taken from a request.
READ_ONLY: Final = frozenset(
    {
        "provisioningState",
        "uniqueId",
        "timeCreated",
        "diskSizeBytes",
        "diskState",
        "incrementalSnapshotFamilyId",
        "completionPercent",
        "snapshotAccessState",
        "sourceUniqueId",
    }
)
#: A CopyStart waits this long in the target region's queue before its copy makes progress.
COPY_QUEUE: Final = timedelta(seconds=30)
#: The message Azure answers when a disk has too many incremental snapshots (reported in an SDK issue).
LIMIT_MESSAGE: Final = "The snapshot count was exceeded for a disk. Please retry the request after sometime."
_PLATFORM_KEY: Final = {"type": "EncryptionAtRestWithPlatformKey"}


def echo(kind: str, subscription_id: str, resource_group: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """What Azure's 202 to a PUT says: the request as sent, with `provisioningState: Updating` and no server fields."""
    answer: dict[str, Any] = {
        "name": name,
        "id": resource_id(subscription_id, resource_group, kind, name),
        "type": f"Microsoft.Compute/{kind}",
    }
    answer.update({k: v for k, v in body.items() if k not in ("id", "name", "type", "properties")})
    props = body.get("properties")
    answer["properties"] = {**(props if isinstance(props, dict) else {}), "provisioningState": "Updating"}
    return answer


def kept_properties(props: dict[str, Any]) -> dict[str, Any]:
    """The request's properties Azure keeps as sent (encryption, network policies, ...), minus read-only ones."""
    return {k: v for k, v in props.items() if k not in READ_ONLY and k != "creationData"}


def _bad_body() -> ArmError:
    return ArmError(400, "InvalidRequestContent", "The request content was invalid and could not be deserialized.")


def _parse(body: object) -> tuple[str, dict[str, str], dict[str, Any], dict[str, Any]]:
    """(location, tags, properties, creationData) of a PUT body; 400s as ARM words them."""
    if not isinstance(body, dict):
        raise _bad_body()
    location = body.get("location")
    if not isinstance(location, str) or not location.strip():
        raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
    tags = check_tags(body.get("tags"))
    props = body.get("properties")
    creation = props.get("creationData") if isinstance(props, dict) else None
    if not isinstance(props, dict) or not isinstance(creation, dict):
        raise ArmError(
            400, "InvalidParameter", "Required parameter 'creationData' is missing (null).", target="creationData"
        )
    return normalize_location(location), tags, props, creation


def source_missing(name: str) -> ArmError:
    """Azure's answer to a source it cannot see (absent, or a disk in another region): 404 NotFound."""
    return ArmError(404, "NotFound", f"Resource {name} is not found.")


def create(
    store: RecordStore,
    now: datetime,
    subscription_id: str,
    resource_group: str,
    name: str,
    body: object,
    *,
    fail: Literal["lro_failed", "failed_after_limit", "copy_failed"] | None = None,
) -> tuple[SnapshotRecord, Operation]:
    """Validate a new snapshot and start creating it."""
    location, tags, props, creation = _parse(body)
    assert isinstance(body, dict)  # checked by _parse
    option = creation.get("createOption")
    if option not in ("Copy", "CopyStart", "Empty"):
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{option}' of parameter 'creationData.createOption' is not supported for snapshots "
            "by this emulator: use Copy, CopyStart or Empty.",
            target="creationData.createOption",
        )
    incremental = props.get("incremental", False)
    if not isinstance(incremental, bool):
        raise ArmError(400, "InvalidParameter", "The value of 'incremental' must be a boolean.", target="incremental")
    sku = check_sku(body.get("sku"), SNAPSHOT_SKUS)
    record = SnapshotRecord(subscription_id, resource_group, name, {}, now)
    carried: dict[str, Any] = {}
    family: str | None = None
    encryption: dict[str, Any] = dict(_PLATFORM_KEY)
    limit_reached = False
    duration = "create"
    creation_out: dict[str, Any] = dict(creation)
    if option == "Empty":
        size_gb = empty_size(props)
        encrypted = isinstance(props.get("encryption"), dict) and props["encryption"].get("diskEncryptionSetId")
        duration = "create" if encrypted else "create_empty"
    else:
        source = parse_source_id(creation.get("sourceResourceId"))
        if source.kind == "disks":
            disk = store.disks.get(key(source.subscription_id, source.resource_group, source.name))
            if disk is not None and option == "CopyStart":
                # CopyStart copies snapshots across regions; from a disk Azure refused it (recorded, 2021).
                raise ArmError(409, "OperationNotAllowed", "CopyStart creation is not supported for this subscription.")
            if disk is None or disk.location != location:
                raise source_missing(source.name)
            background = disk.sku in BACKGROUND_COPY_SKUS
            if background and not incremental:
                raise ArmError(
                    400,
                    "OperationNotAllowed",
                    f"Only incremental snapshots are supported for disks of sku {disk.sku}.",
                )
            if incremental:
                limit_reached = _check_disk_limits(store, now, disk.unique_id, disk.id, disk.name, disk.sku)
            size_gb, unique_source = disk.size_gb, disk.unique_id
            family = disk.family_id if incremental else None
            record.source_unique_id = disk.unique_id
            carried = {k: v for k, v in disk.carried.items() if k in CARRIED}
            encryption = dict(disk.encryption)
            if background:
                fraction = disk.written_gb / disk.size_gb if disk.size_gb else 1.0
                record.copy_minutes = _copy_minutes(store, fraction)
            if incremental:
                store.created_at.setdefault(disk.unique_id, []).append(now)
        else:
            src_key = key(source.subscription_id, source.resource_group, source.name)
            src = store.snapshots.get(src_key)
            if src is None:
                raise source_missing(source.name)
            if option == "CopyStart":
                copies.check_copy_start(store, now, subscription_id, location, src)
                copies.mark_copy(record, src_key, src)
            src_props = src.body["properties"]
            size_gb, unique_source = int(src_props["diskSizeGB"]), str(src_props["uniqueId"])
            family = src_props.get("incrementalSnapshotFamilyId") if incremental else None
            carried = {k: v for k, v in src_props.items() if k in CARRIED}
            if option == "CopyStart":
                record.copy_minutes = _copy_minutes(store, 1.0)
                # A copy across regions starts a new family in the target region.
                family = store.new_id() if incremental else None
        creation_out["sourceUniqueId"] = unique_source
    kept = kept_properties(props)
    base_props: dict[str, Any] = {
        **carried,
        "creationData": creation_out,
        "diskSizeGB": size_gb,
        "encryption": encryption,
        "incremental": incremental,
        "networkAccessPolicy": "AllowAll",
        "publicNetworkAccess": "Enabled",
        **{k: v for k, v in kept.items() if k != "diskSizeGB"},
        "timeCreated": iso(now),
        "diskSizeBytes": size_gb * GIB,
        "uniqueId": store.new_id(),
    }
    if family is not None:
        base_props["incrementalSnapshotFamilyId"] = family
    extra = {k: v for k, v in body.items() if k in ("zones", "extendedLocation")}
    record.body = {
        "id": resource_id(subscription_id, resource_group, "snapshots", name),
        "name": name,
        "type": "Microsoft.Compute/snapshots",
        "location": location,
        "tags": tags,
        "sku": {"name": sku, "tier": sku_tier(sku)},
        **extra,
        "properties": base_props,
    }
    k = key(subscription_id, resource_group, name)
    store.snapshots[k] = record
    operation = store.start(now, subscription_id, location, "create", k, duration=duration)
    if option == "CopyStart" and record.copy_minutes is not None and record.copy_minutes > 0:
        record.created = now + COPY_QUEUE  # progress is counted from the end of the queue
    if fail == "copy_failed" and record.copy_source is not None:
        copies.inject_failure(record)
    if fail == "lro_failed":
        operation.error = {
            "code": "InternalOperationError",
            "message": "The snapshot could not be created: an internal error occurred. Please retry.",
        }
    elif fail == "failed_after_limit" or limit_reached:
        operation.error = {"code": "SnapshotsLimitReached", "message": LIMIT_MESSAGE}
        operation.keep_failed = True
    return record, operation


def _copy_minutes(store: RecordStore, fraction: float) -> float:
    if store.config.copies_with_operation:
        return 0.0
    return 100.0 / store.config.copy_rate_percent_per_minute * fraction


def _check_disk_limits(store: RecordStore, now: datetime, unique_id: str, disk_id: str, name: str, sku: str) -> bool:
    """Raise the per-disk 409s; True when the disk is at its snapshot cap (Azure fails the operation then)."""
    config = store.config
    window_start = now - config.window
    recent = [t for t in store.created_at.get(unique_id, []) if t > window_start]
    store.created_at[unique_id] = recent
    if len(recent) >= config.window_creates:
        wait = max(1, int((recent[0] - window_start).total_seconds() + 0.999))
        minutes = int(config.window.total_seconds() // 60)
        store.violations.append(
            f"{iso(now)} {disk_id}: an incremental snapshot beyond {config.window_creates} in {minutes} minutes"
        )
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Operation 'Create incremental snapshot' is not allowed on disk '{name}': at most "
            f"{config.window_creates} incremental snapshots of a disk may be created in {minutes} minutes. "
            f"Retry after {wait} seconds.",
        )
    mine = store.snapshots_of(unique_id)
    pending = sum(1 for s in mine if s.copying(now))
    if sku in BACKGROUND_COPY_SKUS and pending >= config.max_pending_copies:
        store.violations.append(
            f"{iso(now)} {disk_id}: a snapshot beyond {config.max_pending_copies} pending background copies"
        )
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Too many snapshots of disk '{name}' are still copying in the background: at most "
            f"{config.max_pending_copies} may be pending. Retry after a pending copy completes.",
        )
    existing = sum(1 for s in mine if s.body["properties"]["incremental"] and s.state != "Failed")
    if existing >= config.per_disk_cap:
        store.violations.append(
            f"{iso(now)} {disk_id}: incremental snapshot {existing + 1} beyond the cap of {config.per_disk_cap}"
        )
        return True
    return False


#: What a PUT may change on an existing snapshot, and what it may not (Azure: 409 PropertyChangeNotAllowed).
_FIXED: Final = ("creationData", "incremental")


def update(store: RecordStore, now: datetime, record: SnapshotRecord, body: object) -> Operation:
    """A PUT to an existing snapshot: 202 Updating, the new tags, SKU and kept properties applied at the end."""
    location, tags, props, creation = _parse(body)
    assert isinstance(body, dict)
    if location != record.location:
        raise ArmError(
            400,
            "InvalidResourceLocation",
            f"The resource '{record.name}' already exists in location '{record.location}' in resource group "
            f"'{record.resource_group}'. A resource with the same name cannot be created in location '{location}'. "
            "Please select a new resource name.",
        )
    current = record.body["properties"]
    asked = {"creationData": creation, "incremental": props.get("incremental", current["incremental"])}
    for name in _FIXED:
        now_value, new_value = current[name], asked[name]
        if name == "creationData":
            now_value = {k: v for k, v in now_value.items() if k != "sourceUniqueId"}
            new_value = {k: v for k, v in new_value.items() if k != "sourceUniqueId"}
            same = {k: str(v).lower() for k, v in now_value.items()} == {
                k: str(v).lower() for k, v in new_value.items()
            }
        else:
            same = now_value == new_value
        if not same:
            raise ArmError(409, "PropertyChangeNotAllowed", f"Changing property '{name}' is not allowed.", target=name)
    changes: dict[str, Any] = {"tags": tags, "properties": kept_properties(props)}
    if body.get("sku") is not None:
        changes["sku"] = check_sku(body.get("sku"), SNAPSHOT_SKUS)
    operation = store.start(now, record.subscription_id, record.location, "update", _key_of(record))
    operation.changes = changes
    if record.state != "Creating":
        record.state = "Updating"
    return operation


def access(store: RecordStore, now: datetime, record: SnapshotRecord, action: str, body: object) -> Operation:
    """beginGetAccess: validate `{access, durationInSeconds}`; endGetAccess: no body."""
    if action == "beginGetAccess":
        if not isinstance(body, dict) or body.get("access") not in ("Read", "Write"):
            raise ArmError(
                400,
                "InvalidParameter",
                "The value of parameter 'access' is invalid: it must be Read or Write.",
                target="access",
            )
        seconds = body.get("durationInSeconds")
        if not isinstance(seconds, int) or isinstance(seconds, bool) or seconds <= 0:
            raise ArmError(
                400,
                "InvalidParameter",
                "The value of parameter 'durationInSeconds' must be a positive integer.",
                target="durationInSeconds",
            )
        operation = store.start(now, record.subscription_id, record.location, "grant", _key_of(record))
        operation.changes = {"until": iso(now + timedelta(seconds=seconds))}
        return operation
    return store.start(now, record.subscription_id, record.location, "revoke", _key_of(record))


def access_sas(operation: Operation) -> str:
    """A read URL shaped like Azure's (unsigned: nothing checks it)."""
    return f"https://md-{operation.id[:12]}.blob.storage.azure.net/{operation.id}/abcd?sv=2018-03-28&sr=b&sig=unsigned"


def finish(store: RecordStore, operation: Operation, now: datetime) -> None:
    """Apply an operation's effect on its snapshot when it ends."""
    record = store.snapshots.get(operation.target)
    if record is None:
        return
    if operation.kind == "delete":
        if operation.error is None:
            del store.snapshots[operation.target]
            copies.source_deleted(store, now, operation.target)
    elif operation.kind == "grant":
        record.access_until = datetime.fromisoformat(str((operation.changes or {})["until"]))
    elif operation.kind == "revoke":
        record.access_until = None
    elif operation.kind == "update":
        changes = operation.changes or {}
        record.body["tags"] = changes.get("tags", record.body["tags"])
        if "sku" in changes:
            record.body["sku"] = {"name": changes["sku"], "tier": sku_tier(changes["sku"])}
        record.body["properties"] = {**record.body["properties"], **changes.get("properties", {})}
        if record.state == "Updating":
            record.state = "Succeeded"
    elif operation.error is None:
        record.state = "Succeeded"
    elif operation.keep_failed:
        record.state = "Failed"
    else:
        del store.snapshots[operation.target]


def _key_of(record: SnapshotRecord) -> tuple[str, str, str]:
    return key(record.subscription_id, record.resource_group, record.name)


def empty_size(props: dict[str, Any]) -> int:
    """The size an `Empty` create asks for, refused as Azure refuses it when missing or not a positive integer."""
    size = props.get("diskSizeGB")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise ArmError(
            400,
            "InvalidParameter",
            "Required parameter 'diskSizeGB' is missing (null) or not a positive integer.",
            target="diskSizeGB",
        )
    return size
