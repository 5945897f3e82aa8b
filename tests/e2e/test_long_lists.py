"""A long list of snapshots: each page has the call's deadline, so a list of many pages is not cut at the first.

A subscription with 250,000 snapshots is 2,500 pages; one deadline over all of them failed every reconcile of a
large subscription. The observer also tries the subscription-wide list on a clock that moves between readings.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from azsnap.clock import LoopClock, ManualClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.errors import TransientError
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.observed import Snapshot
from azsnap.emulator import DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, Emulator, EmulatorConfig, FaultRule
from azsnap.offline.sandbox import disk_id
from azsnap.reconciler.observe import Observer

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SNAPSHOTS = 10


def _seeded() -> Emulator:
    emulator = Emulator(LoopClock(T0), EmulatorConfig(lro_duration=timedelta(0), page_size=2, throttling=False))
    emulator.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-0", location=DEMO_LOCATION)
    for k in range(SNAPSHOTS):
        body = {
            "location": DEMO_LOCATION,
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk_id("disk-0")}},
        }
        emulator.store.create_snapshot(
            T0 - timedelta(hours=k + 1), DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, f"s-{k}", body
        )
    return emulator


@pytest.mark.parametrize("wide", [True, False])
async def test_a_list_of_many_pages_outlasts_one_deadline_and_each_slow_page_still_meets_it(wide: bool) -> None:
    emulator = _seeded()
    group = None if wide else DEMO_RESOURCE_GROUP
    async with emulator.serve() as server:
        options = AzureOptions(base_url=server.base_url, ca_bundle=server.ca_bundle, call_timeout=25.0, retry_total=0)
        cloud = AzureCloud(StaticTokenCredential(), options)
        try:
            # Five pages of 10 s each: 50 s in all, twice the deadline, every page inside it.
            emulator.add_fault(FaultRule(operation="snapshots.list", kind="latency", latency_s=10.0))
            listed = await cloud.list_snapshots(DEMO_SUBSCRIPTION, group)
            assert sorted(s.name for s in listed) == sorted(f"s-{k}" for k in range(SNAPSHOTS))
            # One page slower than the deadline still ends the call.
            emulator.clear_faults()
            emulator.add_fault(FaultRule(operation="snapshots.list", kind="latency", latency_s=30.0, count=1))
            with pytest.raises(TransientError, match="deadline"):
                await cloud.list_snapshots(DEMO_SUBSCRIPTION, group)
        finally:
            await cloud.close()


class _MovingClock(ManualClock):
    """A wall clock's habit: every reading is a microsecond later than the one before."""

    def now(self) -> datetime:
        self.advance(timedelta(microseconds=1))
        return super().now()


class _CountingCloud(MemoryCloud):
    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.lists: list[str | None] = []

    async def list_snapshots(self, subscription_id: str, resource_group: str | None) -> list[Snapshot]:
        self.lists.append(resource_group)
        return await super().list_snapshots(subscription_id, resource_group)


async def test_the_observer_lists_the_whole_subscription_on_a_clock_that_moves() -> None:
    clock = _MovingClock(T0)
    cloud = _CountingCloud(clock)
    observer = Observer(cloud, clock)
    await observer.in_subscription(DEMO_SUBSCRIPTION, ["rg-a", "rg-b"])
    assert cloud.lists == [None]
    assert observer.coverage(DEMO_SUBSCRIPTION) is None
