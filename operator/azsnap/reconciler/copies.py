"""The copy flow of one policy's disk: observe the targets (shared lists), plan each (pure), guard source retention,
start at most one copy per disk, apply the targets' retention, and report status, events and health.

`Reconciler` calls it in two steps around acting on the policy's own snapshots: `prepare` (before: what source
retention must keep) and `finish` (after: the copy calls; a snapshot this reconcile created is copied at once when
the disk has no copy due or running). Copies in one subscription and target region are started under one lock,
counted from the shared observation, so policies reconciled at once never pass the region's cap together.

The policy looks at its copies again only while one is due or running: a copy waiting for room or just started
in `COPY_POLL`, a running one when its pace (`completionPercent` since it started) says it completes, never
sooner than `MIN_LOOK` nor later than `MAX_LOOK`; with no copy due or running, the copies add no wake-up (and so
no list call).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final

from azsnap.clock import Clock
from azsnap.cloud.copies import CopyRequest, refusal_of, start_copy
from azsnap.cloud.errors import CloudError, NotFound, TransientError
from azsnap.cloud.interface import CloudClient
from azsnap.cloud.pacer import pacing
from azsnap.domain import naming
from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.copies import (
    CopyPlan,
    TargetState,
    copy_done_estimate,
    disk_hash,
    plan_copies,
    status_of,
    target_key,
)
from azsnap.domain.models import CopyTarget, Policy
from azsnap.domain.observed import Disk, Limits, Snapshot, SnapshotState
from azsnap.domain.planner import Plan
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler.act import subscription_of
from azsnap.reconciler.former_targets import running_elsewhere
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, StatusReport

__all__ = ["COPY_POLL", "MAX_LOOK", "MIN_LOOK", "CopyFlow", "PreparedCopies"]

#: How soon to look again at a copy waiting for room, just started, or running without a pace to go by.
COPY_POLL: Final = timedelta(minutes=2)
#: The soonest look at a running copy (the shared list is fresh this long: looking sooner reads the same list).
MIN_LOOK: Final = timedelta(seconds=30)
#: The longest wait between looks at a running copy: its pace, counted from its start, includes Azure's queue
#: before the transfer, so an early estimate runs late; a later look estimates again.
MAX_LOOK: Final = timedelta(minutes=10)
_RUNNING: Final = frozenset({SnapshotState.COPYING, SnapshotState.CREATING})


@dataclass
class _Target:
    spec: CopyTarget
    key: tuple[str, str, str]
    plan: CopyPlan


@dataclass
class PreparedCopies:
    """The plans of one reconcile's copy targets, and what acting on them did."""

    policy: Policy
    disk: Disk
    targets: list[_Target]
    now: datetime
    events: list[Event] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    problem: str = ""
    #: A target could not be read: what its copies need is unknown, so no source is deleted this time.
    blind: bool = False

    #: Sources whose copy still runs into a target the spec no longer names (`reconciler/former_targets.py`).
    held_elsewhere: frozenset[str] = frozenset()

    @property
    def protected(self) -> frozenset[str]:
        return frozenset().union(self.held_elsewhere, *(t.plan.protected for t in self.targets))

    @property
    def busy(self) -> bool:
        """A copy of the disk is due (started, refused, waiting for room) or running, to some target."""
        return any(t.plan.start or t.plan.running or t.plan.blocked for t in self.targets)

    def guard(self, the_plan: Plan) -> Plan:
        """The policy's plan without deleting a protected source (none at all while a target cannot be read)."""
        keep = self.protected
        deletes = () if self.blind else tuple(d for d in the_plan.deletes if d.snapshot.name not in keep)
        after = () if self.blind else tuple(d for d in the_plan.deletes_after_creates if d.snapshot.name not in keep)
        return replace(the_plan, deletes=deletes, deletes_after_creates=after)

    def next_look(self) -> datetime | None:
        """When to look at the copies again; None while no copy is due or running (the schedule's wake suffices)."""
        looks = [self.now + COPY_POLL] if self.blind else []
        for t in self.targets:
            if t.plan.start is not None or t.plan.blocked:  # just started, or still to start: no pace yet
                looks.append(self.now + COPY_POLL)
            elif t.plan.running is not None:
                done = copy_done_estimate(t.plan.running, self.now)
                soon = self.now + COPY_POLL if done is None else max(done, self.now + MIN_LOOK)
                looks.append(min(soon, self.now + MAX_LOOK))
        return min(looks, default=None)

    def status(self) -> list[dict[str, Any]]:
        sub = self.disk.subscription_id
        entries = []
        for t in self.targets:
            entry = status_of(t.spec, t.plan, sub)
            gone = sum(
                1
                for d in t.plan.deletes
                if d.snapshot.name in self.deleted and d.snapshot.state is SnapshotState.SUCCEEDED
            )
            entry["copiesHeld"] = t.plan.held - gone
            if t.plan.start is not None and t.plan.start.name not in self.started:
                entry["copiesRunning"] = 1 if t.plan.running is not None else 0
            entries.append(entry)
        return entries

    def adjust(self, report: StatusReport) -> StatusReport:
        """Copy events into the report, and Ready turned Stalled (CopyOverdue) while a target is behind."""
        health = report.health
        overdue = [t for t in self.targets if t.plan.overdue is not None]
        if health.state is HealthState.READY and health.reason != "Suspended" and (overdue or self.problem):
            if overdue:
                t = overdue[0]
                late = t.plan.overdue
                assert late is not None
                message = (
                    f"Copies to {t.spec.region}/{t.spec.resource_group} are behind: snapshot {late.name} has no "
                    f"completed copy within copyDeadline ({t.plan.state.missed} copies missed so far). "
                    f"{self.problem or 'Check the policy events and the target resource group.'} Ready returns by "
                    "itself once a newer snapshot is copied."
                )
            else:
                message = f"{health.message} Copies: {self.problem}"
            health = (
                Health(HealthState.STALLED, "CopyOverdue", message) if overdue else replace(health, message=message)
            )
        look = self.next_look()
        wake = report.next_time if look is None else min(report.next_time, look)
        return replace(report, health=health, events=report.events + tuple(self.events), next_time=wake)


