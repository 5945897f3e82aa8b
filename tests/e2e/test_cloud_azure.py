"""AzureCloud through the real azure-mgmt-compute async client, over HTTPS, against the ARM emulator."""

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.errors import PermanentError, Throttled, TransientError
from azsnap.cloud.interface import SnapshotRequest
from azsnap.domain.observed import Disk, SnapshotState
from azsnap.emulator import Emulator, EmulatorConfig, FaultRule

pytestmark = pytest.mark.e2e

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-e2e"
LOCATION = "westeurope"
TAGS = {"azsnap-managed-by": "azsnap", "azsnap-policy": "e2e"}


@dataclass
class Rig:
    emulator: Emulator
    clock: ManualClock
    base_url: str
    ca_bundle: str
    clouds: list[AzureCloud] = field(default_factory=list)

    def cloud(self, **options: Any) -> AzureCloud:
        opts = AzureOptions(
            base_url=self.base_url,
            ca_bundle=self.ca_bundle,
            polling_interval=0.01,
            lro_timeout=options.pop("lro_timeout", 10.0),
            retry_total=options.pop("retry_total", 0),
            retry_backoff_factor=0.01,
            **options,
        )
        cloud = AzureCloud(StaticTokenCredential(), opts)
        self.clouds.append(cloud)
        return cloud

    def disk_id(self, name: str) -> str:
        return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/{name}"


def make_config(**overrides: Any) -> EmulatorConfig:
    # LROs finish at once in emulated time and polls carry no Retry-After, so the client's tiny interval applies.
    base: dict[str, Any] = {"lro_duration": timedelta(0), "poll_retry_after_s": 0}
    return EmulatorConfig(**{**base, **overrides})


@pytest.fixture
def config() -> EmulatorConfig:
    return make_config()


