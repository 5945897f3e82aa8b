"""An in-memory `CloudClient` for fast reconciler tests: Azure's per-disk rules on an injected clock, no network.

It keeps Azure's observable behaviour that the reconciler depends on (idempotent create by name, the per-disk
window and cap, background copies of Premium SSD v2 / Ultra snapshots, a new unique ID for a re-created disk)
and nothing of the wire. End-to-end tests drive the real SDK through `AzureCloud` against `azsnap.emulator`.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, NotFound, PermanentError, TransientError
from azsnap.cloud.interface import CloudClient, DiskRequest, SnapshotRequest, existing_disk_answer
from azsnap.cloud.mapping import parse_resource_id
from azsnap.cloud.memory_copies import (
    MemorySnapshot,
    fail_copy,
    source_deleted,
    start_copy,
)
from azsnap.cloud.memory_view import completion, render
from azsnap.cloud.restored import RestoredDisks
from azsnap.domain.observed import Disk, Limits, Snapshot

__all__ = ["MemoryCloud"]

#: Azure's snapshot name rule: 1-80 of letters, digits, `_`, `.`, `-`; starts alphanumeric; ends alphanumeric or `_`.
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")

OPERATIONS: Final = (
    "disks.get",
    "snapshots.list",
    "snapshots.create",
    "snapshots.delete",
    "snapshots.get",
    "disks.create",
    "disks.delete",
)


def _key(*parts: str) -> tuple[str, ...]:
    return tuple(p.lower() for p in parts)


@dataclass
class _Fault:
    error: CloudError
    remaining: int


@dataclass
class _DiskHistory:
    """Create times of one disk (by unique ID): the window counts creates, including snapshots deleted since."""

    creates: deque[datetime] = field(default_factory=deque)


class MemoryCloud(CloudClient):
    """`CloudClient` held in dictionaries; time comes from `clock`, so tests move it by hand.

    `creating_for` keeps a new snapshot `Creating` that long (0: it succeeds at once); `copy_duration` is how
    long a Premium SSD v2 / Ultra snapshot takes to reach `completionPercent` 100, and `hydrate_duration` how long
    a Premium SSD v2 / Ultra disk made from a snapshot takes to hydrate.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        limits: Limits | None = None,
        creating_for: timedelta = timedelta(0),
        copy_duration: timedelta = timedelta(minutes=30),
        region_copy_duration: timedelta = timedelta(minutes=10),
        parallel_copies: int = 100,
        hydrate_duration: timedelta = timedelta(minutes=30),
    ) -> None:
        self._clock = clock
        self.limits = limits or Limits()
        self.creating_for = creating_for
        self.copy_duration = copy_duration
        self.region_copy_duration = region_copy_duration
        self.parallel_copies = parallel_copies
        #: How many of the next CopyStarts fail half-way (`copyCompletionError`), and sources deleted mid-copy.
        self.failing_copies = 0
        self.violations: list[str] = []
        self._disks: dict[tuple[str, ...], Disk] = {}
        self._snapshots: dict[tuple[str, ...], MemorySnapshot] = {}
        self._history: dict[str, _DiskHistory] = {}
        self._faults: dict[str, deque[_Fault]] = {}
        self._serial = 0
        self.restored = RestoredDisks(clock, hydrate_duration)
        #: Calls by operation (`disks.get`, `snapshots.list`, `snapshots.create`, `snapshots.delete`), faults included.
        self.calls: Counter[str] = Counter()
        self.closed = False

    # ---- test helpers -------------------------------------------------------------------------------------------

    def add_disk(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        location: str = "westeurope",
        sku: str = "StandardSSD_LRS",
        size_gb: int = 128,
    ) -> Disk:
        """Create (or re-create) a disk; a re-created disk gets a new unique ID, as in Azure."""
        self._serial += 1
        disk_id = (
            f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Compute/disks/{name}"
        )
        disk = Disk(
            id=disk_id,
            name=name,
            subscription_id=subscription_id,
            resource_group=resource_group,
            location=location,
            unique_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{disk_id.lower()}#{self._serial}")),
            sku=sku,
            size_bytes=size_gb * 1024**3,
        )
        self._disks[_key(subscription_id, resource_group, name)] = disk
        return disk

    def remove_disk(self, disk_id: str) -> None:
        """Delete a disk; its snapshots stay, as in Azure."""
        rid = parse_resource_id(disk_id)
        self._disks.pop(_key(rid.subscription_id, rid.resource_group, rid.name), None)

    def seed_snapshot(
        self,
        disk: Disk,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        created_at: datetime | None = None,
        resource_group: str | None = None,
        failed: bool = False,
        incremental: bool = True,
    ) -> Snapshot:
        """Put a snapshot in place without the create rules (one made earlier, or by someone else)."""
        record = MemorySnapshot(
            subscription_id=disk.subscription_id,
            resource_group=resource_group or disk.resource_group,
            name=name,
            location=disk.location,
            source_disk_id=disk.id,
            source_unique_id=disk.unique_id,
            tags=dict(tags or {}),
            incremental=incremental,
            created_at=created_at or self._clock.now(),
            size_bytes=disk.size_bytes,
            background_copy=disk.copies_in_background,
            failed=failed,
        )
        self._snapshots[_key(record.subscription_id, record.resource_group, name)] = record
        return self._render(record)

    def fail_next(self, operation: str, error: CloudError, times: int = 1) -> None:
        """Raise `error` on the next `times` calls of `operation` (one of `OPERATIONS`) instead of doing it."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
        self._faults.setdefault(operation, deque()).append(_Fault(error, times))

    def mark_failed(self, subscription_id: str, resource_group: str, name: str) -> None:
        """Turn an existing snapshot `Failed` (as a background copy that broke); KeyError if there is none."""
        self._snapshots[_key(subscription_id, resource_group, name)].failed = True

    @property
    def snapshots(self) -> list[Snapshot]:
        """Every snapshot held, as `list_snapshots` would show it now."""
        return [self._render(r) for r in self._snapshots.values()]

    @property
    def disks(self) -> list[Disk]:
        return list(self._disks.values())

    # ---- CloudClient ----------------------------------------------------------------------------------------------

    async def _enter(self, operation: str) -> None:
        if self.closed:
            raise RuntimeError("MemoryCloud is closed")
        self.calls[operation] += 1
        await asyncio.sleep(0)  # yield like real I/O, so concurrent callers interleave
        queue = self._faults.get(operation)
        if queue:
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            raise fault.error

    async def get_disk(self, disk_id: str) -> Disk | None:
        await self._enter("disks.get")
        rid = parse_resource_id(disk_id)
        if rid.resource_type.lower() != "disks":
            raise PermanentError(f"{disk_id!r} is not a managed disk ID", code="InvalidResourceId")
        disk = self._disks.get(_key(rid.subscription_id, rid.resource_group, rid.name))
        return self.restored.render(disk) if disk is not None else None

    async def get_snapshot(self, subscription_id: str, resource_group: str, name: str) -> Snapshot | None:
        await self._enter("snapshots.get")
        record = self._snapshots.get(_key(subscription_id, resource_group, name))
        return self._render(record) if record is not None else None

    async def create_disk(self, request: DiskRequest) -> Disk:
        await self._enter("disks.create")
        existing = self._disks.get(_key(request.subscription_id, request.resource_group, request.name))
        if existing is not None:
            return self.restored.render(existing_disk_answer(existing, request))
        rid = parse_resource_id(request.source_snapshot_id)
        record = self._snapshots.get(_key(rid.subscription_id, rid.resource_group, rid.name))
        source = self._render(record) if record is not None else None
        if source is None or source.location.lower() != request.location.lower():
            # Azure cannot see a source in another region from the target's either: 404 NotFound.
            raise NotFound(f"Resource {rid.name} is not found.", code="NotFound", status=404)
        self.restored.check(request, source)
        self._serial += 1
        disk = Disk(
            id=request.disk_id,
            name=request.name,
            subscription_id=request.subscription_id,
            resource_group=request.resource_group,
            location=source.location,
            unique_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{request.disk_id.lower()}#{self._serial}")),
            sku=request.sku,
            size_bytes=(request.size_gb or 0) * 1024**3 or source.size_bytes,
            tags=dict(request.tags),
            source_resource_id=source.id,
            zone=request.zone,
        )
        self._disks[_key(request.subscription_id, request.resource_group, request.name)] = disk
        self.restored.made(disk)
        return self.restored.render(disk)

    async def delete_disk(self, disk_id: str) -> None:
        await self._enter("disks.delete")
        rid = parse_resource_id(disk_id)
        if self._disks.pop(_key(rid.subscription_id, rid.resource_group, rid.name), None) is not None:
            self.restored.forget(disk_id)

    async def list_snapshots(self, subscription_id: str, resource_group: str | None) -> list[Snapshot]:
        await self._enter("snapshots.list")
        if resource_group is None:
            return [self._render(r) for k, r in self._snapshots.items() if k[0] == subscription_id.lower()]
        group = _key(subscription_id, resource_group)
        return [self._render(r) for k, r in self._snapshots.items() if k[:2] == group]

    async def create_snapshot(self, request: SnapshotRequest) -> Snapshot:
        await self._enter("snapshots.create")
        key = _key(request.subscription_id, request.resource_group, request.name)
        existing = self._snapshots.get(key)
        if existing is not None:
            return self._render(existing)
        if not _NAME_RE.match(request.name):
            raise PermanentError(
                f"The snapshot name {request.name!r} is invalid: use 1-80 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit and ending with a letter, digit or '_'.",
                code="InvalidResourceName",
                status=400,
            )
        if request.create_option == "CopyStart":
            record = start_copy(
                self._snapshots, request, key, self._clock.now(), self.parallel_copies, self.region_copy_duration
            )
            if self.failing_copies > 0:
                self.failing_copies -= 1
                fail_copy(record, self.region_copy_duration)
            self._snapshots[key] = record
            return self._render(record)
        rid = parse_resource_id(request.source_disk_id)
        disk = self._disks.get(_key(rid.subscription_id, rid.resource_group, rid.name))
        if disk is None:
            raise NotFound(f"The source disk {request.source_disk_id} was not found.", code="NotFound", status=404)
        if disk.location.lower() != request.location.lower():
            raise PermanentError(
                f"The snapshot must be in the disk's location {disk.location}, not {request.location}.",
                code="InvalidParameter",
                status=400,
            )
        now = self._clock.now()
        if request.incremental:
            self._check_limits(disk, now)
        record = MemorySnapshot(
            subscription_id=request.subscription_id,
            resource_group=request.resource_group,
            name=request.name,
            location=request.location,
            source_disk_id=disk.id,
            source_unique_id=disk.unique_id,
            tags=dict(request.tags),
            incremental=request.incremental,
            created_at=now,
            size_bytes=disk.size_bytes,
            background_copy=disk.copies_in_background,
        )
        self._snapshots[key] = record
        if request.incremental:
            self._history.setdefault(disk.unique_id, _DiskHistory()).creates.append(now)
        return self._render(record)

    async def delete_snapshot(self, subscription_id: str, resource_group: str, name: str) -> None:
        await self._enter("snapshots.delete")
        key = _key(subscription_id, resource_group, name)
        if self._snapshots.pop(key, None) is not None:
            self.violations.extend(source_deleted(self._snapshots, key, self._clock.now(), self.region_copy_duration))

    async def close(self) -> None:
        self.closed = True

    # ---- Azure's rules --------------------------------------------------------------------------------------------

    def _check_limits(self, disk: Disk, now: datetime) -> None:
        limits = self.limits
        creates = self._history.setdefault(disk.unique_id, _DiskHistory()).creates
        while creates and creates[0] <= now - limits.window:
            creates.popleft()
        if len(creates) >= limits.window_creates:
            wait = (creates[0] + limits.window - now).total_seconds()
            raise TransientError(
                f"Only {limits.window_creates} incremental snapshots of a disk can be created within "
                f"{limits.window.total_seconds() / 60:g} minutes; try again later.",
                retry_after=max(wait, 1.0),
                code="OperationNotAllowed",
                status=409,
            )
        # Failed snapshots are resources too and count against the cap until deleted.
        family = [r for r in self._snapshots.values() if r.incremental and r.source_unique_id == disk.unique_id]
        if len(family) >= limits.per_disk_cap:
            raise PermanentError(
                f"The disk {disk.name} already has {len(family)} incremental snapshots, the most allowed is "
                f"{limits.per_disk_cap}; delete some before creating more.",
                code="SnapshotsLimitReached",
                status=409,
            )
        if disk.copies_in_background:
            pending = [r for r in family if not r.failed and self._completion(r, now) < 100]
            if len(pending) >= limits.max_pending_copies:
                soonest = min(r.created_at + self.copy_duration for r in pending)
                raise TransientError(
                    f"The disk {disk.name} already has {len(pending)} snapshots copying in the background, the most "
                    f"allowed is {limits.max_pending_copies}; try again when one completes.",
                    retry_after=max((soonest - now).total_seconds(), 1.0),
                    code="OperationNotAllowed",
                    status=409,
                )

    def _completion(self, record: MemorySnapshot, now: datetime) -> float:
        return completion(record, now, self.copy_duration, self.region_copy_duration)

    def _render(self, record: MemorySnapshot) -> Snapshot:
        now = self._clock.now()
        return render(record, now, self.creating_for, self.copy_duration, self.region_copy_duration)
