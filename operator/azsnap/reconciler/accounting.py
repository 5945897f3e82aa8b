"""Slot accounting and status fields: what a reconcile took, missed and holds, as `kubectl get` shows it.

The slot watermark (`status.slotsAccountedUntil`) says up to which instant every slot is either taken or counted
in `missedSlots`. It is read for the schedule it was written under (`status.schedule`): after a schedule edit
accounting starts afresh, so slots of the old schedule are never judged by the new one. It only passes a slot
whose snapshot Azure reports `Succeeded`: a create that failed, or one still running or copying, leaves its slot
open, to be retried (if it fails) while it is due and counted missed once its deadline has passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from azsnap.domain import naming
from azsnap.domain.durations import format_duration
from azsnap.domain.explain import restore_points
from azsnap.domain.models import Policy
from azsnap.domain.observed import Disk, Limits, Snapshot, SnapshotState
from azsnap.domain.planner import Plan
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.retention import snapshot_time
from azsnap.reconciler.act import Outcome, iso

__all__ = [
    "accounted_until",
    "combined_restore_points",
    "restore_points_field",
    "schedule_changed",
    "schedule_summary",
    "status_fields",
    "watermark_after",
]


def schedule_summary(policy: Policy) -> str:
    """A short schedule text for `kubectl get`: `0 * * * * Europe/Berlin` or `every 4h`."""
    sched = policy.spec.schedule
    text = sched.cron if sched.cron else f"every {format_duration(sched.every or timedelta(0))}"
    return text if sched.time_zone == "UTC" else f"{text} {sched.time_zone}"


def schedule_changed(policy: Policy, status: SnapshotPolicyStatus) -> bool:
    """True when the status was written under another schedule (its watermark belongs to that one)."""
    return status.schedule is not None and status.schedule != schedule_summary(policy)


def accounted_until(policy: Policy, status: SnapshotPolicyStatus) -> datetime | None:
    """The watermark to plan with: the status's, unless the schedule changed since it was written."""
    return None if schedule_changed(policy, status) else status.slots_accounted_until


def watermark_after(the_plan: Plan, outcome: Outcome, previous: datetime | None) -> datetime:
    """The plan's watermark, held just below a scheduled slot whose create did not give a usable snapshot."""
    watermark = the_plan.accounted_until
    for action in the_plan.creates:
        if not action.on_demand and action.name not in outcome.usable and action.slot not in outcome.missed:
            watermark = min(watermark, action.slot - timedelta(seconds=1))
    if previous is not None:
        watermark = max(watermark, previous)
    return watermark


def restore_points_field(owned: Sequence[Snapshot], now: datetime) -> dict[str, Any]:
    """`status.restorePoints`: the newest and oldest usable snapshot (name and time) and how many there are."""
    points = restore_points(owned, now)
    field: dict[str, Any] = {"count": points.count}
    for key, snapshot in (("newest", points.newest), ("oldest", points.oldest)):
        # None removes a point that is gone (status is written as a merge patch)
        field[key] = None if snapshot is None else {"name": snapshot.name, "time": iso(snapshot_time(snapshot))}
    return field


def combined_restore_points(fields: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """`status.restorePoints` of a policy over several disks, from each disk's status fields: newest and oldest of all.

    None when no disk reported its restore points (the status keeps what it holds).
    """
    parts = [f["restorePoints"] for f in fields if f.get("restorePoints")]
    if not parts:
        return None

    def key(point: Mapping[str, Any]) -> tuple[str, str]:
        return str(point.get("time") or ""), str(point.get("name") or "")  # RFC 3339 in UTC sorts as text

    newest = [p["newest"] for p in parts if p.get("newest")]
    oldest = [p["oldest"] for p in parts if p.get("oldest")]
    return {
        "count": sum(int(p.get("count") or 0) for p in parts),
        "newest": max(newest, key=key, default=None),
        "oldest": min(oldest, key=key, default=None),
    }


def _state_word(snapshot: Snapshot) -> str:
    return "Creating" if snapshot.state is SnapshotState.UNKNOWN else str(snapshot.state)


def status_fields(
    policy: Policy,
    status: SnapshotPolicyStatus,
    disk: Disk,
    of_disk: Sequence[Snapshot],
    limits: Limits,
    *,
    next_slot: datetime,
    missed: int,
    pending_deletions: int,
    watermark: datetime,
    on_demand_token: str | None,
    on_demand_done: bool,
) -> dict[str, Any]:
    """The status fields (camelCase, JSON-ready) after a reconcile that planned, from what is there now."""
    owned = [s for s in of_disk if naming.is_owned(s, policy.ref, disk)]

    def made_at(s: Snapshot) -> datetime:
        return s.time_created or naming.slot_of(s) or next_slot

    newest = max(owned, key=lambda s: (made_at(s), s.name), default=None)
    good = [s for s in owned if s.state is SnapshotState.SUCCEEDED]
    last_good = max(good, key=lambda s: (made_at(s), s.name), default=None)
    last_good_time = None if last_good is None else naming.slot_of(last_good) or last_good.time_created
    return {
        "lastSnapshot": None
        if newest is None
        else {
            "name": newest.name,
            "scheduledTime": iso(naming.slot_of(newest) or newest.time_created),
            "createdTime": iso(newest.time_created),
            "state": _state_word(newest),
        },
        "lastSuccessfulSnapshotTime": iso(last_good_time) or iso(status.last_successful_snapshot_time),
        "nextSnapshotTime": None if policy.spec.suspend else iso(next_slot),
        "snapshotCount": len(owned),
        "earlierIncarnations": sum(1 for s in owned if not s.is_of_disk(disk)),
        "diskUniqueId": disk.unique_id,
        "diskSnapshotCount": len(of_disk),
        "diskSnapshotLimit": limits.per_disk_cap,
        "missedSlots": (status.missed_slots or 0) + missed,
        "pendingDeletions": pending_deletions,
        "slotsAccountedUntil": iso(watermark),
        "lastOnDemandToken": on_demand_token if on_demand_done else status.last_on_demand_token,
        "restorePoints": restore_points_field(owned, next_slot),
    }
