"""Shared observation: one paged list per resource group per round, reused by every policy that needs it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from azsnap.clock import Clock
from azsnap.cloud.interface import CloudClient
from azsnap.domain.observed import Disk, Snapshot

__all__ = ["Observer"]


@dataclass
class _Entry:
    fetched_at: datetime
    snapshots: dict[str, Snapshot]  # by lower-cased name


@dataclass
class _DiskEntry:
    fetched_at: datetime
    disk: Disk


class Observer:
    """Caches resource-group snapshot lists and disks for a short freshness window.

    Writes made through azsnap are applied to the cache at once (`record_created`, `record_deleted`), so a
    policy reconciled right after another one in the same group sees them without a second list call.
    Concurrent callers for one group share a single in-flight list call.
    """

    def __init__(
        self,
        cloud: CloudClient,
        clock: Clock,
        *,
        freshness: timedelta = timedelta(seconds=30),
        disk_freshness: timedelta = timedelta(minutes=10),
    ) -> None:
        self._cloud = cloud
        self._clock = clock
        self._freshness = freshness
        self._disk_freshness = disk_freshness
        self._groups: dict[tuple[str, str], _Entry] = {}
        self._disks: dict[str, _DiskEntry] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        #: Creation times azsnap itself saw accepted, per disk (lower-cased ID): covers the window even when a
        #: list answer is older than the create.
        self._recent_creates: dict[str, dict[str, datetime]] = {}

    @staticmethod
    def _key(subscription_id: str, resource_group: str) -> tuple[str, str]:
        return subscription_id.lower(), resource_group.lower()

    async def snapshots(self, subscription_id: str, resource_group: str) -> list[Snapshot]:
        """The group's snapshots, listed at most once per freshness window."""
        key = self._key(subscription_id, resource_group)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._groups.get(key)
            if entry is None or self._clock.now() - entry.fetched_at >= self._freshness:
                listed = await self._cloud.list_snapshots(subscription_id, resource_group)
                entry = _Entry(self._clock.now(), {s.name.lower(): s for s in listed})
                self._groups[key] = entry
            return list(entry.snapshots.values())

    async def known_snapshots(self, subscription_id: str, resource_group: str) -> list[Snapshot]:
        """The group's snapshots as last listed plus azsnap's own writes since, however old; lists only if never listed."""
        entry = self._groups.get(self._key(subscription_id, resource_group))
        if entry is None:
            return await self.snapshots(subscription_id, resource_group)
        return list(entry.snapshots.values())

    async def disk(self, disk_id: str) -> Disk | None:
        """The disk (cached for a while when it exists); None when Azure says it does not exist."""
        key = disk_id.lower()
        cached = self._disks.get(key)
        if cached is not None and self._clock.now() - cached.fetched_at < self._disk_freshness:
            return cached.disk
        disk = await self._cloud.get_disk(disk_id)
        if disk is None:
            self._disks.pop(key, None)
        else:
            self._disks[key] = _DiskEntry(self._clock.now(), disk)
        return disk

    def forget_disk(self, disk_id: str) -> None:
        """Drop a cached disk (e.g. after Azure said a snapshot's source is gone)."""
        self._disks.pop(disk_id.lower(), None)

    def record_created(self, subscription_id: str, resource_group: str, snapshot: Snapshot, disk: Disk) -> None:
        entry = self._groups.get(self._key(subscription_id, resource_group))
        if entry is not None:
            if snapshot.time_created is None:
                snapshot = replace(snapshot, time_created=self._clock.now())
            entry.snapshots[snapshot.name.lower()] = snapshot
        created = snapshot.time_created or self._clock.now()
        self._recent_creates.setdefault(disk.id.lower(), {})[snapshot.name.lower()] = created

    def record_deleted(self, subscription_id: str, resource_group: str, name: str) -> None:
        entry = self._groups.get(self._key(subscription_id, resource_group))
        if entry is not None:
            entry.snapshots.pop(name.lower(), None)

    def invalidate(self, subscription_id: str, resource_group: str) -> None:
        """Force the next read of this group to list again (after an uncertain write)."""
        self._groups.pop(self._key(subscription_id, resource_group), None)

    def recent_creates(self, disk: Disk, observed: list[Snapshot], window: timedelta) -> list[datetime]:
        """Creation times of every snapshot of the disk inside the rolling window, whoever made it."""
        now = self._clock.now()
        since = now - window
        seen = {s.name.lower(): s.time_created for s in observed if s.time_created is not None}
        local = {n: t for n, t in self._recent_creates.get(disk.id.lower(), {}).items() if t > since}
        self._recent_creates[disk.id.lower()] = local
        merged = {**local, **seen}
        return sorted(t for t in merged.values() if t > since)
