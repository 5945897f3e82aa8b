"""When a policy with copy targets looks again: a new snapshot's copy starts in the reconcile that made it, a running
copy is looked at when its pace says it completes, and with no copy due or running the copies add no wake-up."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.support.status import fold_status as fold
from tests.unit.test_reconciler_copies import RG, START, SUB, copies_in, make_policy

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.observed import SnapshotState
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler import Reconciler
from azsnap.reconciler.copies import COPY_POLL

SLOT = START.replace(second=0)


async def test_a_new_snapshots_copy_starts_at_once_and_is_looked_at_by_its_pace() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=10))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler, policy = Reconciler(cloud, clock), make_policy(disk)

    report = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    assert len(report.created) == 1
    assert len(copies_in(cloud)) == 1  # the new snapshot's copy was started by the reconcile that made it
    assert report.next_time == START + COPY_POLL  # started: no pace known yet
    status = fold(SnapshotPolicyStatus(), report)

    clock.set(report.next_time)  # 2 of 10 minutes: 20 %, so done 10 minutes after it started
    report = await reconciler.reconcile(policy, status)
    assert report.next_time == START + timedelta(minutes=10)
    status = fold(status, report)

    clock.set(report.next_time)
    report = await reconciler.reconcile(policy, status)
    assert [c.state for c in copies_in(cloud)] == [SnapshotState.SUCCEEDED]
    assert report.next_time == SLOT + timedelta(hours=1)  # nothing due or running: the next slot, no poll
    (entry,) = fold(status, report).copies or []
    assert (entry["copiesHeld"], entry["copiesRunning"]) == (1, 0)


async def test_hours_of_copies_cost_two_looks_each_beyond_the_schedule() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, region_copy_duration=timedelta(minutes=10))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    reconciler, policy = Reconciler(cloud, clock), make_policy(disk)
    status, looks, end = SnapshotPolicyStatus(), 0, START + timedelta(hours=12)
    times: list[datetime] = []
    while clock.now() < end:
        report = await reconciler.reconcile(policy, status)
        status, looks = fold(status, report), looks + 1
        times.append(clock.now())
        clock.set(min(report.next_time, end))
    # one reconcile per hourly slot (which starts its copy) and two looks at the copy: at 2 minutes and when done;
    # the 21:00 slot's looks fall after the end
    assert looks == 12 * 3 + 1, times
    assert cloud.calls["snapshots.list"] <= looks
    (entry,) = status.copies or []
    assert entry["copiesMissed"] == 0 and 10 * 60 <= entry["lagP50Seconds"] <= entry["lagMaxSeconds"] <= 11 * 60
