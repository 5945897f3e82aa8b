"""A create's first status poll waits as long as such operations typically took (Azure sends no Retry-After).

On Azure's timing (a snapshot create runs 3 s, no Retry-After on the 202 or on running polls) a client polling
every second asks three times per create. Azure's finished status says how long the operation ran (`startTime`,
`endTime`); after the first create, the next one is polled when it is typically done: once.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from azsnap.clock import LoopClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.errors import TransientError
from azsnap.cloud.interface import SnapshotRequest
from azsnap.domain.observed import SnapshotState
from azsnap.emulator import Emulator, EmulatorConfig, FaultRule

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-e2e"
LOCATION = "westeurope"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _request(disk: str, name: str) -> SnapshotRequest:
    return SnapshotRequest(
        subscription_id=SUB,
        resource_group=RG,
        name=name,
        location=LOCATION,
        source_disk_id=f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/{disk}",
        tags={"azsnap-managed-by": "azsnap"},
        background_copy=False,
    )


def _polls(emulator: Emulator, since: int) -> list[datetime]:
    return [r.time for r in emulator.requests[since:] if r.operation == "operations.get"]


async def _create(emulator: Emulator, cloud: AzureCloud, disk: str, name: str) -> tuple[list[datetime], datetime]:
    """Create a snapshot; the times of its status polls, and when its PUT was answered."""
    since = len(emulator.requests)
    made = await cloud.create_snapshot(_request(disk, name))
    assert made.state is SnapshotState.SUCCEEDED
    [put] = [r.time for r in emulator.requests[since:] if r.operation == "snapshots.put"]
    return _polls(emulator, since), put


@pytest.mark.parametrize("interval", [1.0, 5.0])
async def test_a_create_is_polled_when_such_creates_are_typically_done(interval: float) -> None:
    emulator = Emulator(LoopClock(T0), EmulatorConfig.named("azure"))
    for name in ("disk-a", "disk-b", "disk-c"):
        emulator.seed_disk(SUB, RG, name, location=LOCATION)
    async with emulator.serve() as server:
        options = AzureOptions(base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=interval)
        async with AzureCloud(StaticTokenCredential(), options) as cloud:
            first, _ = await _create(emulator, cloud, "disk-a", "snap-a")
            # Nothing known yet: one poll per interval until the 3-second create is done.
            assert len(first) == (3 if interval == 1.0 else 1)
            for disk in ("disk-b", "disk-c"):
                polls, put = await _create(emulator, cloud, disk, f"snap-{disk}")
                # Azure said the first took 3 s: one poll, never sooner than the interval.
                assert len(polls) == 1
                assert (polls[0] - put).total_seconds() >= max(interval, 3.0)


async def test_a_create_that_fails_after_the_typical_wait_is_still_reported() -> None:
    emulator = Emulator(LoopClock(T0), EmulatorConfig.named("azure"))
    for name in ("disk-a", "disk-b"):
        emulator.seed_disk(SUB, RG, name, location=LOCATION)
    async with emulator.serve() as server:
        options = AzureOptions(base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=1.0)
        async with AzureCloud(StaticTokenCredential(), options) as cloud:
            await _create(emulator, cloud, "disk-a", "snap-a")
            emulator.add_fault(FaultRule(operation="snapshots.put", kind="lro_failed", count=1))
            with pytest.raises(TransientError) as info:
                await cloud.create_snapshot(_request("disk-b", "snap-b"))
            assert info.value.code == "InternalOperationError"


async def test_a_delete_is_polled_once_it_is_typically_done_never_the_moment_it_was_accepted() -> None:
    emulator = Emulator(LoopClock(T0), EmulatorConfig.named("azure"))
    disks = [f"disk-{k}" for k in range(3)]
    for name in disks:
        emulator.seed_disk(SUB, RG, name, location=LOCATION)
    async with emulator.serve() as server:
        options = AzureOptions(base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=0.25)
        async with AzureCloud(StaticTokenCredential(), options) as cloud:
            for disk in disks:
                await _create(emulator, cloud, disk, f"snap-{disk}")
            counts = []
            for disk in disks:
                since = len(emulator.requests)
                await cloud.delete_snapshot(SUB, RG, f"snap-{disk}")
                [sent] = [r.time for r in emulator.requests[since:] if r.operation == "snapshots.delete"]
                polls = _polls(emulator, since)
                # azure-core asked the moment Azure accepted a delete; a 1-second delete is never done that soon.
                assert min(polls) > sent
                counts.append(len(polls))
            # The first delete is polled every 0.25 s until it is done; Azure said it took 1 s: the next ones, once.
            assert counts[0] > 1
            assert counts[1:] == [1, 1]
    assert {s.name for s in emulator.store.snapshots.values()} == set()
