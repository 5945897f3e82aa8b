import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.errors import NotFound, PermanentError, Throttled, TransientError
from azsnap.cloud.interface import CloudClient, SnapshotRequest
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.observed import Disk, Limits, SnapshotState

SUB = "00000000-0000-0000-0000-000000000000"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def cloud(clock: ManualClock) -> MemoryCloud:
    return MemoryCloud(clock)


def request_for(disk: Disk, name: str, *, rg: str = "rg-snaps", tags: dict[str, str] | None = None) -> SnapshotRequest:
    return SnapshotRequest(
        subscription_id=disk.subscription_id,
        resource_group=rg,
        name=name,
        location=disk.location,
        source_disk_id=disk.id,
        tags=tags or {"azsnap.io/managed-by": "azsnap"},
    )


def test_is_a_cloud_client(cloud: MemoryCloud) -> None:
    client: CloudClient = cloud
    assert client is cloud


async def test_get_disk_and_missing_disk(cloud: MemoryCloud) -> None:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0", sku="Premium_LRS", size_gb=64)
    assert await cloud.get_disk(disk.id) == disk
    assert await cloud.get_disk(disk.id.upper().replace("SUBSCRIPTIONS", "subscriptions")) == disk
    assert await cloud.get_disk(disk.id.replace("pg-0", "pg-1")) is None
    assert disk.size_bytes == 64 * 1024**3
    assert cloud.calls["disks.get"] == 3


async def test_recreated_disk_has_a_new_unique_id(cloud: MemoryCloud) -> None:
    first = cloud.add_disk(SUB, "rg-data", "pg-0")
    cloud.remove_disk(first.id)
    assert await cloud.get_disk(first.id) is None
    second = cloud.add_disk(SUB, "rg-data", "pg-0")
    assert second.id == first.id
    assert second.unique_id != first.unique_id


async def test_create_list_delete(cloud: MemoryCloud, clock: ManualClock) -> None:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    snap = await cloud.create_snapshot(request_for(disk, "snap-1", tags={"a": "b"}))
    assert snap.state is SnapshotState.SUCCEEDED
    assert snap.time_created == START
    assert snap.tags == {"a": "b"}
    assert snap.is_of_disk(disk)
    assert snap.resource_group == "rg-snaps"
    assert snap.id.endswith("/resourceGroups/rg-snaps/providers/Microsoft.Compute/snapshots/snap-1")
    assert [s.name for s in await cloud.list_snapshots(SUB, "RG-SNAPS")] == ["snap-1"]
    assert await cloud.list_snapshots(SUB, "rg-other") == []
    await cloud.delete_snapshot(SUB, "rg-snaps", "snap-1")
    await cloud.delete_snapshot(SUB, "rg-snaps", "snap-1")  # a missing snapshot is not an error
    assert await cloud.list_snapshots(SUB, "rg-snaps") == []


async def test_create_of_an_existing_name_returns_it_unchanged(cloud: MemoryCloud, clock: ManualClock) -> None:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    first = await cloud.create_snapshot(request_for(disk, "snap-1", tags={"v": "1"}))
    clock.advance(timedelta(minutes=1))
    again = await cloud.create_snapshot(request_for(disk, "SNAP-1", tags={"v": "2"}))
    assert again == first
    assert len(cloud.snapshots) == 1


async def test_creating_state_lasts_creating_for(clock: ManualClock) -> None:
    cloud = MemoryCloud(clock, creating_for=timedelta(seconds=30))
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    snap = await cloud.create_snapshot(request_for(disk, "snap-1"))
    assert snap.state is SnapshotState.CREATING
    clock.advance(timedelta(seconds=30))
    (listed,) = await cloud.list_snapshots(SUB, "rg-snaps")
    assert listed.state is SnapshotState.SUCCEEDED


async def test_seven_in_five_minutes_then_transient_with_retry_after(cloud: MemoryCloud, clock: ManualClock) -> None:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    for i in range(7):
        await cloud.create_snapshot(request_for(disk, f"snap-{i}"))
        clock.advance(timedelta(seconds=10))
    with pytest.raises(TransientError) as info:
        await cloud.create_snapshot(request_for(disk, "snap-7"))
    err = info.value
    assert not isinstance(err, Throttled)
    assert (err.code, err.status) == ("OperationNotAllowed", 409)
    assert err.retry_after == pytest.approx(300 - 70)
    # deleting does not give the window back: it counts creates
    await cloud.delete_snapshot(SUB, "rg-snaps", "snap-0")
    with pytest.raises(TransientError):
        await cloud.create_snapshot(request_for(disk, "snap-7"))
    # the same name again is not a create, so it is not refused
    assert (await cloud.create_snapshot(request_for(disk, "snap-6"))).name == "snap-6"
    clock.advance(timedelta(seconds=230))
    assert (await cloud.create_snapshot(request_for(disk, "snap-7"))).name == "snap-7"


