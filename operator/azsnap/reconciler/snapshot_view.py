"""One subscription's listed snapshots, indexed by source disk, with the settled ones of others kept compact.

A large subscription's list is mostly snapshots azsnap did not make and will never touch: it only counts them (a
disk's 500 cap, its incremental family) and looks at their age and source incarnation. Such a snapshot, once
settled (`Succeeded`, fully copied, not a cross-region copy), is kept as its name, its creation time and a record
of what it shares with its siblings (group, region, source disk and incarnation, tags, size...), held once per
such family: about a third of a whole `Snapshot`. It is made whole again, equal to what Azure listed, only when a
disk's snapshots are read. azsnap's own snapshots, and every snapshot still in progress, stay whole.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Final

from azsnap.domain import naming
from azsnap.domain.copies import TAG_COPY_DISK
from azsnap.domain.observed import Snapshot, SnapshotState

__all__ = ["SnapshotView", "ViewKey"]

ViewKey = tuple[str, str]  # (resource group, name), lower-cased

_COPY_START: Final = "CopyStart"


def _lowered(name: str) -> str:
    """The name lower-cased, the same string when it already is (a view holds hundreds of thousands of keys)."""
    lowered = name.lower()
    return name if lowered == name else lowered


@dataclass(frozen=True, slots=True)
class _Family:
    """Everything a settled snapshot of others shares with its siblings: all of it but its name and creation time."""

    id_prefix: str  # the snapshot's ARM ID up to its name, as Azure spelled it
    resource_group: str
    location: str
    source_resource_id: str | None
    source_unique_id: str | None
    provisioning_state: str | None
    tags: Mapping[str, str]
    incremental: bool
    completion_percent: float | None
    size_bytes: int
    create_option: str | None


#: A compact snapshot: its name, its creation time and its family.
_Packed = tuple[str, datetime | None, _Family]
_Entry = Snapshot | _Packed


def _whole(entry: _Entry) -> Snapshot:
    if isinstance(entry, Snapshot):
        return entry
    name, created, f = entry
    return Snapshot(
        id=f.id_prefix + name,
        name=name,
        resource_group=f.resource_group,
        location=f.location,
        source_resource_id=f.source_resource_id,
        source_unique_id=f.source_unique_id,
        time_created=created,
        provisioning_state=f.provisioning_state,
        tags=f.tags,
        incremental=f.incremental,
        completion_percent=f.completion_percent,
        size_bytes=f.size_bytes,
        create_option=f.create_option,
    )


def _is_azsnaps(snapshot: Snapshot) -> bool:
    return naming.tag(snapshot.tags, naming.TAG_MANAGED_BY) == naming.MANAGED_BY_VALUE


class _Families:
    """Interns families while a list is read: siblings share one record (and one read-only tags mapping)."""

    def __init__(self) -> None:
        self._known: dict[tuple[object, ...], _Family] = {}

    def pack(self, snapshot: Snapshot) -> _Entry:
        """The compact form of a settled snapshot of others, else the snapshot itself."""
        if (
            snapshot.state is not SnapshotState.SUCCEEDED
            or snapshot.create_option == _COPY_START
            or snapshot.copy_error is not None
            or _is_azsnaps(snapshot)
            or not snapshot.id.endswith("/" + snapshot.name)
        ):
            return snapshot
        prefix = snapshot.id[: len(snapshot.id) - len(snapshot.name)]
        tags = tuple(sorted(snapshot.tags.items()))
        key = (
            prefix,
            snapshot.resource_group,
            snapshot.location,
            snapshot.source_resource_id,
            snapshot.source_unique_id,
            snapshot.provisioning_state,
            tags,
            snapshot.incremental,
            snapshot.completion_percent,
            snapshot.size_bytes,
            snapshot.create_option,
        )
        family = self._known.get(key)
        if family is None:
            family = self._known[key] = _Family(
                sys.intern(prefix),
                snapshot.resource_group,
                snapshot.location,
                snapshot.source_resource_id,
                snapshot.source_unique_id,
                snapshot.provisioning_state,
                MappingProxyType(dict(tags)),
                snapshot.incremental,
                snapshot.completion_percent,
                snapshot.size_bytes,
                snapshot.create_option,
            )
        return (snapshot.name, snapshot.time_created, family)


@dataclass
class SnapshotView:
    """What azsnap knows of one subscription's snapshots, as listed at `fetched_at` plus azsnap's writes since."""

    fetched_at: datetime
    #: None: the whole subscription was listed; else the resource groups (lower-cased) that were.
    groups: frozenset[str] | None
    _entries: dict[ViewKey, _Entry] = field(default_factory=dict)
    #: The same snapshots by source disk (lower-cased resource ID); a snapshot with no source is under "".
    _by_disk: dict[str, dict[ViewKey, _Entry]] = field(default_factory=dict)
    #: Cross-region copies azsnap made, by the hash of their disk's ARM ID (`azsnap-copy-disk`).
    _by_copy_disk: dict[str, dict[ViewKey, Snapshot]] = field(default_factory=dict)
    #: Every snapshot azsnap made (its managed-by tag), whatever its disk.
    _azsnaps: dict[ViewKey, Snapshot] = field(default_factory=dict)
    #: CopyStart snapshots still copying, per region (counted when first asked after a change).
    _running: dict[str, int] | None = None
    _families: _Families | None = field(default_factory=_Families)

    def add_listed(self, page: Iterable[Snapshot]) -> None:
        """Add one page of the list (settled snapshots of others compact)."""
        families = self._families or _Families()
        for snapshot in page:
            self._put(snapshot, families.pack(snapshot))

    def listed(self) -> None:
        """The list is complete: the families' index is no longer needed (the families stay, shared)."""
        self._families = None

    def add(self, snapshot: Snapshot) -> None:
        """Add or replace one snapshot (azsnap's own write), kept whole."""
        self._put(snapshot, snapshot)

    def _put(self, snapshot: Snapshot, entry: _Entry) -> None:
        key = (sys.intern(snapshot.resource_group.lower()), _lowered(snapshot.name))
        self.remove(key)
        self._entries[key] = entry
        self._by_disk.setdefault((snapshot.source_resource_id or "").lower(), {})[key] = entry
        if _is_azsnaps(snapshot):
            self._azsnaps[key] = snapshot
        if snapshot.create_option == _COPY_START:
            self._running = None
            copy_disk = naming.tag(snapshot.tags, TAG_COPY_DISK)
            if copy_disk:
                self._by_copy_disk.setdefault(copy_disk, {})[key] = snapshot

    def remove(self, key: ViewKey) -> None:
        old = self._entries.pop(key, None)
        if old is None:
            return
        whole = _whole(old)
        self._by_disk.get((whole.source_resource_id or "").lower(), {}).pop(key, None)
        self._azsnaps.pop(key, None)
        if whole.create_option == _COPY_START:
            self._running = None
            self._by_copy_disk.get(naming.tag(whole.tags, TAG_COPY_DISK) or "", {}).pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)

    def of_disk(self, disk_id: str) -> list[Snapshot]:
        """Every snapshot whose source is this ARM ID (lower-cased), made whole."""
        return [_whole(e) for e in self._by_disk.get(disk_id, {}).values()]

    def every(self) -> Iterator[Snapshot]:
        """Every snapshot, made whole one at a time."""
        return (_whole(e) for e in self._entries.values())

    def azsnaps(self) -> list[Snapshot]:
        """Every snapshot azsnap made (its managed-by tag), whatever its disk."""
        return list(self._azsnaps.values())

    def copies_of(self, copy_disk: str) -> list[Snapshot]:
        return list(self._by_copy_disk.get(copy_disk, {}).values())

    def copies_running(self, region: str) -> int:
        if self._running is None:
            running: dict[str, int] = {}
            for entry in self._entries.values():
                if not isinstance(entry, Snapshot) or entry.create_option != _COPY_START:
                    continue  # a compact entry is settled, and never a copy
                if entry.state in (SnapshotState.COPYING, SnapshotState.CREATING):
                    running[entry.location.lower()] = running.get(entry.location.lower(), 0) + 1
            self._running = running
        return self._running.get(region.lower(), 0)

    def covers(self, groups: Iterable[str]) -> bool:
        return self.groups is None or all(g.lower() in self.groups for g in groups)
