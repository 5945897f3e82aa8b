"""The emulated Disk RP's cross-region copies: Azure's four restrictions, progress, and how a copy fails."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.emulator import EmulatorConfig
from azsnap.emulator.arm import ArmError
from azsnap.emulator.copies import INJECTED_CODE, SOURCE_NOT_FOUND
from azsnap.emulator.state import Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SUB, RG, DR = "sub-1", "rg-1", "rg-dr"


def make_store(**config: Any) -> Store:
    counter = itertools.count()
    store = Store(EmulatorConfig(**config), new_id=lambda: f"id-{next(counter)}")
    store.add_group(SUB, DR, "northeurope")
    return store


def disk(store: Store, name: str = "disk-0") -> str:
    return store.seed_disk(T0, SUB, RG, name, location="westeurope", sku="Premium_LRS", size_gb=30, written_gb=None).id


def source(store: Store, disk_id: str, name: str, at: datetime, *, incremental: bool = True) -> str:
    body = {
        "location": "westeurope",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
            "incremental": incremental,
        },
    }
    record, _ = store.create_snapshot(at, SUB, RG, name, body)
    store.settle(at + timedelta(seconds=3))
    return str(record.body["id"])


def copy(store: Store, source_id: str, name: str, at: datetime, **kw: Any) -> Any:
    body = {
        "location": "northeurope",
        "properties": {
            "creationData": {"createOption": "CopyStart", "sourceResourceId": source_id},
            "incremental": True,
        },
    }
    record, _ = store.create_snapshot(at, SUB, DR, name, body, **kw)
    return record


def refusal(store: Store, source_id: str, name: str, at: datetime) -> ArmError:
    with pytest.raises(ArmError) as caught:
        copy(store, source_id, name, at)
    assert (caught.value.status, caught.value.code) == (409, "OperationNotAllowed")
    return caught.value


def test_a_copy_reports_progress_then_completes() -> None:
    store = make_store()
    s1 = source(store, disk(store), "s1", T0)
    record = copy(store, s1, "c1", T0 + timedelta(minutes=1))
    halfway = record.to_json(T0 + timedelta(minutes=1, seconds=30 + 150))["properties"]
    assert halfway["completionPercent"] == 50.0 and "copyCompletionError" not in halfway
    assert record.to_json(T0 + timedelta(minutes=10))["properties"]["completionPercent"] == 100.0


def test_only_one_snapshot_of_a_disk_copies_at_a_time() -> None:
    store = make_store()
    d = disk(store)
    s1, s2 = source(store, d, "s1", T0), source(store, d, "s2", T0 + timedelta(minutes=1))
    copy(store, s1, "c1", T0 + timedelta(minutes=2))
    error = refusal(store, s2, "c2", T0 + timedelta(minutes=3))
    assert "one incremental snapshot of a disk" in error.message and "'c1'" in error.message
    copy(store, s2, "c2", T0 + timedelta(minutes=10))  # c1 is complete by then
    other = source(store, disk(store, "disk-1"), "t1", T0)
    copy(store, other, "d1", T0 + timedelta(minutes=10))  # another disk copies alongside


def test_snapshots_are_copied_in_creation_order() -> None:
    store = make_store()
    d = disk(store)
    s1, s2 = source(store, d, "s1", T0), source(store, d, "s2", T0 + timedelta(minutes=1))
    copy(store, s2, "c2", T0 + timedelta(minutes=2))
    error = refusal(store, s1, "c1", T0 + timedelta(minutes=20))
    assert "in the order they were created" in error.message
    s3 = source(store, d, "s3", T0 + timedelta(minutes=21))
    copy(store, s3, "c3", T0 + timedelta(minutes=22))  # skipping ahead is allowed


def test_parallel_copies_per_subscription_and_region_are_capped() -> None:
    store = make_store(max_parallel_copies=3)
    sources = [source(store, disk(store, f"disk-{i}"), f"s{i}", T0) for i in range(4)]
    for i in range(3):
        copy(store, sources[i], f"c{i}", T0 + timedelta(minutes=1))
    error = refusal(store, sources[3], "c3", T0 + timedelta(minutes=1))
    assert "At most 3 incremental snapshots can be copied in parallel" in error.message
    store.add_group(SUB, "rg-west2", "westus2")
    body = {
        "location": "westus2",
        "properties": {
            "creationData": {"createOption": "CopyStart", "sourceResourceId": sources[3]},
            "incremental": True,
        },
    }
    store.create_snapshot(T0 + timedelta(minutes=1), SUB, "rg-west2", "w3", body)  # another region has room
    copy(store, sources[3], "c3", T0 + timedelta(minutes=10))  # the first three completed


def test_a_full_snapshot_is_not_copied() -> None:
    store = make_store()
    full = source(store, disk(store), "full", T0, incremental=False)
    assert "incremental snapshots only" in refusal(store, full, "c", T0 + timedelta(minutes=1)).message


def test_deleting_the_source_mid_copy_fails_the_copy_and_is_recorded() -> None:
    store = make_store()
    s1 = source(store, disk(store), "s1", T0)
    record = copy(store, s1, "c1", T0 + timedelta(minutes=1))
    at = T0 + timedelta(minutes=3)
    store.delete_snapshot(at, SUB, RG, "s1")
    store.settle(at + timedelta(seconds=1))
    props = record.to_json(at + timedelta(minutes=10))["properties"]
    assert props["copyCompletionError"]["errorCode"] == SOURCE_NOT_FOUND
    assert props["completionPercent"] < 100.0
    assert any("source deleted while its copy c1 ran" in v for v in store.violations)


def test_deleting_a_source_after_its_copy_completed_is_fine() -> None:
    store = make_store()
    s1 = source(store, disk(store), "s1", T0)
    record = copy(store, s1, "c1", T0 + timedelta(minutes=1))
    store.delete_snapshot(T0 + timedelta(minutes=10), SUB, RG, "s1")
    store.settle(T0 + timedelta(minutes=11))
    assert "copyCompletionError" not in record.to_json(T0 + timedelta(minutes=11))["properties"]
    assert store.violations == []


@pytest.mark.parametrize("gentle", [False, True])
def test_an_injected_copy_failure_stops_the_copy_and_frees_the_disk(gentle: bool) -> None:
    store = make_store(copies_with_operation=gentle)
    d = disk(store)
    s1 = source(store, d, "s1", T0)
    record = copy(store, s1, "c1", T0 + timedelta(minutes=1), fail="copy_failed")
    store.settle(T0 + timedelta(minutes=30))
    later = record.to_json(T0 + timedelta(minutes=30))["properties"]
    assert later["copyCompletionError"]["errorCode"] == INJECTED_CODE
    assert later["completionPercent"] < 100.0 and later["provisioningState"] == "Succeeded"
    copy(store, s1, "c1-r2", T0 + timedelta(minutes=30))  # a failed copy neither blocks the disk nor the order
