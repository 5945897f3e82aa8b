"""A restore's Azure calls through the real SDK, over HTTPS, against the emulator: a disk from a snapshot, and its delete."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.errors import Forbidden, NotFound, PermanentError, TransientError
from azsnap.cloud.interface import DiskRequest, SnapshotRequest
from azsnap.domain.observed import Snapshot
from azsnap.emulator import Emulator, EmulatorConfig, FaultRule
from azsnap.emulator.arm import ArmError

pytestmark = pytest.mark.e2e

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-restore"
LOCATION = "westeurope"
OURS = {"azsnap-managed-by": "azsnap", "azsnap-restore": "uid-1"}


@dataclass
class Rig:
    emulator: Emulator
    clock: ManualClock
    cloud: AzureCloud
    clouds: list[AzureCloud] = field(default_factory=list)


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    config = EmulatorConfig(**{"lro_duration": timedelta(0), "poll_retry_after_s": 0, **overrides})
    clock = ManualClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    emulator = Emulator(clock, config)
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        options = AzureOptions(
            base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=0.01, retry_total=0
        )
        cloud = AzureCloud(StaticTokenCredential(), options)
        try:
            yield Rig(emulator, clock, cloud)
        finally:
            await cloud.close()


def disk_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/{name}"


async def snapshot_of(rig: Rig, disk: str, *, sku: str = "StandardSSD_LRS", size_gb: int = 64) -> Snapshot:
    rig.emulator.seed_disk(SUB, RG, disk, sku=sku, size_gb=size_gb)
    made = await rig.cloud.create_snapshot(
        SnapshotRequest(SUB, RG, f"{disk}-snap", LOCATION, disk_id(disk), tags={"azsnap-managed-by": "azsnap"})
    )
    return made


def to_disk(snapshot: Snapshot, name: str, **kwargs: Any) -> DiskRequest:
    base: dict[str, Any] = {"sku": "StandardSSD_LRS", "tags": OURS}
    return DiskRequest(SUB, RG, name, LOCATION, snapshot.id, **{**base, **kwargs})


async def test_a_disk_from_a_snapshot_is_made_with_the_size_zone_and_sku_asked(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pg-0")
    made = await rig.cloud.create_disk(to_disk(snap, "pg-0-restored", sku="Premium_LRS", size_gb=128, zone="2"))
    assert (made.name, made.sku, made.size_bytes, made.zone) == ("pg-0-restored", "Premium_LRS", 128 * 1024**3, "2")
    assert made.provisioning_state == "Succeeded" and made.completion_percent is None
    assert (made.source_resource_id or "").lower() == snap.id.lower() and made.tags == OURS
    seen = await rig.cloud.get_disk(made.id)
    assert seen is not None and seen.unique_id == made.unique_id
    assert rig.cloud.stats.calls_of("disks.create") == {"ok": 1}
    put = [r for r in rig.emulator.requests if r.method == "PUT" and "/disks/" in r.path]
    assert [r.status for r in put] == [202]  # accepted as a long-running operation, as Azure answers


async def test_a_disk_smaller_than_its_snapshot_is_refused(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pg-0", size_gb=64)
    with pytest.raises(PermanentError) as refused:
        await rig.cloud.create_disk(to_disk(snap, "too-small", size_gb=32))
    assert refused.value.code == "InvalidParameter" and "smaller" in refused.value.message
    assert await rig.cloud.get_disk(disk_id("too-small")) is None


async def test_a_snapshot_from_another_region_is_not_found(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pg-0")
    elsewhere = DiskRequest(SUB, RG, "far", "northeurope", snap.id, "StandardSSD_LRS", OURS)
    with pytest.raises(NotFound):
        await rig.cloud.create_disk(elsewhere)


async def test_premium_v2_disk_hydrates_over_emulated_time(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pv2-0", sku="PremiumV2_LRS", size_gb=64)
    with pytest.raises(TransientError) as early:  # a Premium SSD v2 snapshot is usable once its copy completes
        await rig.cloud.create_disk(to_disk(snap, "pv2-r", sku="PremiumV2_LRS", zone="1"))
    assert (early.value.code, early.value.status) == ("OperationNotAllowed", 409)
    rig.clock.advance(timedelta(hours=1))
    made = await rig.cloud.create_disk(to_disk(snap, "pv2-r", sku="PremiumV2_LRS", zone="1"))
    assert made.completion_percent is not None and made.completion_percent < 100  # the operation's answer
    rig.clock.advance(timedelta(minutes=2))
    midway = await rig.cloud.get_disk(made.id)
    assert midway is not None and midway.is_copying and 0 < (midway.completion_percent or 0) < 100
    rig.clock.advance(timedelta(hours=1))
    done = await rig.cloud.get_disk(made.id)
    assert done is not None and done.completion_percent == 100 and not done.is_copying


async def test_an_existing_disk_is_never_changed(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pg-0")
    rig.emulator.seed_disk(SUB, RG, "taken")
    before = [r for r in rig.emulator.requests if r.method == "PUT"]
    with pytest.raises(PermanentError) as refused:
        await rig.cloud.create_disk(to_disk(snap, "taken"))
    assert (refused.value.code, refused.value.status) == ("DiskExists", 409)
    assert [r for r in rig.emulator.requests if r.method == "PUT"] == before  # nothing was sent to change it
    made = await rig.cloud.create_disk(to_disk(snap, "ours"))
    again = await rig.cloud.create_disk(to_disk(snap, "ours"))  # this restore's own disk: returned as it is
    assert again.unique_id == made.unique_id


async def test_a_put_over_a_disk_from_another_source_is_a_409(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pg-0")
    rig.emulator.seed_disk(SUB, RG, "taken")
    body = {"location": LOCATION, "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": snap.id}}}
    with pytest.raises(ArmError) as refused:
        rig.emulator.store.put_disk(rig.clock.now(), SUB, RG, "taken", body)
    assert (refused.value.status, refused.value.code) == (409, "PropertyChangeNotAllowed")


@pytest.mark.parametrize(
    ("kind", "code"), [("forbidden", "AuthorizationFailed"), ("linked_forbidden", "LinkedAuthorizationFailed")]
)
async def test_a_missing_permission_is_forbidden_and_creates_nothing(rig: Rig, kind: str, code: str) -> None:
    snap = await snapshot_of(rig, "pg-0")
    rig.emulator.add_fault(FaultRule(operation="disks.put", kind=kind))  # type: ignore[arg-type]
    with pytest.raises(Forbidden) as refused:
        await rig.cloud.create_disk(to_disk(snap, "denied"))
    assert (refused.value.code, refused.value.status) == (code, 403)
    assert "Microsoft.Compute/disks/" in refused.value.message and "docs/azure-setup.md" in refused.value.message
    if kind == "linked_forbidden":
        assert snap.id in refused.value.message  # the linked scope is the source snapshot
    assert await rig.cloud.get_disk(disk_id("denied")) is None
    assert rig.cloud.stats.calls_of("disks.create") == {"permanent": 1}


async def test_a_failed_operation_leaves_no_disk(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pg-0")
    rig.emulator.add_fault(FaultRule(operation="disks.put", kind="lro_failed", count=1))
    with pytest.raises(TransientError) as failed:
        await rig.cloud.create_disk(to_disk(snap, "broken"))
    assert failed.value.code == "InternalOperationError"
    assert await rig.cloud.get_disk(disk_id("broken")) is None


async def test_delete_waits_for_its_operation_and_a_missing_disk_is_fine(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pg-0")
    made = await rig.cloud.create_disk(to_disk(snap, "scratch"))
    await rig.cloud.delete_disk(made.id)
    assert await rig.cloud.get_disk(made.id) is None
    await rig.cloud.delete_disk(made.id)  # 204: already gone
    assert rig.cloud.stats.calls_of("disks.delete") == {"ok": 2}
    assert await rig.cloud.get_snapshot(SUB, RG, snap.name) is not None  # the snapshot stays


@pytest.mark.parametrize("rig", [{"throttling": True}], indirect=True)
async def test_disk_writes_are_charged_to_azures_disk_policies(rig: Rig) -> None:
    snap = await snapshot_of(rig, "pg-0")
    seen: dict[str, str] = {}
    rig.cloud = AzureCloud(
        StaticTokenCredential(),
        rig.cloud.options,
        on_response=lambda op, status, headers: seen.update({op: headers.get("x-ms-ratelimit-remaining-resource", "")}),
    )
    made = await rig.cloud.create_disk(to_disk(snap, "charged"))
    await rig.cloud.delete_disk(made.id)
    await rig.cloud.close()
    assert "Microsoft.Compute/CreateUpdateDisks3Min" in seen["disks.create"]
    assert "Microsoft.Compute/CreateUpdateDisks30Min" in seen["disks.create"]
    assert "Microsoft.Compute/DeleteDisks3Min" in seen["disks.delete"]
