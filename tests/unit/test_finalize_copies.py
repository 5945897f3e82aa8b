"""`deletionPolicy: Delete` with copy targets: the policy's copies go with its snapshots, a held copy stays, and a
running copy is neither cut short nor robbed of its source; `Retain` leaves every copy."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.test_reconciler_copies import RG, START, SUB, copies_in, make_policy, run

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.copies import TAG_COPY_OF
from azsnap.domain.observed import SnapshotState
from azsnap.reconciler import Reconciler


async def test_delete_takes_the_copies_too_but_waits_for_a_running_one_and_keeps_a_held_one() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=10))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk, deletionPolicy="Delete", retention={"keepLast": 3})
    await run(reconciler, [policy], clock, START + timedelta(hours=3, minutes=3))
    copies = copies_in(cloud)
    running = [c for c in copies if c.state is SnapshotState.COPYING]
    assert len(running) == 1 and len(copies) >= 3  # the 12:00 snapshot's copy runs
    held = next(c for c in copies if c.state is SnapshotState.SUCCEEDED)
    cloud._snapshots[("00000000-0000-0000-0000-000000000000", "rg-dr", held.name.lower())].tags[naming.TAG_HOLD] = "x"
    source_of_running = naming.tag(running[0].tags, TAG_COPY_OF)

    first = await reconciler.finalize(policy)
    assert not first.done and "1 copy(ies) to other regions still running" in first.message
    assert sorted(c.name for c in copies_in(cloud)) == sorted([held.name, running[0].name])
    assert [s.name for s in cloud.snapshots if s.resource_group == RG] == [source_of_running]  # kept for its copy
    assert cloud.violations == []  # no source deleted while its copy ran
    assert any(e.reason == "CopyDeleted" for e in first.events)

    clock.advance(timedelta(minutes=10))  # the copy ends
    second = await reconciler.finalize(policy)
    assert second.done, second.message
    assert [c.name for c in copies_in(cloud)] == [held.name]  # the held copy stays, as a held snapshot would
    assert [s for s in cloud.snapshots if s.resource_group == RG] == []
    assert cloud.violations == []


async def test_retain_leaves_every_copy() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk)
    await run(reconciler, [policy], clock, START + timedelta(hours=2, minutes=30))
    before = [c.name for c in copies_in(cloud)]
    report = await reconciler.finalize(policy)
    assert report.done and before and [c.name for c in copies_in(cloud)] == before