async def test_window_is_per_disk(cloud: MemoryCloud) -> None:
    a = cloud.add_disk(SUB, "rg-data", "a")
    b = cloud.add_disk(SUB, "rg-data", "b")
    for i in range(7):
        await cloud.create_snapshot(request_for(a, f"a-{i}"))
    await cloud.create_snapshot(request_for(b, "b-0"))
    assert len(cloud.snapshots) == 8


async def test_per_disk_cap_is_permanent(clock: ManualClock) -> None:
    cloud = MemoryCloud(clock, limits=Limits(per_disk_cap=3))
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    for i in range(3):
        await cloud.create_snapshot(request_for(disk, f"snap-{i}"))
    with pytest.raises(PermanentError) as info:
        await cloud.create_snapshot(request_for(disk, "snap-3"))
    assert info.value.code == "SnapshotsLimitReached"
    await cloud.delete_snapshot(SUB, "rg-snaps", "snap-0")
    await cloud.create_snapshot(request_for(disk, "snap-3"))


async def test_premium_v2_snapshots_copy_in_background_with_at_most_three_pending(clock: ManualClock) -> None:
    cloud = MemoryCloud(clock, copy_duration=timedelta(minutes=10))
    disk = cloud.add_disk(SUB, "rg-data", "pv2", sku="PremiumV2_LRS")
    for i in range(3):
        snap = await cloud.create_snapshot(request_for(disk, f"snap-{i}"))
        assert snap.state is SnapshotState.COPYING
        assert snap.completion_percent == 0
        clock.advance(timedelta(minutes=1))
    with pytest.raises(TransientError) as info:
        await cloud.create_snapshot(request_for(disk, "snap-3"))
    assert info.value.retry_after == pytest.approx(7 * 60)
    (first, *_) = sorted(await cloud.list_snapshots(SUB, "rg-snaps"), key=lambda s: s.name)
    assert first.completion_percent == 30.0
    clock.advance(timedelta(minutes=7))
    listed = {s.name: s for s in await cloud.list_snapshots(SUB, "rg-snaps")}
    assert listed["snap-0"].state is SnapshotState.SUCCEEDED
    assert listed["snap-1"].state is SnapshotState.COPYING
    await cloud.create_snapshot(request_for(disk, "snap-3"))


async def test_create_rejects_bad_names_missing_disks_and_wrong_location(cloud: MemoryCloud) -> None:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    for bad in ("-leading", "trailing-", "x" * 81, "has space", ""):
        with pytest.raises(PermanentError) as info:
            await cloud.create_snapshot(request_for(disk, bad))
        assert info.value.code == "InvalidResourceName"
    cloud.remove_disk(disk.id)
    with pytest.raises(NotFound):
        await cloud.create_snapshot(request_for(disk, "snap-1"))
    other = cloud.add_disk(SUB, "rg-data", "pg-1", location="northeurope")
    with pytest.raises(PermanentError) as info:
        await cloud.create_snapshot(replace(request_for(other, "snap-1"), location="westeurope"))
    assert info.value.code == "InvalidParameter"


async def test_fault_hook_raises_on_the_next_n_calls(cloud: MemoryCloud) -> None:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    cloud.fail_next("snapshots.create", Throttled("slow down", retry_after=5), times=2)
    for _ in range(2):
        with pytest.raises(Throttled):
            await cloud.create_snapshot(request_for(disk, "snap-1"))
    assert cloud.snapshots == []
    await cloud.create_snapshot(request_for(disk, "snap-1"))
    assert cloud.calls["snapshots.create"] == 3
    with pytest.raises(ValueError, match="unknown operation"):
        cloud.fail_next("snapshots.put", Throttled("x"))


async def test_seeded_and_failed_snapshots(cloud: MemoryCloud, clock: ManualClock) -> None:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    old = cloud.seed_snapshot(disk, "old", created_at=START - timedelta(days=3), tags={"owner": "someone"})
    assert old.time_created == START - timedelta(days=3)
    assert old.resource_group == "rg-data"
    cloud.mark_failed(SUB, "rg-data", "old")
    (listed,) = await cloud.list_snapshots(SUB, "rg-data")
    assert listed.state is SnapshotState.FAILED
    assert listed.tags == {"owner": "someone"}


async def test_concurrent_creates_of_one_name_make_one_snapshot(cloud: MemoryCloud) -> None:
    disk = cloud.add_disk(SUB, "rg-data", "pg-0")
    results = await asyncio.gather(*(cloud.create_snapshot(request_for(disk, "snap-1")) for _ in range(5)))
    assert len({r.id for r in results}) == 1
    assert len(cloud.snapshots) == 1


async def test_closed_cloud_refuses_calls(cloud: MemoryCloud) -> None:
    await cloud.close()
    with pytest.raises(RuntimeError):
        await cloud.list_snapshots(SUB, "rg")
