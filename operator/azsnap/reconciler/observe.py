"""Shared observation: one paged list of a subscription's snapshots per round, indexed by source disk.

A disk's limits (the per-disk cap, the rolling create window, background copies) count every snapshot of the
disk, in whatever resource group it lives. The observer therefore lists the whole subscription (one call,
shared by every policy of the subscription) and indexes the answer by source disk, so a reconcile reads its
disk's snapshots without scanning the list. When Azure refuses the subscription-wide list (the identity holds
its role on resource groups only), the observer lists instead every resource group it was told of for that
subscription (each policy's disk and snapshot groups) and says so in `coverage`. A list is reused for the
freshness window, and longer for a large subscription (`SECONDS_PER_PAGE`), so its pages stay bounded.

The same list can stand for a disk already read (`disk_or_list`): when its newest snapshot was taken from the
cached incarnation, the disk is not read again until `REVERIFY` after the last read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, PermanentError
from azsnap.cloud.interface import CloudClient, ListsByPage
from azsnap.domain.observed import Disk, Snapshot
from azsnap.reconciler import heap
from azsnap.reconciler.inflight import CreateTurns
from azsnap.reconciler.snapshot_view import SnapshotView

__all__ = ["Observer"]

#: Azure's answers to a list the identity may not make at subscription scope.
_REFUSED: Final = frozenset({"AuthorizationFailed", "LinkedAuthorizationFailed"})
#: After a refusal, the subscription-wide list is tried again this much later (a role may have been granted).
RETRY_WIDE: Final = timedelta(hours=1)
#: A list is reused for at least this long per 100 snapshots it holds (one page): when policies reconcile one by
#: one (`jitter`), a large subscription is then listed at most one page per 3 s, about 1,200 pages an hour,
#: well inside ARM's list budget, whatever its size. Only others' writes can be that old: azsnap's own are applied.
SECONDS_PER_PAGE: Final = 3.0
_PAGE: Final = 100
#: A list of this many pages or more is followed by a full collection and a heap trim (`heap.release`).
_RELEASE_AFTER_PAGES: Final = 10
#: How long after a disk's last read the snapshot list may stand for it instead of a new read. Creates and deletes
#: check the disk themselves (Azure answers a create from a gone disk with NotFound, and a create from a new
#: incarnation with its unique ID; a delete needs a recent read or such a create), so what waits for this read
#: is only what the status says of a disk nothing was written for: gone, recreated, resized, still copying.
#: Three hourly slots per read: two reads in three are saved, and a change is told within three hours.
REVERIFY: Final = timedelta(hours=3)


def _name_of(snapshot: Snapshot) -> str:
    return f"{snapshot.resource_group}/{snapshot.name}".lower()


def _vouches(disk: Disk, snapshots: Iterable[Snapshot]) -> bool:
    """True when the newest snapshot of the disk's ARM ID was taken from `disk`'s incarnation, and the disk was at rest.

    A snapshot of another incarnation newer than all of this one's means the disk was recreated or restored in
    place; a disk still provisioning or copying changes on its own, so only a read tells how far it is.
    """
    if (disk.provisioning_state or "").lower() != "succeeded" or disk.is_copying:
        return False
    dated = [(s.time_created, s.source_unique_id) for s in snapshots if s.time_created is not None]
    return bool(dated) and max(dated, key=lambda d: d[0])[1] == disk.unique_id


@dataclass
class _DiskEntry:
    fetched_at: datetime
    disk: Disk


class Observer:
    """Caches each subscription's snapshot list and the disks for a short freshness window.

    Writes made through azsnap are applied to the cache at once (`record_created`, `record_deleted`), so a
    policy reconciled right after another one sees them without a second list call. Concurrent callers for
    one subscription share a single in-flight list call.
    """

    def __init__(
        self,
        cloud: CloudClient,
        clock: Clock,
        *,
        freshness: timedelta = timedelta(seconds=30),
        disk_freshness: timedelta = timedelta(minutes=10),
        reverify: timedelta = REVERIFY,
    ) -> None:
        self._cloud = cloud
        self._clock = clock
        self._freshness = freshness
        self._disk_freshness = disk_freshness
        self._reverify = reverify
        self._views: dict[str, SnapshotView] = {}
        self._disks: dict[str, _DiskEntry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: Resource groups policies asked for, per subscription: listed one by one when the wide list is refused.
        self._groups: dict[str, set[str]] = {}
        #: Until when the subscription-wide list is not tried again, after Azure refused it.
        self._narrow_until: dict[str, datetime] = {}
        #: Creation times azsnap itself saw accepted, per disk (lower-cased ID): covers the window even when a
        #: list answer is older than the create.
        self._recent_creates: dict[str, dict[str, datetime]] = {}
        #: Turns for creates in flight, shared by every policy this observer serves (as its ledger of creates is).
        self.create_turns = CreateTurns()

    # -- reading ---------------------------------------------------------------------------------------------

    async def of_disk(self, disk: Disk, groups: Iterable[str], *, fresh: bool = True) -> list[Snapshot]:
        """Every snapshot Azure says was taken from `disk`'s ARM ID (every incarnation), in any group of its subscription.

        `groups` are the resource groups the caller needs covered (the disk's and the snapshots'). With
        `fresh` the list is at most one freshness window old; without it the cached view (with azsnap's own
        writes since) serves however old it is, and Azure is asked only when nothing is known yet.
        """
        view = await self._view(disk.subscription_id, groups, fresh=fresh)
        return view.of_disk(disk.id.lower())

    async def in_subscription(
        self, subscription_id: str, groups: Iterable[str], *, fresh: bool = True
    ) -> list[Snapshot]:
        """Every snapshot of the subscription that azsnap can see (a listing tool's; each is made whole)."""
        view = await self._view(subscription_id, groups, fresh=fresh)
        return list(view.every())

    async def azsnaps_in_subscription(
        self, subscription_id: str, groups: Iterable[str], *, fresh: bool = True
    ) -> list[Snapshot]:
        """Every snapshot of the subscription azsnap made (its managed-by tag), for finalizing and orphans."""
        view = await self._view(subscription_id, groups, fresh=fresh)
        return view.azsnaps()

    async def copies_of(
        self, subscription_id: str, groups: Iterable[str], copy_disk: str, *, fresh: bool = True
    ) -> list[Snapshot]:
        """The cross-region copies in the subscription tagged with this disk hash (`domain.copies.disk_hash`)."""
        view = await self._view(subscription_id, groups, fresh=fresh)
        return view.copies_of(copy_disk)

    def copies_running(self, subscription_id: str, region: str) -> int:
        """CopyStart snapshots still copying into `region` in the subscription, whoever started them (as last seen)."""
        view = self._views.get(subscription_id.lower())
        return 0 if view is None else view.copies_running(region)

    def coverage(self, subscription_id: str) -> frozenset[str] | None:
        """None when the subscription was listed whole; else the resource groups that were listed."""
        view = self._views.get(subscription_id.lower())
        return None if view is None else view.groups

    async def _view(self, subscription_id: str, groups: Iterable[str], *, fresh: bool) -> SnapshotView:
        sub = subscription_id.lower()
        wanted = self._groups.setdefault(sub, set())
        needed = [g.lower() for g in groups]
        wanted.update(needed)
        lock = self._locks.setdefault(sub, asyncio.Lock())
        async with lock:
            view = self._views.get(sub)
            now = self._clock.now()
            stale = view is None or (fresh and now - view.fetched_at >= self._freshness_of(view))
            if view is None or stale or not view.covers(needed):
                view = await self._list(subscription_id, sorted(wanted))
                self._views[sub] = view
            return view

    def _freshness_of(self, view: SnapshotView) -> timedelta:
        pages = -(-len(view) // _PAGE)
        return max(self._freshness, timedelta(seconds=SECONDS_PER_PAGE * pages))

    async def _list(self, subscription_id: str, groups: list[str]) -> SnapshotView:
        sub, now = subscription_id.lower(), self._clock.now()
        if now >= self._narrow_until.get(sub, now):  # one reading: a wall clock moves between two
            try:
                view = await self._read_list(subscription_id, None, SnapshotView(now, None))
            except PermanentError as exc:
                if exc.code not in _REFUSED:
                    raise
                self._narrow_until[sub] = self._clock.now() + RETRY_WIDE
            else:
                self._narrow_until.pop(sub, None)
                return view
        view = SnapshotView(now, frozenset(groups))
        for group in groups:
            await self._read_list(subscription_id, group, view)
        view.listed()
        return view

    async def _read_list(self, subscription_id: str, group: str | None, view: SnapshotView) -> SnapshotView:
        """Add one list's snapshots to `view`, page by page when the client can (a page's objects are then let go)."""
        pages = 0

        def add(page: list[Snapshot]) -> None:
            nonlocal pages
            view.add_listed(page)
            pages += 1
            if pages % heap.PAGES_PER_TRIM == 0:
                heap.trim()  # what earlier pages freed leaves the process while the list goes on

        if isinstance(self._cloud, ListsByPage):
            await self._cloud.list_snapshots_into(subscription_id, group, add)
        else:
            add(await self._cloud.list_snapshots(subscription_id, group))
        if pages >= _RELEASE_AFTER_PAGES:
            heap.release()
        if group is None:
            view.listed()
        view.fetched_at = self._clock.now()  # as before: a list is as old as its end (a long one takes minutes)
        return view

    async def disk(self, disk_id: str) -> Disk | None:
        """The disk (cached for a while when it exists); None when Azure says it does not exist."""
        cached = self._disks.get(disk_id.lower())
        if cached is not None and self._clock.now() - cached.fetched_at < self._disk_freshness:
            return cached.disk
        return await self._read(disk_id)

    async def disk_or_list(self, disk_id: str, groups: Iterable[str]) -> tuple[Disk | None, bool]:
        """The disk, and True when the fresh snapshot list stood for it instead of a read.

        The list stands for a disk read less than `REVERIFY` ago when its newest snapshot of the disk's ARM ID
        was taken from the cached incarnation (`_vouches`). Otherwise, or when the list cannot be had, as `disk`.
        """
        cached = self._disks.get(disk_id.lower())
        if cached is not None and self._disk_freshness <= self._clock.now() - cached.fetched_at < self._reverify:
            try:
                view = await self._view(cached.disk.subscription_id, groups, fresh=True)
            except CloudError:
                pass  # the read below tells, and the list's error is met again when the snapshots are read
            else:
                if _vouches(cached.disk, view.of_disk(disk_id.lower())):
                    return cached.disk, True
        return await self.disk(disk_id), False

    def holds(self, disk: Disk) -> bool:
        """True while `disk`'s incarnation is the cached one (a create from another, or a NotFound, drops it)."""
        cached = self._disks.get(disk.id.lower())
        return cached is not None and cached.disk.unique_id == disk.unique_id

    async def confirm(self, disk: Disk) -> bool:
        """Read the disk now: True when Azure still has this incarnation (False, and forgotten, on any doubt)."""
        try:
            read = await self._read(disk.id)
        except CloudError:
            self.forget_disk(disk.id)
            return False
        return read is not None and read.unique_id == disk.unique_id

    async def _read(self, disk_id: str) -> Disk | None:
        key = disk_id.lower()
        disk = await self._cloud.get_disk(disk_id)
        if disk is None:
            self._disks.pop(key, None)
        else:
            self._disks[key] = _DiskEntry(self._clock.now(), disk)
        return disk

    def forget_disk(self, disk_id: str) -> None:
        """Drop a cached disk (e.g. after Azure said a snapshot's source is gone)."""
        self._disks.pop(disk_id.lower(), None)

    # -- azsnap's own writes ---------------------------------------------------------------------------------

    def record_created(self, subscription_id: str, snapshot: Snapshot, disk: Disk) -> None:
        """Apply a create azsnap made to the cached view and to the disk's rolling window."""
        if snapshot.time_created is None:
            snapshot = replace(snapshot, time_created=self._clock.now())
        view = self._views.get(subscription_id.lower())
        if view is not None:
            view.add(snapshot)
        created = snapshot.time_created or self._clock.now()
        self._recent_creates.setdefault(disk.id.lower(), {})[_name_of(snapshot)] = created

    def record_copy(self, subscription_id: str, snapshot: Snapshot) -> None:
        """Apply a copy azsnap started (in a target region: no disk's window counts it) to the cached view."""
        view = self._views.get(subscription_id.lower())
        if view is not None:
            view.add(snapshot if snapshot.time_created else replace(snapshot, time_created=self._clock.now()))

    def record_deleted(self, subscription_id: str, resource_group: str, name: str) -> None:
        """Apply a delete azsnap made to the cached view."""
        view = self._views.get(subscription_id.lower())
        if view is not None:
            view.remove((resource_group.lower(), name.lower()))

    def invalidate(self, subscription_id: str) -> None:
        """Force the next read of this subscription to list again (after an uncertain write)."""
        self._views.pop(subscription_id.lower(), None)

    def recent_creates(self, disk: Disk, observed: list[Snapshot], window: timedelta) -> list[datetime]:
        """Creation times of every snapshot of the disk's current incarnation inside the rolling window."""
        now = self._clock.now()
        since = now - window
        seen = {_name_of(s): s.time_created for s in observed if s.time_created is not None and s.is_of_disk(disk)}
        local = {n: t for n, t in self._recent_creates.get(disk.id.lower(), {}).items() if t > since}
        self._recent_creates[disk.id.lower()] = local
        merged = {**local, **seen}
        return sorted(t for t in merged.values() if t > since)
