"""MemoryCloud's disks made from snapshots: the rules Azure applies to them, hydration, delete, faults."""

from datetime import UTC, datetime, timedelta

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.errors import Forbidden, NotFound, PermanentError, TransientError
from azsnap.cloud.interface import DiskRequest
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.observed import Snapshot

SUB = "00000000-0000-0000-0000-000000000000"
OURS = {"azsnap-restore": "uid-1"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))


@pytest.fixture
def cloud(clock: ManualClock) -> MemoryCloud:
    return MemoryCloud(clock, copy_duration=timedelta(minutes=10), hydrate_duration=timedelta(minutes=20))


def snapshot(cloud: MemoryCloud, sku: str = "StandardSSD_LRS", size_gb: int = 64) -> Snapshot:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0", sku=sku, size_gb=size_gb)
    return cloud.seed_snapshot(disk, "pg-0-snap")


def ask(source: Snapshot, name: str = "restored", **kw: object) -> DiskRequest:
    base: dict[str, object] = {"sku": "StandardSSD_LRS", "tags": OURS}
    return DiskRequest(SUB, "rg-restore", name, source.location, source.id, **{**base, **kw})  # type: ignore[arg-type]


async def test_a_disk_is_made_from_a_snapshot_at_its_size_or_larger(cloud: MemoryCloud) -> None:
    source = snapshot(cloud)
    same = await cloud.create_disk(ask(source, "same"))
    larger = await cloud.create_disk(ask(source, "larger", size_gb=256, zone="3"))
    assert same.size_bytes == 64 * 1024**3 and larger.size_bytes == 256 * 1024**3 and larger.zone == "3"
    assert same.source_resource_id == source.id and same.tags == OURS and same.completion_percent is None
    with pytest.raises(PermanentError, match="smaller"):
        await cloud.create_disk(ask(source, "smaller", size_gb=32))
    with pytest.raises(PermanentError, match=r"sku\.name"):
        await cloud.create_disk(ask(source, "odd", sku="Turbo_LRS"))
    with pytest.raises(NotFound):
        await cloud.create_disk(DiskRequest(SUB, "rg", "far", "northeurope", source.id, "StandardSSD_LRS", OURS))
    assert cloud.calls["disks.create"] == 5


async def test_an_existing_disk_is_refused_unless_it_is_this_requests(cloud: MemoryCloud) -> None:
    source = snapshot(cloud)
    other = cloud.add_disk(SUB, "rg-restore", "taken")
    with pytest.raises(PermanentError) as refused:
        await cloud.create_disk(ask(source, "taken"))
    assert (refused.value.code, refused.value.status) == ("DiskExists", 409)
    assert await cloud.get_disk(other.id) == other  # unchanged
    made = await cloud.create_disk(ask(source))
    assert (await cloud.create_disk(ask(source))).unique_id == made.unique_id


async def test_premium_v2_waits_for_its_snapshot_then_hydrates(cloud: MemoryCloud, clock: ManualClock) -> None:
    source = snapshot(cloud, sku="PremiumV2_LRS")
    with pytest.raises(TransientError) as copying:
        await cloud.create_disk(ask(source, sku="PremiumV2_LRS"))
    assert copying.value.code == "OperationNotAllowed"
    clock.advance(timedelta(minutes=10))
    made = await cloud.create_disk(ask(source, sku="PremiumV2_LRS"))
    assert made.completion_percent == 0 and made.is_copying
    clock.advance(timedelta(minutes=5))
    seen = await cloud.get_disk(made.id)
    assert seen is not None and seen.completion_percent == 25
    clock.advance(timedelta(minutes=15))
    seen = await cloud.get_disk(made.id)
    assert seen is not None and seen.completion_percent == 100 and not seen.is_copying


async def test_delete_and_faults(cloud: MemoryCloud) -> None:
    source = snapshot(cloud)
    made = await cloud.create_disk(ask(source))
    await cloud.delete_disk(made.id)
    await cloud.delete_disk(made.id)
    assert await cloud.get_disk(made.id) is None
    assert await cloud.get_snapshot(SUB, "rg-data", "pg-0-snap") is not None
    cloud.fail_next("disks.create", Forbidden("no disks/write", code="AuthorizationFailed", status=403))
    with pytest.raises(Forbidden):
        await cloud.create_disk(ask(source))
    assert await cloud.get_disk(made.id) is None
