"""The planner: for one policy, one disk and one instant, which snapshots to create and delete, and why.

Pure and idempotent: the same observation at the same `now` gives the same plan, with the same snapshot names.

Slot accounting. A slot is due at `slot + jitter offset`; it may be taken until `startingDeadline` after that.
Only the latest slot can be due; every earlier slot after the watermark (`accounted_until`) without a snapshot
of ours that did not fail is missed and never backfilled. On the very first plan (no watermark) nothing before
the latest slot is missed, and the latest slot counts as missed neither when its deadline has already passed.
While a policy is suspended its slots are skipped on purpose, so they are not missed either. Slots more than 400
days behind are not looked at. The watermark passes the due slot only once its snapshot is `Succeeded` (or its
deadline is over): a snapshot that ends `Failed` while the slot is due is retried under a new name (at most
`naming.MAX_ATTEMPTS` in all), and a slot whose snapshots all failed is missed once its deadline passes. A slot
at or below the watermark is never taken again, even if its snapshot has gone since (deleted by hand or by
retention): at most one usable snapshot per slot, ever.

The plan is made once per reconcile and describes the state after its own actions succeed: `deletes_after_creates`
are what retention no longer keeps once the planned creates exist (run only if every create gave a `Succeeded`
snapshot), and `next_time` is when to look again then (the caller looks sooner when a create did not succeed).

On-demand snapshots are named by the minute they are asked in; a second request within the same minute waits
for the next minute (`OnDemandWait`), so every new request gives one more snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from azsnap.domain import naming, retention, schedule
from azsnap.domain.models import Policy
from azsnap.domain.observed import Disk, Limits, Snapshot, SnapshotState
from azsnap.domain.retention import DeleteAction, RetentionDecision

__all__ = ["BLOCKED_REASONS", "Blocked", "CreateAction", "DeleteAction", "Plan", "plan"]

BLOCKED_REASONS: Final = (
    "Suspended",
    "OnDemandWait",
    "RetriesExhausted",
    "RateWindow",
    "PerDiskCap",
    "PendingCopies",
    "DiskCopying",
    "InProgress",
    "Unverified",
    "UnknownState",
)
#: A background copy (Premium SSD v2, Ultra) is looked at again after this.
COPY_RECHECK: Final = timedelta(minutes=5)
#: A snapshot still being created, or one just asked for, is looked at again after this.
CREATE_RECHECK: Final = timedelta(minutes=1)
#: When a schedule never fires again, plan again after this.
IDLE_RECHECK: Final = timedelta(days=1)

_BUSY: Final = frozenset({SnapshotState.CREATING, SnapshotState.COPYING})
_CREATING: Final = frozenset({SnapshotState.CREATING, SnapshotState.UNKNOWN})


@dataclass(frozen=True)
class CreateAction:
    """Create one snapshot with this name and these tags."""

    name: str
    slot: datetime
    tags: Mapping[str, str]
    reason: str
    on_demand: bool = False


@dataclass(frozen=True)
class Blocked:
    """Something the plan wanted but may not do now; `until` is when it may, if known."""

    reason: str
    message: str
    until: datetime | None = None


@dataclass(frozen=True)
class Plan:
    """What to do now for one policy and disk, and when to look again."""

    creates: tuple[CreateAction, ...]
    deletes: tuple[DeleteAction, ...]
    blocked: tuple[Blocked, ...]
    next_time: datetime
    missed: tuple[datetime, ...]
    accounted_until: datetime
    due_slot: datetime | None
    next_slot: datetime
    retention: RetentionDecision = field(default_factory=RetentionDecision)
    owned: tuple[Snapshot, ...] = ()
    #: Deletes retention adds once the creates exist (keepLast, tiers): only when every create succeeded.
    deletes_after_creates: tuple[DeleteAction, ...] = ()

    @property
    def nothing_to_do(self) -> bool:
        return not self.creates and not self.deletes


def _iso(when: datetime) -> str:
    return naming.format_slot(when)


def plan(
    policy: Policy,
    disk: Disk,
    observed: Sequence[Snapshot],
    recent_creates_for_disk: Sequence[datetime],
    now: datetime,
    limits: Limits,
    *,
    accounted_until: datetime | None = None,
    on_demand_token: str | None = None,
    last_on_demand_token: str | None = None,
) -> Plan:
    """Plan creates and deletes for `policy` on `disk` at `now` (see the module docstring)."""
    spec = policy.spec
    sched = spec.schedule
    now = now.astimezone(UTC)
    offset = schedule.slot_offset(sched, disk.id)
    # Lineage: the 500 cap counts every snapshot of the ARM ID (every incarnation); the 5-minute window and the
    # background copies are the current incarnation's own (an incremental family).
    of_arm_id = [s for s in observed if (s.source_resource_id or "").lower() == disk.id.lower()]
    of_disk = [s for s in of_arm_id if s.is_of_disk(disk)]
    owned = tuple(sorted((s for s in observed if naming.is_owned(s, policy.ref, disk)), key=lambda s: s.name))
    names = {s.name.lower() for s in owned}
    taken: dict[datetime, Snapshot] = {}
    attempts: dict[datetime, int] = {}
    for s in owned:
        slot = naming.slot_of(s)
        if slot is None or naming.is_on_demand(s):
            continue
        attempts[slot] = attempts.get(slot, 0) + 1
        if s.state is not SnapshotState.FAILED:
            taken.setdefault(slot, s)

    latest = schedule.previous_slot(sched, now - offset)
    try:
        upcoming: datetime | None = schedule.next_slot(sched, now - offset)
    except ValueError:
        upcoming = None
    due = latest if latest is not None and now < latest + offset + sched.starting_deadline else None

    # -- slot accounting ------------------------------------------------------------------------------------
    missed: list[datetime] = []
    if accounted_until is not None and not spec.suspend:
        lower = max(accounted_until.astimezone(UTC), now - schedule.LOOKBACK)
        for slot in schedule.slots_between(sched, lower, now - offset):
            if slot not in taken and slot != due:
                missed.append(slot)

    # -- what we would like to create ------------------------------------------------------------------------
    blocked: list[Blocked] = []
    wants: list[CreateAction] = []
    replays: list[CreateAction] = []
    if due is not None and due in taken:
        mine = taken[due]
        if mine.state in _CREATING:
            blocked.append(Blocked("InProgress", f"Snapshot {mine.name} for slot {_iso(due)} is still being created."))
    elif due is not None and (accounted_until is None or due > accounted_until):
        # a slot at or below the watermark was taken before (and since deleted): never take it twice
        free = [
            n
            for n in range(1, naming.MAX_ATTEMPTS + 1)
            if naming.snapshot_name(disk.name, policy.ref.uid, due, attempt=n).lower() not in names
        ]
        if attempts.get(due, 0) >= naming.MAX_ATTEMPTS or not free:
            blocked.append(
                Blocked(
                    "RetriesExhausted",
                    f"{naming.MAX_ATTEMPTS} snapshots for slot {_iso(due)} ended Failed in Azure; azsnap tries "
                    "again at the next slot and counts this one missed.",
                )
            )
        else:
            retry = attempts.get(due, 0) > 0
            wants.append(
                CreateAction(
                    name=naming.snapshot_name(disk.name, policy.ref.uid, due, attempt=free[0]),
                    slot=due,
                    tags=naming.snapshot_tags(policy, disk, due),
                    reason=f"{'retry of ' if retry else ''}scheduled slot {_iso(due)}",
                )
            )
    if on_demand_token and on_demand_token != last_on_demand_token:
        request = naming.request_hash(on_demand_token)
        done = next((s for s in owned if naming.tag(s.tags, naming.TAG_REQUEST) == request), None)
        if done is not None:
            # Already made, but the request was not yet recorded: asking again for the same name makes nothing
            # new and lets the caller record the request.
            replays.append(
                CreateAction(
                    name=done.name,
                    slot=naming.slot_of(done) or now.replace(second=0, microsecond=0),
                    tags=dict(done.tags),
                    reason="on-demand request (already made)",
                    on_demand=True,
                )
            )
        elif naming.snapshot_name(disk.name, policy.ref.uid, now, on_demand=True).lower() in names:
            # names have minute resolution: a second request in the same minute is served in the next one
            minute = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
            blocked.append(
                Blocked(
                    "OnDemandWait",
                    "An on-demand snapshot was already taken this minute; azsnap serves the new request at "
                    f"{_iso(minute)}.",
                    minute,
                )
            )
        else:
            slot = now.replace(second=0, microsecond=0)
            wants.append(
                CreateAction(
                    name=naming.snapshot_name(disk.name, policy.ref.uid, slot, on_demand=True),
                    slot=slot,
                    tags=naming.snapshot_tags(policy, disk, slot, True, request=on_demand_token),
                    reason="on-demand request",
                    on_demand=True,
                )
            )

    # -- retention -------------------------------------------------------------------------------------------
    decision = retention.decide_retention(spec.retention, sched.zone, owned, now, limits)
    deletes: list[DeleteAction] = []
    # tags that name this policy on a snapshot named for another: changed by hand, so not proof enough to delete
    unverified = sorted(s.name for s in owned if s.name in decision.delete and not naming.name_matches_owner(s))
    if not spec.suspend:
        doomed = [s for s in owned if s.name in decision.delete and s.name not in unverified]
        doomed.sort(key=lambda s: (retention.snapshot_time(s) or now, s.name))
        deletes = [DeleteAction(s, decision.delete[s.name]) for s in doomed]
    if unverified:
        blocked.append(
            Blocked(
                "Unverified",
                f"{', '.join(unverified)} carry this policy's tags but a name azsnap gave for another policy (tags "
                "changed by hand?); azsnap does not delete them: correct or remove their azsnap tags.",
            )
        )
    strange = sorted(f"{s.name} ({s.provisioning_state or 'none'})" for s in owned if s.state is SnapshotState.UNKNOWN)
    if strange:
        blocked.append(
            Blocked(
                "UnknownState",
                f"{', '.join(strange)} report a provisioningState azsnap does not know; they are kept and never "
                "deleted until Azure reports Succeeded or Failed.",
            )
        )

    # -- limits ----------------------------------------------------------------------------------------------
    if spec.suspend:
        blocked.append(Blocked("Suspended", "spec.suspend is true: azsnap creates and deletes nothing."))
        wants, replays = [], []
    if wants and disk.copies_in_background:
        if disk.is_copying:
            blocked.append(
                Blocked(
                    "DiskCopying",
                    f"Disk {disk.name} is itself still being copied ({disk.completion_percent or 0:.0f}%); "
                    "Azure refuses snapshots until it finishes.",
                    now + COPY_RECHECK,
                )
            )
            wants = []
        else:
            pending = sum(1 for s in of_disk if s.state in _BUSY)
            room = max(limits.max_pending_copies - pending, 0)
            if room < len(wants):
                blocked.append(
                    Blocked(
                        "PendingCopies",
                        f"{pending} snapshot(s) of disk {disk.name} are still copying in the background; Azure "
                        f"allows {limits.max_pending_copies} at a time.",
                        now + COPY_RECHECK,
                    )
                )
                wants = wants[:room]
    if wants:
        in_window = sorted(t.astimezone(UTC) for t in recent_creates_for_disk if t > now - limits.window)
        room = max(limits.window_creates - len(in_window), 0)
        if room < len(wants):
            times = sorted([*in_window, *([now] * room)])
            until = times[len(times) - limits.window_creates] + limits.window
            minutes = int(limits.window.total_seconds() // 60)
            blocked.append(
                Blocked(
                    "RateWindow",
                    f"{len(in_window)} snapshot(s) of disk {disk.name} were created in the last {minutes} minutes "
                    f"and {len(wants)} are due now ({', '.join(w.reason for w in wants)}); Azure allows "
                    f"{limits.window_creates} in {minutes} minutes, so {room} can be created now.",
                    until,
                )
            )
            wants = wants[:room]
    if wants and spec.snapshot.incremental:
        existing = sum(1 for s in of_arm_id if s.incremental)
        leaving = sum(1 for d in deletes if d.snapshot.incremental)
        room = max(limits.per_disk_cap - (existing - leaving), 0)
        if room < len(wants):
            blocked.append(
                Blocked(
                    "PerDiskCap",
                    f"Disk {disk.name} has {existing - leaving} incremental snapshots after retention; Azure allows "
                    f"{limits.per_disk_cap}.",
                )
            )
            wants = wants[:room]
    creates = (*wants, *replays)

    # -- what the creates make unnecessary -------------------------------------------------------------------
    after = decision
    later: list[DeleteAction] = []
    if wants and not spec.suspend:
        made = [as_made(c, disk, now, spec.snapshot.incremental) for c in wants]
        after = retention.decide_retention(spec.retention, sched.zone, (*owned, *made), now, limits)
        extra = [
            s
            for s in owned
            if s.name in after.delete and s.name not in decision.delete and naming.name_matches_owner(s)
        ]
        extra.sort(key=lambda s: (retention.snapshot_time(s) or now, s.name))
        later = [DeleteAction(s, after.delete[s.name]) for s in extra]

    # -- watermark -------------------------------------------------------------------------------------------
    due_created = any(not c.on_demand and c.slot == due for c in creates)
    due_open = due is not None and (due not in taken or taken[due].state is not SnapshotState.SUCCEEDED)
    if latest is None:
        watermark = accounted_until.astimezone(UTC) if accounted_until is not None else now - offset
    elif (
        due is not None
        and due_open
        and not due_created
        and not spec.suspend
        and (accounted_until is None or due > accounted_until)
    ):
        # the due slot may still be taken later: account only for what lies before it
        watermark = due - timedelta(seconds=1)
        if accounted_until is not None:
            watermark = max(watermark, accounted_until.astimezone(UTC))
    else:
        watermark = latest if accounted_until is None else max(latest, accounted_until.astimezone(UTC))

    # -- when to plan again ----------------------------------------------------------------------------------
    wake: list[datetime] = []
    if upcoming is not None:
        wake.append(upcoming + offset)
    else:
        wake.append(now + IDLE_RECHECK)
    if after.next_change is not None:
        wake.append(after.next_change)
    wake.extend(b.until for b in blocked if b.until is not None)
    if replays or any(b.reason == "InProgress" for b in blocked):
        wake.append(now + CREATE_RECHECK)
    if any(s.state in _BUSY for s in owned):
        wake.append(now + COPY_RECHECK)
    next_time = max(min(wake), now + timedelta(seconds=1))

    return Plan(
        creates=tuple(creates),
        deletes=tuple(deletes),
        blocked=tuple(blocked),
        next_time=next_time,
        missed=tuple(missed),
        accounted_until=watermark,
        due_slot=due,
        next_slot=upcoming if upcoming is not None else now + schedule.LOOKAHEAD,
        retention=decision,
        owned=owned,
        deletes_after_creates=tuple(later),
    )


def as_made(action: CreateAction, disk: Disk, now: datetime, incremental: bool) -> Snapshot:
    """The snapshot a create will give if it succeeds, for retention to look ahead with."""
    return Snapshot(
        id="",
        name=action.name,
        resource_group=disk.resource_group,
        location=disk.location,
        source_resource_id=disk.id,
        source_unique_id=disk.unique_id,
        time_created=now,
        provisioning_state="Succeeded",
        tags=dict(action.tags),
        incremental=incremental,
    )