@pytest.fixture
async def rig(config: EmulatorConfig) -> AsyncIterator[Rig]:
    clock = ManualClock(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    emulator = Emulator(clock, config)
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        rig = Rig(emulator, clock, server.base_url, server.ca_bundle)
        try:
            yield rig
        finally:
            for cloud in rig.clouds:
                await cloud.close()


def request(rig: Rig, disk: str, name: str, background_copy: bool | None = None) -> SnapshotRequest:
    return SnapshotRequest(
        subscription_id=SUB,
        resource_group=RG,
        name=name,
        location=LOCATION,
        source_disk_id=rig.disk_id(disk),
        tags=TAGS,
        background_copy=background_copy,
    )


async def seeded_disk(rig: Rig, cloud: AzureCloud, name: str, **kwargs: Any) -> Disk:
    rig.emulator.seed_disk(SUB, RG, name, **kwargs)
    disk = await cloud.get_disk(rig.disk_id(name))
    assert disk is not None
    return disk


def count_requests(rig: Rig, predicate: Callable[[Any], bool]) -> int:
    return sum(1 for r in rig.emulator.requests if predicate(r))


async def test_get_disk_and_missing_disk(rig: Rig) -> None:
    cloud = rig.cloud()
    disk = await seeded_disk(rig, cloud, "pg-0")
    assert disk.id.lower() == rig.disk_id("pg-0").lower()
    assert (disk.subscription_id, disk.resource_group, disk.name) == (SUB, RG, "pg-0")
    assert disk.location == LOCATION
    assert disk.unique_id
    assert disk.sku
    assert disk.size_bytes > 0
    assert await cloud.get_disk(rig.disk_id("nope")) is None
    assert cloud.stats.calls_of("disks.get") == {"ok": 1, "not_found": 1}


async def test_recreated_disk_has_a_new_unique_id(rig: Rig) -> None:
    cloud = rig.cloud()
    first = await seeded_disk(rig, cloud, "pg-0")
    rig.emulator.delete_disk(SUB, RG, "pg-0")
    assert await cloud.get_disk(first.id) is None
    second = await seeded_disk(rig, cloud, "pg-0")
    assert second.unique_id != first.unique_id


async def test_create_list_delete(rig: Rig) -> None:
    cloud = rig.cloud()
    disk = await seeded_disk(rig, cloud, "pg-0")
    snap = await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1"))
    assert snap.state is SnapshotState.SUCCEEDED
    assert snap.name == "azsnap-pg-0-1"
    assert snap.resource_group.lower() == RG
    assert snap.tags == TAGS
    assert snap.incremental
    assert snap.is_of_disk(disk)
    assert snap.source_unique_id == disk.unique_id
    assert snap.time_created is not None

    listed = await cloud.list_snapshots(SUB, RG)
    assert [s.name for s in listed] == ["azsnap-pg-0-1"]
    assert listed[0].is_of_disk(disk)

    await cloud.delete_snapshot(SUB, RG, "azsnap-pg-0-1")
    assert await cloud.list_snapshots(SUB, RG) == []
    # deleting what is gone answers 204 and is not an error
    await cloud.delete_snapshot(SUB, RG, "azsnap-pg-0-1")
    assert count_requests(rig, lambda r: r.method == "DELETE" and r.status == 204) == 1
    assert cloud.stats.calls_of("snapshots.delete") == {"ok": 2}


async def test_listing_a_missing_resource_group_is_empty(rig: Rig) -> None:
    assert await rig.cloud().list_snapshots(SUB, "rg-that-does-not-exist") == []


@pytest.mark.parametrize("config", [make_config(page_size=2)])
async def test_list_pages_through_everything(rig: Rig) -> None:
    cloud = rig.cloud()
    await seeded_disk(rig, cloud, "pg-0")
    names = [f"azsnap-pg-0-{i}" for i in range(5)]
    for name in names:
        await cloud.create_snapshot(request(rig, "pg-0", name))
    listed = await cloud.list_snapshots(SUB, RG)
    assert sorted(s.name for s in listed) == names
    list_pages = count_requests(rig, lambda r: r.operation == "snapshots.list" and r.status == 200)
    assert list_pages == 3
    assert cloud.stats.calls_of("snapshots.list") == {"ok": 1}
    assert cloud.stats.responses[("snapshots.list", 200)] == 3


async def test_create_of_an_existing_name_returns_the_existing_snapshot(rig: Rig) -> None:
    cloud = rig.cloud()
    await seeded_disk(rig, cloud, "pg-0")
    first = await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1"))
    rig.clock.advance(timedelta(minutes=1))
    again = await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1"))
    assert again.id == first.id
    assert again.time_created == first.time_created
    assert len(await cloud.list_snapshots(SUB, RG)) == 1


async def test_a_429_is_not_retried_inside_the_call_and_a_long_retry_after_holds_nothing(rig: Rig) -> None:
    cloud = rig.cloud(retry_total=3)
    await seeded_disk(rig, cloud, "pg-0")
    rig.emulator.add_fault(FaultRule(operation="snapshots.put", kind="429", count=1, retry_after_s=1200))
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(Throttled) as info:
        await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1"))
    assert loop.time() - started < 1200  # azure-core did not sleep the Retry-After: the pacer owns 429s
    assert info.value.retry_after == 1200
    assert info.value.status == 429
    # one call of azsnap's, one answer on the wire: nobody retried it blindly
    assert cloud.stats.calls_of("snapshots.create") == {"throttled": 1}
    assert cloud.stats.throttled_responses["snapshots.create"] == 1
    # the fault is spent: the next call goes through
    snap = await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1"))
    assert snap.state is SnapshotState.SUCCEEDED


async def test_a_5xx_is_still_retried_by_azure_core_within_the_call(rig: Rig) -> None:
    cloud = rig.cloud(retry_total=2)
    await seeded_disk(rig, cloud, "pg-0")
    rig.emulator.add_fault(FaultRule(operation="disks.get", kind="500", count=1))
    assert await cloud.get_disk(rig.disk_id("pg-0")) is not None
    assert cloud.stats.calls_of("disks.get") == {"ok": 2}
    assert cloud.stats.responses[("disks.get", 500)] == 1


async def test_5xx_is_transient(rig: Rig) -> None:
    cloud = rig.cloud()
    rig.emulator.add_fault(FaultRule(operation="snapshots.list", kind="503", count=1))
    with pytest.raises(TransientError) as info:
        await cloud.list_snapshots(SUB, RG)
    assert not isinstance(info.value, Throttled)
    assert info.value.status == 503
    assert cloud.stats.calls_of("snapshots.list") == {"transient": 1}


async def test_bad_name_is_permanent_with_azure_code(rig: Rig) -> None:
    cloud = rig.cloud()
    await seeded_disk(rig, cloud, "pg-0")
    with pytest.raises(PermanentError) as info:
        await cloud.create_snapshot(request(rig, "pg-0", "bad name!"))
    assert info.value.code == "InvalidResourceName"
    assert info.value.status == 400
    assert cloud.stats.calls_of("snapshots.create") == {"permanent": 1}


async def test_per_disk_window_is_transient(rig: Rig) -> None:
    cloud = rig.cloud()
    await seeded_disk(rig, cloud, "pg-0")
    for i in range(7):
        await cloud.create_snapshot(request(rig, "pg-0", f"azsnap-pg-0-{i}"))
    with pytest.raises(TransientError) as info:
        await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-7"))
    assert not isinstance(info.value, PermanentError)
    assert info.value.retry_after is not None
    assert info.value.retry_after > 0
    rig.clock.advance(timedelta(minutes=5))
    assert (await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-7"))).name == "azsnap-pg-0-7"


@pytest.mark.parametrize("config", [make_config(per_disk_cap=2, window_creates=100)])
async def test_per_disk_cap_is_permanent(rig: Rig) -> None:
    cloud = rig.cloud()
    await seeded_disk(rig, cloud, "pg-0")
    for i in range(2):
        await cloud.create_snapshot(request(rig, "pg-0", f"azsnap-pg-0-{i}"))
    with pytest.raises(PermanentError) as info:
        await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-2"))
    assert info.value.code == "SnapshotsLimitReached"


async def test_lro_that_ends_failed_maps_by_its_code(rig: Rig) -> None:
    cloud = rig.cloud()
    await seeded_disk(rig, cloud, "pg-0")
    rig.emulator.add_fault(FaultRule(operation="snapshots.put", kind="lro_failed", count=1))
    with pytest.raises(TransientError) as info:
        await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1"))
    assert info.value.code == "InternalOperationError"
    rig.emulator.add_fault(FaultRule(operation="snapshots.put", kind="failed_after_limit", count=1))
    with pytest.raises(PermanentError) as limit:
        await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-2"))
    assert limit.value.code == "SnapshotsLimitReached"
    left = {s.name: s for s in await cloud.list_snapshots(SUB, RG)}
    assert left["azsnap-pg-0-2"].state is SnapshotState.FAILED
    assert cloud.stats.calls_of("snapshots.create") == {"transient": 1, "permanent": 1}


async def test_dropped_connection_is_transient(rig: Rig) -> None:
    cloud = rig.cloud()
    # aiohttp itself re-sends an idempotent request once after a dropped connection, so drop two.
    rig.emulator.add_fault(FaultRule(operation="disks.get", kind="drop", count=2))
    with pytest.raises(TransientError) as info:
        await cloud.get_disk(rig.disk_id("pg-0"))
    assert info.value.code == "ConnectionError"
    assert cloud.stats.calls_of("disks.get") == {"transient": 1}
    assert cloud.stats.connection_errors["disks.get"] == 1


async def test_too_many_pending_background_copies_is_transient(rig: Rig) -> None:
    cloud = rig.cloud()
    await seeded_disk(rig, cloud, "pv2-0", sku="PremiumV2_LRS")
    for i in range(3):
        await cloud.create_snapshot(request(rig, "pv2-0", f"azsnap-pv2-0-{i}"))
    with pytest.raises(TransientError) as info:
        await cloud.create_snapshot(request(rig, "pv2-0", "azsnap-pv2-0-3"))
    assert not isinstance(info.value, PermanentError)
    assert info.value.code == "OperationNotAllowed"
    # No Retry-After on per-disk refusals (azure-core would sleep on it): the adapter falls back to its default.
    assert info.value.retry_after == cloud.options.default_retry_after


@pytest.mark.parametrize("config", [make_config(lro_duration=timedelta(minutes=10))])
async def test_lro_past_its_deadline_returns_the_snapshot_still_creating(rig: Rig) -> None:
    cloud = rig.cloud(lro_timeout=0.2)
    disk = await seeded_disk(rig, cloud, "pg-0")
    snap = await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1"))
    assert snap.state is SnapshotState.CREATING
    assert snap.is_of_disk(disk)
    assert cloud.stats.calls_of("snapshots.create") == {"pending": 1}
    assert cloud.stats.calls_of("snapshots.get") == {"ok": 1}
    # the operation was not cancelled: once emulated time passes, the same name is found complete
    rig.clock.advance(timedelta(minutes=11))
    (listed,) = await cloud.list_snapshots(SUB, RG)
    assert listed.name == "azsnap-pg-0-1"
    assert listed.state is SnapshotState.SUCCEEDED


@pytest.mark.parametrize("background_copy", [True, None])
async def test_premium_v2_snapshot_completes_over_emulated_time(rig: Rig, background_copy: bool | None) -> None:
    cloud = rig.cloud()
    disk = await seeded_disk(rig, cloud, "pv2-0", sku="PremiumV2_LRS")
    assert disk.copies_in_background
    snap = await cloud.create_snapshot(request(rig, "pv2-0", "azsnap-pv2-0-1", background_copy))
    # the operation's answer has no copy progress: the snapshot is read once more to learn it
    assert count_requests(rig, lambda r: r.operation == "snapshots.get") == 1
    assert snap.state is SnapshotState.COPYING
    rig.clock.advance(timedelta(hours=1))
    (listed,) = await cloud.list_snapshots(SUB, RG)
    assert listed.completion_percent == 100
    assert listed.state is SnapshotState.SUCCEEDED


async def test_the_first_poll_of_a_create_waits_one_interval(rig: Rig) -> None:
    sent: dict[str, list[float]] = {}

    async def before(operation: str, subscription_id: str, location: str) -> None:
        sent.setdefault(operation, []).append(asyncio.get_running_loop().time())

    options = AzureOptions(base_url=rig.base_url, ca_bundle=rig.ca_bundle, polling_interval=0.3, retry_total=0)
    cloud = AzureCloud(StaticTokenCredential(), options, before_request=before)
    rig.clouds.append(cloud)
    await seeded_disk(rig, cloud, "pg-0")
    made = await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1", background_copy=False))
    assert made.state is SnapshotState.SUCCEEDED
    [put] = sent["snapshots.create"]
    # azure-core would ask at once; the create is never done that soon, so the first poll waits like the others
    assert sent["operations.get"][0] - put >= 0.3


async def test_stats_and_hooks_see_every_answer(rig: Rig) -> None:
    seen: list[tuple[str, int]] = []
    waited: list[tuple[str, str, str]] = []

    async def before(operation: str, subscription_id: str, location: str) -> None:
        waited.append((operation, subscription_id, location))

    cloud = AzureCloud(
        StaticTokenCredential(),
        AzureOptions(base_url=rig.base_url, ca_bundle=rig.ca_bundle, polling_interval=0.01, retry_total=0),
        on_response=lambda op, status, headers: seen.append((op, status)),
        before_request=before,
    )
    rig.clouds.append(cloud)
    disk = await seeded_disk(rig, cloud, "pg-0")
    made = await cloud.create_snapshot(request(rig, "pg-0", "azsnap-pg-0-1", background_copy=False))
    assert made.is_of_disk(disk)
    assert made.state is SnapshotState.SUCCEEDED
    await cloud.list_snapshots(SUB, RG)
    # Every HTTP request waits, the create's LRO poll with the create's scope. The finished operation's status
    # carries the snapshot (`properties.output`, as Azure's does) of a disk that does not copy in the background,
    # so there is no final read of it.
    assert waited == [
        ("disks.get", SUB, ""),
        ("snapshots.create", SUB, LOCATION),
        ("operations.get", SUB, LOCATION),
        ("snapshots.list", SUB, LOCATION),  # the group's region, learned from the disk: that region's budget
    ]
    assert ("disks.get", 200) in seen
    assert any(op == "snapshots.create" and status in (200, 202) for op, status in seen)
    assert ("snapshots.list", 200) in seen
    assert len(seen) == sum(cloud.stats.responses.values())
    assert cloud.stats.remaining_resource, "the emulator reports x-ms-ratelimit-remaining-resource"
    assert all(v >= 0 for v in cloud.stats.remaining_resource.values())
    assert set(cloud.stats.remaining_subscription) & {"reads", "writes"}
