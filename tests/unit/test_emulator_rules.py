"""The emulated Disk RP's rules, without HTTP: names, tags, per-disk limits, families, LROs, background copies."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from azsnap.clock import ManualClock
from azsnap.emulator import Emulator, EmulatorConfig
from azsnap.emulator.arm import ArmError, check_snapshot_name, check_tags, parse_source_id
from azsnap.emulator.state import Store

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SUB, RG = "sub-1", "rg-1"


def make_store(**config: Any) -> Store:
    counter = itertools.count()
    return Store(EmulatorConfig(**config), new_id=lambda: f"id-{next(counter)}")


def body(disk_id: str, **props: Any) -> dict[str, Any]:
    return {
        "location": "West Europe",
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
            "incremental": True,
            **props,
        },
    }


def seeded(store: Store, sku: str = "StandardSSD_LRS", name: str = "disk-0", **kw: Any) -> str:
    return store.seed_disk(
        T0, SUB, RG, name, location="westeurope", sku=sku, size_gb=64, written_gb=kw.get("written_gb")
    ).id


@pytest.mark.parametrize("name", ["a", "snap-1", "A_b.c-d_", "x" * 80, "9"])
def test_valid_names(name: str) -> None:
    check_snapshot_name(name)


@pytest.mark.parametrize("name", ["", "-a", "a-", "a.", "x" * 81, "a b", "a/b", "_a"])
def test_invalid_names(name: str) -> None:
    with pytest.raises(ArmError) as err:
        check_snapshot_name(name)
    assert err.value.status == 400 and err.value.code == "InvalidResourceName"


def test_tag_rules() -> None:
    assert check_tags(None) == {}
    assert check_tags({"a": "b"}) == {"a": "b"}
    for bad, code in [
        ({f"k{i}": "v" for i in range(51)}, "InvalidTagCount"),
        ({"a/b": "v"}, "InvalidTagNameCharacters"),
        ({"k" * 513: "v"}, "InvalidTagNameLength"),
        ({"k": "v" * 257}, "InvalidTagValueLength"),
        ({"k": 1}, "InvalidRequestContent"),
    ]:
        with pytest.raises(ArmError) as err:
            check_tags(bad)
        assert err.value.code == code


def test_source_ids_with_or_without_leading_slash() -> None:
    parsed = parse_source_id("subscriptions/s/resourceGroups/g/providers/Microsoft.Compute/disks/d")
    assert (parsed.subscription_id, parsed.resource_group, parsed.kind, parsed.name) == ("s", "g", "disks", "d")
    with pytest.raises(ArmError):
        parse_source_id("/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/x")


def test_create_fills_azure_fields_and_normalizes_location() -> None:
    store = make_store()
    disk_id = seeded(store)
    record, op = store.create_snapshot(T0, SUB, RG, "snap", body(disk_id))
    props = record.to_json(T0)["properties"]
    assert op is not None and op.due == T0 + timedelta(seconds=3)  # Azure's recorded timing: about 3 s
    assert record.body["location"] == "westeurope"
    assert props["provisioningState"] == "Creating"
    assert "diskSizeGB" not in props and "diskSizeBytes" not in props  # no size while Creating, as Azure
    assert props["creationData"]["sourceUniqueId"] == store.disks[(SUB, RG, "disk-0")].unique_id
    assert props["incrementalSnapshotFamilyId"] == store.disks[(SUB, RG, "disk-0")].family_id
    assert props["timeCreated"] == T0.isoformat()
    assert record.body["sku"] == {"name": "Standard_LRS", "tier": "Standard"}
    store.settle(T0 + timedelta(seconds=2))
    assert store.snapshots[(SUB, RG, "snap")].state == "Creating"
    store.settle(T0 + timedelta(seconds=3))
    assert store.snapshots[(SUB, RG, "snap")].state == "Succeeded"
    assert store.snapshots[(SUB, RG, "snap")].to_json(T0)["properties"]["diskSizeGB"] == 64


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        (lambda b: b.pop("location"), 400, "LocationRequired"),
        (lambda b: b["properties"].pop("creationData"), 400, "InvalidParameter"),
        (lambda b: b["properties"]["creationData"].update(createOption="Empty"), 400, "InvalidParameter"),
        (lambda b: b["properties"]["creationData"].update(createOption="Import"), 400, "InvalidParameter"),
        (lambda b: b["properties"]["creationData"].update(sourceResourceId="nonsense"), 400, "InvalidParameter"),
        # Azure cannot see a disk of another region from the target's: 404 NotFound (recorded)
        (lambda b: b.update(location="northeurope"), 404, "NotFound"),
        (lambda b: b["properties"]["creationData"].update(createOption="CopyStart"), 409, "OperationNotAllowed"),
        (lambda b: b.update(sku={"name": "PremiumV2_LRS"}), 400, "InvalidParameter"),
        (
            lambda b: b["properties"]["creationData"].update(
                sourceResourceId=b["properties"]["creationData"]["sourceResourceId"] + "x"
            ),
            404,
            "NotFound",
        ),
    ],
)
def test_invalid_bodies(change: Any, status: int, code: str) -> None:
    store = make_store()
    request = body(seeded(store))
    change(request)
    with pytest.raises(ArmError) as err:
        store.create_snapshot(T0, SUB, RG, "snap", request)
    assert (err.value.status, err.value.code) == (status, code)
    assert store.snapshots == {}


def test_unknown_resource_group() -> None:
    store = make_store()
    with pytest.raises(ArmError) as err:
        store.create_snapshot(T0, SUB, "nope", "snap", body(seeded(store)))
    assert err.value.code == "ResourceGroupNotFound"


def test_window_counts_deleted_snapshots_and_slides() -> None:
    store = make_store(window_creates=2, lro_duration=timedelta(0))
    disk_id = seeded(store)
    store.create_snapshot(T0, SUB, RG, "a", body(disk_id))
    store.create_snapshot(T0 + timedelta(minutes=1), SUB, RG, "b", body(disk_id))
    store.delete_snapshot(T0 + timedelta(minutes=1), SUB, RG, "a")
    store.settle(T0 + timedelta(minutes=1))
    with pytest.raises(ArmError) as err:
        store.create_snapshot(T0 + timedelta(minutes=2), SUB, RG, "c", body(disk_id))
    assert err.value.status == 409 and "Retry after 180 seconds" in err.value.message
    store.create_snapshot(T0 + timedelta(minutes=5, seconds=1), SUB, RG, "c", body(disk_id))
    assert len(store.violations) == 1


def test_full_snapshots_do_not_count_towards_incremental_limits() -> None:
    store = make_store(window_creates=1)
    disk_id = seeded(store)
    store.create_snapshot(T0, SUB, RG, "a", body(disk_id, incremental=False))
    store.create_snapshot(T0, SUB, RG, "b", body(disk_id))
    assert "incrementalSnapshotFamilyId" not in store.snapshots[(SUB, RG, "a")].body["properties"]


def test_premium_v2_copy_progress_follows_written_data() -> None:
    store = make_store(copy_rate_percent_per_minute=10.0)
    disk_id = seeded(store, sku="PremiumV2_LRS", written_gb=32)  # half written: 5 minutes to copy
    record, _ = store.create_snapshot(T0, SUB, RG, "a", body(disk_id))
    assert record.completion(T0 + timedelta(minutes=2)) == 40.0
    assert record.to_json(T0 + timedelta(minutes=5))["properties"]["completionPercent"] == 100.0
    with pytest.raises(ArmError) as err:
        store.create_snapshot(T0, SUB, RG, "full", body(disk_id, incremental=False))
    assert err.value.code == "OperationNotAllowed"


def test_failed_operations() -> None:
    store = make_store(lro_duration=timedelta(0))
    disk_id = seeded(store)
    store.create_snapshot(T0, SUB, RG, "gone", body(disk_id), fail="lro_failed")
    store.create_snapshot(T0, SUB, RG, "kept", body(disk_id), fail="failed_after_limit")
    store.settle(T0)
    assert list(store.snapshots) == [(SUB, RG, "kept")]
    assert store.snapshots[(SUB, RG, "kept")].state == "Failed"
    assert {op.status for op in store.operations.values()} == {"Failed"}
    op = store.delete_snapshot(T0, SUB, RG, "kept", fail=True)
    store.settle(T0)
    assert op is not None and op.status == "Failed" and (SUB, RG, "kept") in store.snapshots


def test_operations_are_forgotten_after_an_hour() -> None:
    store = make_store(lro_duration=timedelta(0))
    store.create_snapshot(T0, SUB, RG, "a", body(seeded(store)))
    store.settle(T0)
    store.settle(T0 + timedelta(minutes=59))
    assert len(store.operations) == 1
    store.settle(T0 + timedelta(hours=2))
    assert store.operations == {}


def test_emulator_save_and_load_round_trip(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    emu = Emulator(clock, EmulatorConfig(lro_duration=timedelta(0)))
    disk = emu.seed_disk(SUB, RG, "disk-0", sku="PremiumV2_LRS")
    emu.store.create_snapshot(T0, SUB, RG, "a", body(disk["id"]))
    clock.advance(timedelta(minutes=1))
    emu.save(tmp_path / "state.json")
    again = Emulator.load(tmp_path / "state.json", clock)
    assert again.snapshots() == emu.snapshots()
    assert again.disks() == emu.disks()
    assert again.store.created_at == emu.store.created_at


def test_load_refuses_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not an emulator state file"):
        Emulator.load(tmp_path / "x.json", ManualClock(T0))


def test_recreate_and_reset() -> None:
    emu = Emulator(ManualClock(T0))
    first = emu.seed_disk(SUB, RG, "disk-0")
    second = emu.recreate_disk(SUB, RG, "disk-0")
    assert second["properties"]["uniqueId"] != first["properties"]["uniqueId"]
    with pytest.raises(ValueError):
        emu.seed_disk(SUB, RG, "disk-0")
    emu.reset(keep_disks=True)
    assert len(emu.disks()) == 1
    emu.reset()
    assert emu.disks() == []
