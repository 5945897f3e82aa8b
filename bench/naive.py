"""The naive strategy, for comparison: each policy lists its own snapshots and creates at the top of the hour, unpaced.

It uses the same planner and the same Azure adapter as azsnap (so the snapshots and their names are the same), but
no shared observation, no pacer: every policy lists its resource group itself, and a call that Azure throttles is
retried by azure-core (honouring Retry-After) and then, failing that, by the policy after the Retry-After.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, NotFound, TransientError
from azsnap.cloud.interface import CloudClient, SnapshotRequest
from azsnap.domain import schedule
from azsnap.domain.observed import Limits
from azsnap.domain.planner import plan
from bench.common import Member

#: How long a naive policy waits after an error Azure gave no Retry-After for.
DEFAULT_RETRY = timedelta(seconds=30)


async def run_policy(cloud: CloudClient, clock: Clock, member: Member, end: datetime) -> None:
    """Reconcile one policy the naive way until `end`."""
    disk, policy = member.disk, member.policy
    sched = policy.spec.schedule
    limits = Limits()
    accounted: datetime | None = None
    while clock.now() < end:
        now = clock.now()
        wake: datetime
        try:
            listed = await cloud.list_snapshots(disk.subscription_id, disk.resource_group)
            mine = [s for s in listed if s.is_of_disk(disk)]
            the_plan = plan(policy, disk, mine, [], now, limits, accounted_until=accounted)
            for action in the_plan.creates:
                await cloud.create_snapshot(
                    SnapshotRequest(
                        subscription_id=disk.subscription_id,
                        resource_group=disk.resource_group,
                        name=action.name,
                        location=disk.location,
                        source_disk_id=disk.id,
                        tags=action.tags,
                    )
                )
            accounted = the_plan.accounted_until
            for doomed in the_plan.deletes:
                with contextlib.suppress(NotFound):
                    await cloud.delete_snapshot(
                        disk.subscription_id, doomed.snapshot.resource_group, doomed.snapshot.name
                    )
            wake = schedule.next_slot(sched, clock.now())
        except CloudError as exc:
            retry = exc.retry_after if isinstance(exc, TransientError) and exc.retry_after else None
            wake = clock.now() + (timedelta(seconds=retry) if retry else DEFAULT_RETRY)
        if wake >= end:
            return
        await asyncio.sleep(max(0.0, (wake - clock.now()).total_seconds()))
