"""The emulator's indexed tables answer as a scan of a plain dict would, and a create reads only its disk's snapshots."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from azsnap.emulator import EmulatorConfig
from azsnap.emulator.indexes import OperationTable, SnapshotTable
from azsnap.emulator.records import Key, Operation, SnapshotRecord
from azsnap.emulator.state import Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SUBS, GROUPS, NAMES, SOURCES = ("s1", "s2"), ("g1", "g2", "g3"), ("a", "b", "c", "d"), (None, "u1", "u2")

keys = st.tuples(st.sampled_from(SUBS), st.sampled_from(GROUPS), st.sampled_from(NAMES))
writes = st.lists(st.tuples(st.booleans(), keys, st.sampled_from(SOURCES)), max_size=40)


def record(k: Key, source: str | None) -> SnapshotRecord:
    return SnapshotRecord(k[0], k[1], k[2], {}, T0, source_unique_id=source)


@given(writes)
def test_the_snapshot_indexes_answer_as_a_scan_of_a_dict_in_the_same_order(steps: list[Any]) -> None:
    table, plain = SnapshotTable(), dict[Key, SnapshotRecord]()
    for delete, k, source in steps:
        if delete:
            assert (k in table) == (k in plain)
            table.pop(k, None)
            plain.pop(k, None)
        else:
            table[k] = plain[k] = record(k, source)
    assert list(table.items()) == list(plain.items())
    for sub in SUBS:
        assert table.in_scope(sub.upper(), None) == [r for k, r in plain.items() if k[0] == sub]
        for group in GROUPS:
            expected = [r for k, r in plain.items() if k[:2] == (sub, group)]
            assert table.in_scope(sub, group.upper()) == expected
    for source in SOURCES[1:]:
        found = table.of_source(str(source))
        assert sorted(found, key=id) == sorted((r for r in plain.values() if r.source_unique_id == source), key=id)
    table.clear()
    assert len(table) == 0
    assert table.in_scope(SUBS[0], None) == []
    assert table.of_source("u1") == []


def operation(operation_id: str, due: datetime) -> Operation:
    return Operation(operation_id, "s1", "westeurope", "create", ("s1", "g1", operation_id), T0, due)


def test_due_operations_come_in_the_order_they_were_started_and_only_once() -> None:
    table = OperationTable()
    for name, minutes in (("late", 3), ("first", 1), ("second", 1), ("gone", 1)):
        table[name] = operation(name, T0 + timedelta(minutes=minutes))
    del table["gone"]
    assert table.due(T0) == []
    due = table.due(T0 + timedelta(minutes=2))
    assert [op.id for op in due] == ["first", "second"]
    assert table.due(T0 + timedelta(minutes=2)) == []
    assert [op.id for op in table.due(T0 + timedelta(hours=1))] == ["late"]


def test_ended_operations_are_found_once_their_end_is_old_enough() -> None:
    table = OperationTable()
    for name in ("a", "b"):
        table[name] = operation(name, T0)
    for op, ended in zip(table.due(T0), (T0 + timedelta(minutes=5), T0), strict=True):
        op.status, op.end = "Succeeded", ended
        table.ended(op)
    assert table.ended_before(T0) == []
    assert [op.id for op in table.ended_before(T0 + timedelta(minutes=1))] == ["b"]
    assert [op.id for op in table.ended_before(T0 + timedelta(hours=1))] == ["a"]
    # An operation put back ended (as a saved state is loaded) is found as well.
    loaded = OperationTable()
    loaded["a"] = table["a"]
    assert [op.id for op in loaded.ended_before(T0 + timedelta(hours=1))] == ["a"]
    assert loaded.due(T0 + timedelta(hours=1)) == []


def test_a_create_reads_only_its_own_disks_snapshots(monkeypatch: pytest.MonkeyPatch) -> None:
    counter = itertools.count()
    store = Store(EmulatorConfig(), new_id=lambda: f"id-{next(counter)}")
    disks = [
        store.seed_disk(T0, "sub", "rg", f"disk-{i}", location="westeurope", sku="PremiumV2_LRS", size_gb=8,
                        written_gb=None)
        for i in range(20)
    ]  # fmt: skip
    for n in range(3):
        for i, disk in enumerate(disks):
            body = {
                "location": "westeurope",
                "properties": {
                    "creationData": {"createOption": "Copy", "sourceResourceId": disk.id},
                    "incremental": True,
                },
            }
            store.create_snapshot(T0 + timedelta(hours=n), "sub", "rg", f"s-{i}-{n}", body)
    read: list[str] = []
    copying = SnapshotRecord.copying

    def counted(self: SnapshotRecord, now: datetime) -> bool:
        read.append(self.name)
        return copying(self, now)

    monkeypatch.setattr(SnapshotRecord, "copying", counted)
    body = {
        "location": "westeurope",
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disks[7].id}, "incremental": True},
    }
    store.create_snapshot(T0 + timedelta(hours=4), "sub", "rg", "s-7-new", body)
    assert sorted(read) == ["s-7-0", "s-7-1", "s-7-2"]
