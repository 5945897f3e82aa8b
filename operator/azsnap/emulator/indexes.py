"""The emulated RP's tables with their indexes: snapshots by scope, by source disk and (CopyStart copies) by source
snapshot and disk family, operations by due time.

A resource group with hundreds of thousands of snapshots must not make each create scan them all (the per-disk
limits count one disk's snapshots), each CopyStart or delete scan them for the copies it concerns (Azure's copy
rules count one disk family's copies, or the copies running), nor each request walk every operation ever started
(only the due ones finish).
Both tables are mappings like the dicts they replace, so every rule reads and writes them as before; the indexes
follow each write.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator, MutableMapping
from datetime import datetime
from typing import TypeVar

from azsnap.emulator.records import Key, Operation, SnapshotRecord

__all__ = ["OperationTable", "SnapshotTable"]

T = TypeVar("T")


class SnapshotTable(MutableMapping[Key, SnapshotRecord]):
    """Snapshots by key, in creation order, also reachable by resource group and by source disk (its uniqueId); the
    CopyStart copies by source snapshot and by disk family, and those that may still be copying.

    A record's key, source and copy source never change once it is in the table (a snapshot cannot be renamed or
    re-sourced); a copy that stopped copying never copies again (its progress only grows, a failure stays).
    """

    def __init__(self) -> None:
        self._all: dict[Key, SnapshotRecord] = {}
        self._by_group: dict[tuple[str, str], dict[Key, SnapshotRecord]] = {}
        self._by_source: dict[str, dict[Key, SnapshotRecord]] = {}
        self._by_copy_source: dict[Key, dict[Key, SnapshotRecord]] = {}
        self._by_family: dict[str, dict[Key, SnapshotRecord]] = {}
        self._maybe_copying: dict[Key, SnapshotRecord] = {}

    def __getitem__(self, k: Key) -> SnapshotRecord:
        return self._all[k]

    def __setitem__(self, k: Key, record: SnapshotRecord) -> None:
        old = self._all.get(k)
        if old is not None and _identity(old) != _identity(record):
            self._unindex(k, old, group=False)
        self._all[k] = record  # a key already there keeps its place, in every index, as in a dict
        self._by_group.setdefault(k[:2], {})[k] = record
        if record.source_unique_id is not None:
            self._by_source.setdefault(record.source_unique_id, {})[k] = record
        if record.copy_source is not None:
            self._by_copy_source.setdefault(record.copy_source, {})[k] = record
            self._maybe_copying[k] = record
        if record.copy_source is not None and record.copy_family is not None:
            self._by_family.setdefault(record.copy_family, {})[k] = record

    def __delitem__(self, k: Key) -> None:
        self._unindex(k, self._all.pop(k))

    def __iter__(self) -> Iterator[Key]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, k: object) -> bool:
        return k in self._all

    def clear(self) -> None:
        self._all.clear()
        self._by_group.clear()
        self._by_source.clear()
        self._by_copy_source.clear()
        self._by_family.clear()
        self._maybe_copying.clear()

    def _unindex(self, k: Key, record: SnapshotRecord, *, group: bool = True) -> None:
        if group:
            _drop(self._by_group, k[:2], k)
        if record.source_unique_id is not None:
            _drop(self._by_source, record.source_unique_id, k)
        if record.copy_source is not None:
            _drop(self._by_copy_source, record.copy_source, k)
            self._maybe_copying.pop(k, None)
        if record.copy_source is not None and record.copy_family is not None:
            _drop(self._by_family, record.copy_family, k)

    def of_source(self, unique_id: str) -> list[SnapshotRecord]:
        """The snapshots copied from the disk with this uniqueId (any group, any state)."""
        return list(self._by_source.get(unique_id, {}).values())

    def copies_of_source(self, source: Key) -> list[SnapshotRecord]:
        """The CopyStart copies of the snapshot with this key (any state)."""
        return list(self._by_copy_source.get(source, {}).values())

    def copies_of_family(self, family: str) -> list[SnapshotRecord]:
        """The CopyStart copies of a disk's snapshots (its `incrementalSnapshotFamilyId`), any state."""
        return list(self._by_family.get(family, {}).values())

    def copies_running(self, now: datetime) -> list[SnapshotRecord]:
        """The CopyStart copies still copying at `now` (emulated time never goes back: the others are let go)."""
        done = [k for k, record in self._maybe_copying.items() if not record.copying(now)]
        for k in done:
            del self._maybe_copying[k]
        return list(self._maybe_copying.values())

    def in_scope(self, subscription_id: str, resource_group: str | None) -> list[SnapshotRecord]:
        """A subscription's snapshots (or one resource group's), in creation order as ARM lists them."""
        sub = subscription_id.lower()
        if resource_group is not None:
            return list(self._by_group.get((sub, resource_group.lower()), {}).values())
        if all(group[0] == sub for group in self._by_group):
            return list(self._all.values())
        return [record for k, record in self._all.items() if k[0] == sub]


def _identity(record: SnapshotRecord) -> tuple[object, ...]:
    return (record.source_unique_id, record.copy_source, record.copy_family)


def _drop(table: dict[T, dict[Key, SnapshotRecord]], index: T, k: Key) -> None:
    entries = table.get(index)
    if entries is not None:
        entries.pop(k, None)
        if not entries:
            del table[index]


class OperationTable(MutableMapping[str, Operation]):
    """Operations by id, with the running ones by due time and the ended ones by end time.

    An operation's due time never changes; it ends once (`ended`), when the store finishes it.
    """

    def __init__(self) -> None:
        self._all: dict[str, Operation] = {}
        self._order = itertools.count()
        self._running: list[tuple[datetime, int, str]] = []
        self._ended: list[tuple[datetime, int, str]] = []
        self._seq: dict[str, int] = {}

    def __getitem__(self, operation_id: str) -> Operation:
        return self._all[operation_id]

    def __setitem__(self, operation_id: str, operation: Operation) -> None:
        seq = self._seq.get(operation_id)
        if seq is None:
            seq = self._seq[operation_id] = next(self._order)
        self._all[operation_id] = operation
        if operation.status == "InProgress":
            heapq.heappush(self._running, (operation.due, seq, operation_id))
        self.ended(operation)

    def __delitem__(self, operation_id: str) -> None:
        del self._all[operation_id]
        del self._seq[operation_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def clear(self) -> None:
        self._all.clear()
        self._seq.clear()
        self._running.clear()
        self._ended.clear()

    def due(self, now: datetime) -> list[Operation]:
        """The running operations due by `now`, in the order they were started."""
        found: dict[int, Operation] = {}
        while self._running and self._running[0][0] <= now:
            _, seq, operation_id = heapq.heappop(self._running)
            operation = self._all.get(operation_id)
            if operation is not None and self._seq[operation_id] == seq and operation.status == "InProgress":
                found[seq] = operation
        return [found[seq] for seq in sorted(found)]

    def ended(self, operation: Operation) -> None:
        """Note that an operation in the table has ended (its `end` is set), for `ended_before`."""
        if operation.end is not None and operation.id in self._seq:
            heapq.heappush(self._ended, (operation.end, self._seq[operation.id], operation.id))

    def ended_before(self, instant: datetime) -> list[Operation]:
        """The operations that ended before `instant`, in the order they were started."""
        found: dict[int, Operation] = {}
        while self._ended and self._ended[0][0] < instant:
            _, seq, operation_id = heapq.heappop(self._ended)
            operation = self._all.get(operation_id)
            if operation is not None and self._seq[operation_id] == seq and operation.end is not None:
                found[seq] = operation
        return [found[seq] for seq in sorted(found)]
