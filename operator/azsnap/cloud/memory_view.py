"""How `MemoryCloud` shows a snapshot it holds at an instant: its provisioning state and its copy's progress."""

from __future__ import annotations

from datetime import datetime, timedelta

from azsnap.cloud.memory_copies import MemorySnapshot, copy_completion, copy_failed
from azsnap.domain.observed import Snapshot

__all__ = ["completion", "render"]


def completion(
    record: MemorySnapshot, now: datetime, copy_duration: timedelta, region_copy_duration: timedelta
) -> float:
    """`completionPercent`: a cross-region copy's progress, or a Premium SSD v2 / Ultra snapshot's background copy."""
    if record.copy_source is not None:
        return copy_completion(record, now, region_copy_duration)
    if not record.background_copy:
        return 100.0
    duration = copy_duration.total_seconds()
    if duration <= 0:
        return 100.0
    done = (now - record.created_at).total_seconds() / duration * 100.0
    return float(min(100.0, max(0.0, round(done, 1))))


def render(
    record: MemorySnapshot,
    now: datetime,
    creating_for: timedelta,
    copy_duration: timedelta,
    region_copy_duration: timedelta,
) -> Snapshot:
    """The snapshot as `list_snapshots` shows it at `now` (`Creating` for `creating_for` after it was made)."""
    if record.failed:
        state = "Failed"
    elif now < record.created_at + creating_for:
        state = "Creating"
    else:
        state = "Succeeded"
    copying = record.background_copy or record.copy_source is not None
    return Snapshot(
        id=record.id,
        name=record.name,
        resource_group=record.resource_group,
        location=record.location,
        source_resource_id=record.source_disk_id,
        source_unique_id=record.source_unique_id,
        time_created=record.created_at,
        provisioning_state=state,
        tags=dict(record.tags),
        incremental=record.incremental,
        completion_percent=completion(record, now, copy_duration, region_copy_duration) if copying else None,
        size_bytes=record.size_bytes,
        create_option="CopyStart" if record.copy_source is not None else "Copy",
        copy_error=record.copy_error if copy_failed(record, now) else None,
    )
