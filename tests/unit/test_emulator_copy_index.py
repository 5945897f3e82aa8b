"""The emulated Disk RP's copy rules read its copy indexes: a CopyStart reads the copies running and its disk's copies,
a delete its snapshot's copies, never every snapshot; and the indexes answer as a scan would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from tests.unit.test_emulator_copies import SUB, T0, copy, disk, make_store, source

from azsnap.emulator.indexes import SnapshotTable
from azsnap.emulator.records import Key, SnapshotRecord
from azsnap.emulator.state import Store

DISKS = 12


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the snapshots whose copy progress is read, and `*scan*` for each walk of the whole table."""
    read: list[str] = []
    copying, walk = SnapshotRecord.copying, SnapshotTable.__iter__

    def counted(self: SnapshotRecord, now: datetime) -> bool:
        read.append(self.name)
        return copying(self, now)

    def scanned(self: SnapshotTable) -> Iterator[Key]:
        read.append("*scan*")
        return walk(self)

    monkeypatch.setattr(SnapshotRecord, "copying", counted)
    monkeypatch.setattr(SnapshotTable, "__iter__", scanned)
    return read


def copied_store() -> tuple[Store, list[str], list[str]]:
    """DISKS disks with three sources each; every source of the first two hours copied (complete by hour 3)."""
    store = make_store()
    ids = [disk(store, f"disk-{i}") for i in range(DISKS)]
    sources: list[str] = []
    for hour in range(3):
        for i, d in enumerate(ids):
            sources.append(source(store, d, f"s-{i}-{hour}", T0 + timedelta(hours=hour)))
    for hour in range(2):
        for i in range(DISKS):
            copy(store, sources[hour * DISKS + i], f"c-{i}-{hour}", T0 + timedelta(hours=hour, minutes=30))
    return store, ids, sources


def test_a_copy_start_reads_the_running_copies_and_its_disks_copies_only(monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, sources = copied_store()
    at = T0 + timedelta(hours=3)
    store.copies_running(at)  # the copies that finished are let go once
    copy(store, sources[2 * DISKS + 0], "running-0", at)  # still copying when the next one starts
    read = counting(monkeypatch)
    copy(store, sources[2 * DISKS + 5], "c-5-2", at + timedelta(minutes=1))
    # the one copy running (the region's count), and disk 5's copies (one at a time per disk, and the order)
    assert sorted(read) == ["c-5-0", "c-5-1", "running-0"]


def test_a_delete_reads_only_its_snapshots_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    store, _, sources = copied_store()
    at = T0 + timedelta(hours=3)
    running = copy(store, sources[2 * DISKS + 3], "c-3-2", at)
    read = counting(monkeypatch)
    store.delete_snapshot(at + timedelta(minutes=1), SUB, "rg-1", "s-3-2")
    store.settle(at + timedelta(minutes=2))
    assert read == ["c-3-2"]  # the deleted source's copy, nothing else
    assert running.copy_error is not None and store.violations  # and it was stopped, as Azure does


def test_the_copy_indexes_answer_as_a_scan() -> None:
    store, _, sources = copied_store()
    at = T0 + timedelta(hours=2, minutes=40)
    copy(store, sources[2 * DISKS + 1], "c-1-2", at)
    del store.snapshots[next(k for k in store.snapshots if k[2] == "c-4-0")]
    everything = list(store.snapshots.values())
    for now in (at, at + timedelta(minutes=1), at + timedelta(hours=1)):
        assert store.copies_running(now) == [r for r in everything if r.copy_source is not None and r.copying(now)]
    for record in everything:
        if record.copy_source is None:
            continue
        assert store.copies_of_source(record.copy_source) == [
            r for r in everything if r.copy_source == record.copy_source
        ]
        family = str(record.copy_family)
        assert store.copies_of_family(family) == [r for r in everything if r.copy_family == family]