class CopyFlow:
    """Copies for every policy of one operator process (shares the region locks)."""

    def __init__(self, cloud: CloudClient, clock: Clock, observer: Observer, limits: Limits):
        self.cloud = cloud
        self.clock = clock
        self.observer = observer
        self.limits = limits
        self.parallel = limits.max_parallel_copies
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def prepare(
        self, policy: Policy, status: SnapshotPolicyStatus, disk: Disk, of_disk: Sequence[Snapshot]
    ) -> PreparedCopies | None:
        """Plan every copy target of the policy (None when it has none and no copy of the disk runs into a target
        the spec no longer names: its source is kept too); reads only shared, cached lists."""
        targets = policy.spec.copies or []
        elsewhere = await running_elsewhere(self.observer, policy, status, disk)
        if not targets and elsewhere == frozenset():
            return None
        previous = {(e.get("region"), e.get("resourceGroup")): e for e in status.copies or []}
        prepared = PreparedCopies(policy, disk, [], self.clock.now(), held_elsewhere=elsewhere or frozenset())
        if elsewhere is None:
            prepared.problem = "a removed copy target cannot be listed: no source is deleted until it can"
            prepared.blind = True
        for spec in targets:
            state = TargetState.from_status(previous.get((spec.region, spec.resource_group)))
            try:
                target = await self._plan(prepared, spec, of_disk, state, fresh=True)
            except CloudError as exc:
                prepared.problem = f"listing {spec.resource_group} failed: {exc.message}"
                prepared.blind = True
                continue
            prepared.targets.append(target)
        return prepared

    async def _plan(
        self,
        prepared: PreparedCopies,
        spec: CopyTarget,
        of_disk: Sequence[Snapshot],
        state: TargetState,
        *,
        fresh: bool,
    ) -> _Target:
        """Plan one target from the shared lists (one copy per disk: a target planned before may hold the disk)."""
        policy, disk, now = prepared.policy, prepared.disk, prepared.now
        key = target_key(spec, disk.subscription_id)
        seen = await self.observer.copies_of(key[0], [spec.resource_group], disk_hash(disk.id), fresh=fresh)
        in_target = [s for s in seen if s.resource_group.lower() == key[1] and s.location.lower() == key[2]]
        plan = plan_copies(
            policy,
            disk.id,
            spec,
            [s for s in of_disk if naming.is_owned(s, policy.ref, disk)],
            in_target,
            state,
            now,
            self.limits,
            room=self.parallel - self.observer.copies_running(key[0], key[2]),
            disk_busy=prepared.busy,
            default_subscription=disk.subscription_id,
        )
        for name, why in plan.missed:
            text = (
                f"the source was deleted while its copy to {spec.region} ran (CopySourceNotFound)"
                if why == "sourceDeleted"
                else f"no copy to {spec.region} completed within copyDeadline"
            )
            reason = "CopySourceLost" if why == "sourceDeleted" else "CopyMissed"
            prepared.events.append(Event("Warning", reason, f"Snapshot {name}: {text}; counted in copiesMissed."))
        return _Target(spec, key, plan)

    async def _after_creates(self, prepared: PreparedCopies) -> None:
        """Plan again on the snapshots this reconcile created, from where the first plans left off (cached lists).

        Each target's walk goes on from the state its first plan reached, so nothing is counted twice, and a new
        snapshot's copy starts now rather than at a later look.
        """
        disk, spec = prepared.disk, prepared.policy.spec
        groups = (disk.resource_group, spec.snapshot.resource_group or disk.resource_group)
        try:
            of_disk = await self.observer.of_disk(disk, groups, fresh=False)
        except CloudError:
            return
        first, prepared.targets = prepared.targets, []
        for target in first:
            try:
                again = await self._plan(prepared, target.spec, of_disk, target.plan.state, fresh=False)
            except CloudError:
                again = target
            prepared.targets.append(again)

    async def finish(
        self, prepared: PreparedCopies | None, report: StatusReport, status: SnapshotPolicyStatus
    ) -> StatusReport:
        """Act on the copies after the disk's own snapshots, and put their status, events and health in the report."""
        if prepared is None or not prepared.policy.spec.copies:  # no targets: a status of targets that left goes
            report = replace(report, status={**report.status, "copies": None}) if status.copies else report
            return prepared.adjust(report) if prepared is not None and prepared.blind else report
        if report.created and not prepared.busy and not prepared.blind:
            await self._after_creates(prepared)
        await self.act(prepared)
        return prepared.adjust(replace(report, status={**report.status, "copies": prepared.status()}))

    async def act(self, prepared: PreparedCopies) -> None:
        """Start the planned copies (the region's room checked again under its lock), then the targets' deletes."""
        for target in prepared.targets:
            action = target.plan.start
            if action is None:
                continue
            sub, _, region = target.key
            lock = self._locks.setdefault((sub, region), asyncio.Lock())
            async with lock:
                await self.observer.copies_of(sub, [target.spec.resource_group], "", fresh=False)  # a view exists
                if self.observer.copies_running(sub, region) >= self.parallel:
                    continue  # another policy took the last place: next time
                request = CopyRequest(
                    sub, target.spec.resource_group, action.name, region, action.source.id, action.tags
                )
                try:
                    with pacing(key=prepared.disk.id.lower()):
                        made = await start_copy(self.cloud, request)
                except TransientError as exc:
                    if refusal_of(exc) not in ("RegionBusy", "DiskBusy"):
                        prepared.problem = f"starting copy {action.name} failed: {exc.message}"
                    self.observer.invalidate(sub)
                    continue
                except CloudError as exc:
                    prepared.problem = f"starting copy {action.name} failed: {exc.message}"
                    prepared.events.append(Event("Warning", "CopyFailed", f"Copy {action.name}: {exc.message}"))
                    continue
                if made.completion_percent is None:  # an operation's output has no progress: running until listed
                    made = replace(made, completion_percent=0.0)
                self.observer.record_copy(sub, made)
            prepared.started.append(made.name)
            prepared.events.append(
                Event(
                    "Normal",
                    "CopyStarted",
                    f"Copying {action.source.name} to {region}/{target.spec.resource_group} as {made.name}"
                    + (f" (attempt {action.attempt})" if action.attempt > 1 else ""),
                )
            )
        for target in prepared.targets:
            for delete in target.plan.deletes:
                snap = delete.snapshot
                sub = subscription_of(snap.id) or target.key[0]
                try:
                    with pacing(key=prepared.disk.id.lower()):
                        await self.cloud.delete_snapshot(sub, snap.resource_group, snap.name)
                except NotFound:
                    pass
                except CloudError as exc:
                    prepared.problem = f"deleting copy {snap.name} failed: {exc.message}"
                    break
                self.observer.record_deleted(sub, snap.resource_group, snap.name)
                prepared.deleted.append(snap.name)
                prepared.events.append(Event("Normal", "CopyDeleted", f"Deleted copy {snap.name}: {delete.reason}"))
