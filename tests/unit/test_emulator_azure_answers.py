"""The emulated Disk RP answers as Azure answered: timings by name, the cap as a failed operation, copies that run on,
updates, access grants, and disks made from snapshots."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.emulator import EmulatorConfig
from azsnap.emulator.arm import ArmError
from azsnap.emulator.config import AZURE_DURATIONS
from azsnap.emulator.snapshots import LIMIT_MESSAGE, echo
from azsnap.emulator.state import Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SUB, RG = "sub-1", "rg-1"
OS = {"osType": "Linux", "hyperVGeneration": "V1", "supportedCapabilities": {"architecture": "x64"}}


def make_store(**config: Any) -> Store:
    counter = itertools.count()
    return Store(EmulatorConfig(**config), new_id=lambda: f"id-{next(counter)}")


def disk(store: Store, name: str = "disk-0", **kw: Any) -> str:
    return store.seed_disk(
        T0, SUB, RG, name, location="westeurope", sku="Premium_LRS", size_gb=30, written_gb=None, **kw
    ).id


def copy_of(source_id: str, *, option: str = "Copy", incremental: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "location": "westeurope",
        "tags": {"team": "a"},
        "properties": {
            "creationData": {"createOption": option, "sourceResourceId": source_id},
            "incremental": incremental,
            **extra,
        },
    }


def test_timings_by_name() -> None:
    assert EmulatorConfig().duration("create") == AZURE_DURATIONS["create"] == timedelta(seconds=3)
    assert EmulatorConfig().poll_retry_after_s == 0 and not EmulatorConfig().copies_with_operation
    gentle = EmulatorConfig.named("gentle", page_size=7)
    assert (gentle.duration("delete"), gentle.poll_retry_after_s, gentle.copies_with_operation, gentle.page_size) == (
        timedelta(0),
        1,
        True,
        7,
    )
    assert EmulatorConfig.named("instant").poll_retry_after_s == 0
    with pytest.raises(ValueError, match="unknown emulator timing 'fast'"):
        EmulatorConfig.named("fast")


def test_the_202_is_an_echo_of_the_request() -> None:
    request = copy_of("/subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d")
    request["sku"] = {"name": "Standard_LRS"}
    answer = echo("snapshots", SUB, RG, "snap", request)
    assert answer["properties"] == {**request["properties"], "provisioningState": "Updating"}
    assert answer["sku"] == {"name": "Standard_LRS"}  # no tier: the server has not filled anything in yet
    assert set(answer) == {"id", "name", "type", "location", "tags", "sku", "properties"}


def test_past_the_cap_the_operation_fails_and_leaves_a_failed_snapshot() -> None:
    store = make_store(per_disk_cap=2, window_creates=100)
    source = disk(store)
    for i in range(2):
        store.create_snapshot(T0, SUB, RG, f"s{i}", copy_of(source))
    record, op = store.create_snapshot(T0, SUB, RG, "over", copy_of(source))
    assert op is not None and op.status == "InProgress"  # accepted: 202, as Azure does
    store.settle(T0 + timedelta(seconds=3))
    assert op.status == "Failed" and op.error == {"code": "SnapshotsLimitReached", "message": LIMIT_MESSAGE}
    assert record.state == "Failed" and (SUB, RG, "over") in store.snapshots
    assert len(store.violations) == 1
    # the Failed one does not count: with one deleted, the next create succeeds
    store.delete_snapshot(T0 + timedelta(seconds=3), SUB, RG, "s0")
    store.settle(T0 + timedelta(seconds=4))
    _, again = store.create_snapshot(T0 + timedelta(seconds=4), SUB, RG, "next", copy_of(source))
    store.settle(T0 + timedelta(seconds=7))
    assert again is not None and again.status == "Succeeded"


@pytest.mark.parametrize("gentle", [False, True])
def test_copystart_succeeds_at_zero_percent_and_runs_on(gentle: bool) -> None:
    store = make_store(copies_with_operation=gentle)
    source = disk(store)
    store.create_snapshot(T0, SUB, RG, "src", copy_of(source))
    store.settle(T0 + timedelta(seconds=3))
    src_id = store.snapshots[(SUB, RG, "src")].body["id"]
    target = {**copy_of(src_id, option="CopyStart"), "location": "northeurope"}
    record, op = store.create_snapshot(T0 + timedelta(seconds=3), SUB, RG, "copy", target)
    assert op is not None and op.location == "northeurope"  # the operation lives in the target region
    store.settle(T0 + timedelta(seconds=6))
    assert op.status == "Succeeded"
    at_end = record.to_json(T0 + timedelta(seconds=6))["properties"]
    output = store.operation_result(op, T0 + timedelta(seconds=6))
    assert output is not None and "completionPercent" not in output["properties"]
    if gentle:
        assert at_end["completionPercent"] == 100.0
    else:
        assert (at_end["provisioningState"], at_end["completionPercent"]) == ("Succeeded", 0.0)
        assert record.to_json(T0 + timedelta(minutes=10))["properties"]["completionPercent"] == 100.0


def test_a_put_to_an_existing_name_updates_at_the_end_of_its_operation() -> None:
    store = make_store()
    source = disk(store)
    record, _ = store.create_snapshot(T0, SUB, RG, "snap", copy_of(source))
    store.settle(T0 + timedelta(seconds=3))
    changed = copy_of(source)
    changed["tags"] = {"team": "b"}
    changed["properties"]["encryption"] = {"type": "EncryptionAtRestWithCustomerKey", "diskEncryptionSetId": "des"}
    same, op = store.put_snapshot(T0 + timedelta(seconds=5), SUB, RG, "snap", changed)
    assert same is record and op is not None and record.state == "Updating"
    assert record.body["tags"] == {"team": "a"}
    store.settle(T0 + timedelta(seconds=8))
    assert record.state == "Succeeded" and record.body["tags"] == {"team": "b"}
    assert record.body["properties"]["encryption"]["diskEncryptionSetId"] == "des"
    with pytest.raises(ArmError) as refused:
        store.put_snapshot(T0 + timedelta(seconds=9), SUB, RG, "snap", copy_of(source, incremental=False))
    assert (refused.value.status, refused.value.code) == (409, "PropertyChangeNotAllowed")


def test_access_grants_active_sas_until_revoked_or_expired() -> None:
    store = make_store()
    empty = {"location": "westeurope", "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}
    disk(store)  # the resource group
    record, op = store.create_snapshot(T0, SUB, RG, "snap", empty)
    assert op is not None and op.due == T0  # an empty snapshot with a platform key is ready at once
    store.settle(T0)
    grant = {"access": "Read", "durationInSeconds": 60}
    store.snapshot_access(T0, SUB, RG, "snap", "beginGetAccess", grant)
    store.settle(T0)
    assert record.to_json(T0)["properties"]["diskState"] == "ActiveSAS"
    assert record.to_json(T0 + timedelta(seconds=61))["properties"]["diskState"] == "Unattached"
    store.snapshot_access(T0 + timedelta(seconds=1), SUB, RG, "snap", "endGetAccess", None)
    store.settle(T0 + timedelta(seconds=1))
    assert record.to_json(T0 + timedelta(seconds=2))["properties"]["diskState"] == "Unattached"
    with pytest.raises(ArmError):
        store.snapshot_access(T0, SUB, RG, "snap", "beginGetAccess", {"access": "Read"})


def test_a_disk_from_a_snapshot_still_creating_carries_its_os_properties() -> None:
    store = make_store()
    source = disk(store, "os-disk", os_properties=OS)
    snap, _ = store.create_snapshot(T0, SUB, RG, "snap", copy_of(source, incremental=False))
    assert snap.to_json(T0)["properties"]["provisioningState"] == "Creating"
    made, _ = store.put_disk(
        T0 + timedelta(seconds=1), SUB, RG, "restored", {**copy_of(snap.body["id"]), "sku": {"name": "Premium_LRS"}}
    )
    assert made.to_json()["properties"]["provisioningState"] == "Creating"
    store.settle(T0 + timedelta(seconds=4))
    restored = made.to_json()["properties"]
    assert {k: restored[k] for k in OS} == OS and restored["provisioningState"] == "Succeeded"
    assert restored["creationData"]["sourceUniqueId"] == snap.body["properties"]["uniqueId"]
    assert restored["tier"] == "P4" and restored["diskSizeGB"] == 30
    gone = store.start_disk_delete(T0 + timedelta(seconds=5), SUB, RG, "restored")
    store.settle(T0 + timedelta(seconds=6))
    assert gone is not None and (SUB, RG, "restored") not in store.disks
    assert store.start_disk_delete(T0 + timedelta(seconds=6), SUB, RG, "restored") is None  # 204
