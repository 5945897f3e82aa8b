"""Cross-region copies (`CopyStart`) of the emulated Disk RP: Azure's four restrictions and how a copy fails.

Microsoft documents the restrictions ("Copy an incremental snapshot to a new region") but not the answers that
enforce them; the 409 `OperationNotAllowed` answers below are inferred (the code Azure gave for the recorded
CopyStart refusal). A source deleted while its copy runs is not refused: the copy ends with
`copyCompletionError.errorCode: CopySourceNotFound`, the one reason the official description defines. The rules
read the store's copy indexes (by disk family, by source, the ones still copying), never every snapshot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from azsnap.emulator.arm import ArmError
from azsnap.emulator.records import Key, RecordStore, SnapshotRecord, iso

__all__ = ["INJECTED_CODE", "SOURCE_NOT_FOUND", "check_copy_start", "inject_failure", "mark_copy", "source_deleted"]

SOURCE_NOT_FOUND: Final = "CopySourceNotFound"
#: The code of an injected copy failure (`copy_failed` fault). The official enum is extensible (modelAsString)
#: and names only CopySourceNotFound; this code is the emulator's, for tests of a copy that fails otherwise.
INJECTED_CODE: Final = "CopyFailed"


def _running(store: RecordStore, now: datetime) -> list[SnapshotRecord]:
    return store.copies_running(now)


def check_copy_start(
    store: RecordStore, now: datetime, subscription_id: str, location: str, source: SnapshotRecord
) -> None:
    """Refuse a CopyStart that breaks one of Azure's restrictions (409 OperationNotAllowed)."""
    src_props = source.body["properties"]
    family = src_props.get("incrementalSnapshotFamilyId")
    if not src_props.get("incremental") or family is None:
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"CopyStart copies incremental snapshots only: snapshot '{source.name}' is not incremental.",
        )
    running = _running(store, now)
    limit = store.config.max_parallel_copies
    in_region = [s for s in running if s.subscription_id.lower() == subscription_id.lower() and s.location == location]
    if len(in_region) >= limit:
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"At most {limit} incremental snapshots can be copied in parallel per subscription per region: "
            f"{len(in_region)} copies into region '{location}' are in progress in subscription '{subscription_id}'. "
            "Retry after a copy completes.",
        )
    same_disk = [s for s in store.copies_of_family(family) if s.copying(now)]
    if same_disk:
        raise ArmError(
            409,
            "OperationNotAllowed",
            "Only one incremental snapshot of a disk can be copied at a time: the copy "
            f"'{same_disk[0].name}' of the same disk is in progress. Retry after it completes.",
        )
    created = _source_time(source)
    newer = [
        s
        for s in store.copies_of_family(family)
        if s.location == location
        and s.copy_error is None
        and s.copy_source_time is not None
        and s.copy_source_time > created
    ]
    if newer:
        raise ArmError(
            409,
            "OperationNotAllowed",
            "Incremental snapshots must be copied in the order they were created: a snapshot of the same disk "
            f"created after '{source.name}' was already copied to region '{location}' (as '{newer[0].name}').",
        )


def _source_time(source: SnapshotRecord) -> datetime:
    return datetime.fromisoformat(str(source.body["properties"]["timeCreated"]))


def mark_copy(record: SnapshotRecord, source_key: Key, source: SnapshotRecord) -> None:
    """Remember what a CopyStart copies: its source, the source's disk family and creation time."""
    record.copy_source = source_key
    record.copy_family = source.body["properties"].get("incrementalSnapshotFamilyId")
    record.copy_source_time = _source_time(source)


def inject_failure(record: SnapshotRecord, at_percent: float = 50.0) -> None:
    """Make the copy stop at `at_percent` with an injected `copyCompletionError`."""
    minutes = record.copy_minutes or 0.0
    record.copy_stop = record.created + timedelta(minutes=minutes * at_percent / 100.0)
    record.copy_error = {
        "errorCode": INJECTED_CODE,
        "errorMessage": "The background copy failed (injected by the emulator). Start a new copy.",
    }


def source_deleted(store: RecordStore, now: datetime, source_key: Key) -> None:
    """A deleted source stops every copy of it still running: CopySourceNotFound, and a recorded violation."""
    for record in store.copies_of_source(source_key):
        if not record.copying(now):
            continue
        record.copy_stop = now
        record.copy_error = {
            "errorCode": SOURCE_NOT_FOUND,
            "errorMessage": f"The source snapshot '{source_key[2]}' was deleted while the copy was in progress.",
        }
        store.violations.append(f"{iso(now)} {source_key[2]}: source deleted while its copy {record.name} ran")
