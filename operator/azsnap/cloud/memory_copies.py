"""`MemoryCloud`'s snapshot record and its cross-region copies: Azure's four restrictions, progress and failure.

The wire answers (the 409s' words) are the emulator's (`azsnap.emulator.copies`); this twin raises the same
errors `AzureCloud` maps them to.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from azsnap.cloud.errors import NotFound, PermanentError, TransientError
from azsnap.cloud.interface import SnapshotRequest
from azsnap.cloud.mapping import parse_resource_id

__all__ = ["MemorySnapshot", "copy_completion", "copy_failed", "fail_copy", "source_deleted", "start_copy"]

Key = tuple[str, ...]


def _key(*parts: str) -> Key:
    return tuple(p.lower() for p in parts)


@dataclass
class MemorySnapshot:
    """A snapshot `MemoryCloud` holds (a cross-region copy too)."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    source_disk_id: str
    source_unique_id: str | None
    tags: dict[str, str]
    incremental: bool
    created_at: datetime
    size_bytes: int
    background_copy: bool
    failed: bool = False
    #: A CopyStart: its source (key), the source's disk (unique ID) and creation time; when and why it failed.
    copy_source: tuple[str, ...] | None = None
    copy_family: str | None = None
    copy_source_time: datetime | None = None
    copy_stop: datetime | None = None
    copy_error: str | None = None

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/snapshots/{self.name}"
        )


def copy_failed(record: MemorySnapshot, now: datetime) -> bool:
    return record.copy_stop is not None and record.copy_error is not None and now >= record.copy_stop


def copy_completion(record: MemorySnapshot, now: datetime, duration: timedelta) -> float:
    if record.copy_stop is not None:
        now = min(now, record.copy_stop)
    if duration.total_seconds() <= 0:
        return 0.0 if copy_failed(record, now) else 100.0
    done = (now - record.created_at).total_seconds() / duration.total_seconds() * 100.0
    return float(min(100.0, max(0.0, round(done, 1))))


def _running(record: MemorySnapshot, now: datetime, duration: timedelta) -> bool:
    return (
        record.copy_source is not None and not copy_failed(record, now) and copy_completion(record, now, duration) < 100
    )


def fail_copy(record: MemorySnapshot, duration: timedelta) -> None:
    """The copy stops half-way with a `copyCompletionError`."""
    record.copy_stop, record.copy_error = record.created_at + duration / 2, "CopyFailed"


def source_deleted(snapshots: dict[Key, MemorySnapshot], source: Key, now: datetime, duration: timedelta) -> list[str]:
    """Fail every copy of a deleted source still running (CopySourceNotFound); what happened, as violations."""
    found = []
    for copy in snapshots.values():
        if copy.copy_source == source and _running(copy, now, duration):
            copy.copy_stop, copy.copy_error = now, "CopySourceNotFound"
            found.append(f"{source[2]}: source deleted while its copy {copy.name} ran")
    return found


def start_copy(
    snapshots: dict[Key, MemorySnapshot],
    request: SnapshotRequest,
    key: Key,
    now: datetime,
    parallel: int,
    duration: timedelta,
) -> MemorySnapshot:
    """A new copy record, or the refusal Azure answers (the caller stores it)."""
    rid = parse_resource_id(request.source_disk_id)
    source_key = _key(rid.subscription_id, rid.resource_group, rid.name)
    source = snapshots.get(source_key)
    if source is None:
        raise NotFound(f"Resource {rid.name} is not found.", code="NotFound", status=404)
    if not source.incremental:
        raise PermanentError(
            f"CopyStart copies incremental snapshots only: snapshot '{rid.name}' is not incremental.",
            code="OperationNotAllowed",
            status=409,
        )
    running = [r for r in snapshots.values() if _running(r, now, duration)]
    location = request.location.lower()
    in_region = [r for r in running if r.subscription_id.lower() == key[0] and r.location.lower() == location]
    if len(in_region) >= parallel:
        raise TransientError(
            f"At most {parallel} incremental snapshots can be copied in parallel per subscription "
            f"per region: {len(in_region)} copies into region '{location}' are in progress.",
            retry_after=60.0,
            code="OperationNotAllowed",
            status=409,
        )
    if any(r.copy_family == source.source_unique_id for r in running):
        raise TransientError(
            "Only one incremental snapshot of a disk can be copied at a time: a copy of the same disk is in progress.",
            retry_after=60.0,
            code="OperationNotAllowed",
            status=409,
        )
    if any(
        r.copy_family == source.source_unique_id
        and r.location.lower() == location
        and r.copy_error is None
        and r.copy_source_time is not None
        and r.copy_source_time > source.created_at
        for r in snapshots.values()
    ):
        raise PermanentError(
            "Incremental snapshots must be copied in the order they were created: a newer snapshot of the "
            f"same disk was already copied to region '{location}'.",
            code="OperationNotAllowed",
            status=409,
        )
    return MemorySnapshot(
        subscription_id=request.subscription_id,
        resource_group=request.resource_group,
        name=request.name,
        location=request.location,
        source_disk_id=source.id,
        source_unique_id=str(uuid.uuid5(uuid.NAMESPACE_URL, source.id.lower())),  # the source snapshot's
        tags=dict(request.tags),
        incremental=True,
        created_at=now,
        size_bytes=source.size_bytes,
        background_copy=False,
        copy_source=source_key,
        copy_family=source.source_unique_id,
        copy_source_time=source.created_at,
    )
