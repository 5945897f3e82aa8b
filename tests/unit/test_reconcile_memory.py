"""What a reconcile holds while it waits for a create's turn: not its disk's snapshots made whole for the plan."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, datetime, timedelta

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Snapshot
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler import Reconciler

SUB = "00000000-0000-0000-0000-000000000000"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


def others_alive(names: set[str]) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, Snapshot) and o.name in names)


async def test_a_reconcile_waiting_for_its_create_turn_holds_no_whole_snapshot_of_others() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, "rg-demo", "disk-0")
    others = {f"someone-elses-{i}" for i in range(24)}
    for i, name in enumerate(sorted(others)):
        cloud.seed_snapshot(disk, name, tags={"owner": "team-a"}, created_at=START - timedelta(hours=i + 1))
    spec = SnapshotPolicySpec.model_validate(
        {"disk": {"id": disk.id}, "schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 3}}
    )
    policy = Policy(PolicyRef("default", "p1", "uid-1", 1), spec)
    reconciler = Reconciler(cloud, clock)
    reconciler.observer.create_turns.limit = 1
    taken, release = asyncio.Event(), asyncio.Event()

    async def hold_the_only_turn() -> None:
        async with reconciler.observer.create_turns.turn(START):
            taken.set()
            await release.wait()

    holder = asyncio.create_task(hold_the_only_turn())
    await taken.wait()
    reconcile = asyncio.create_task(reconciler.reconcile(policy, SnapshotPolicyStatus()))
    for _ in range(1000):  # the in-memory cloud answers at once: a few turns of the loop reach the wait
        await asyncio.sleep(0)
    assert reconciler.observer.create_turns.waiting == 1
    assert others_alive(others) == 0, "the plan's whole snapshots of others outlive the plan"
    release.set()
    report = await reconcile
    await holder
    assert len(report.created) == 1
    assert report.status["snapshotCount"] == 1
