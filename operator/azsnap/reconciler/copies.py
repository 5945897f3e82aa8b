"""The copy flow of one policy's disk: observe the targets (shared lists), plan each (pure), guard source retention,
start at most one copy per disk, apply the targets' retention, and report status, events and health.

`Reconciler` calls it in two steps around acting on the policy's own snapshots: `prepare` (before: what source
retention must keep, when to look again) and `act` (after: the copy calls). Copies in one subscription and target
region are started under one lock, counted from the shared observation, so policies reconciled at once never
pass the region's cap together.
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
from azsnap.domain.copies import CopyPlan, TargetState, disk_hash, plan_copies, status_of, target_key
from azsnap.domain.models import CopyTarget, Policy, SnapshotPolicyStatus
from azsnap.domain.observed import Disk, Limits, Snapshot, SnapshotState
from azsnap.domain.planner import Plan
from azsnap.reconciler.act import subscription_of
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, StatusReport

__all__ = ["COPY_POLL", "CopyFlow", "PreparedCopies"]

#: How soon to look again while a copy runs or waits for room (the shared list is read, not a call per copy).
COPY_POLL: Final = timedelta(minutes=2)
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

    @property
    def protected(self) -> frozenset[str]:
        return frozenset().union(*(t.plan.protected for t in self.targets))

    def guard(self, the_plan: Plan) -> Plan:
        """The policy's plan without deleting a protected source, and looking again soon while copies are due."""
        keep = self.protected
        deletes = () if self.blind else tuple(d for d in the_plan.deletes if d.snapshot.name not in keep)
        after = () if self.blind else tuple(d for d in the_plan.deletes_after_creates if d.snapshot.name not in keep)
        # A new source (this reconcile's creates) needs its copy soon after it exists.
        busy = (
            self.blind
            or bool(the_plan.creates)
            or any(t.plan.start or t.plan.running or t.plan.blocked for t in self.targets)
        )
        wake = min(the_plan.next_time, self.now + COPY_POLL) if busy else the_plan.next_time
        return replace(the_plan, deletes=deletes, deletes_after_creates=after, next_time=wake)

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
        return replace(report, health=health, events=report.events + tuple(self.events))


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
        """Plan every copy target of the policy (None when it has none); reads only shared, cached lists."""
        targets = policy.spec.copies or []
        if not targets:
            return None
        now = self.clock.now()
        sources = [s for s in of_disk if naming.is_owned(s, policy.ref, disk)]
        previous = {(e.get("region"), e.get("resourceGroup")): e for e in status.copies or []}
        prepared = PreparedCopies(policy, disk, [], now)
        disk_busy = False
        for spec in targets:
            key = target_key(spec, disk.subscription_id)
            try:
                seen = await self.observer.copies_of(key[0], [spec.resource_group], disk_hash(disk.id))
            except CloudError as exc:
                prepared.problem = f"listing {spec.resource_group} failed: {exc.message}"
                prepared.blind = True
                continue
            in_target = [s for s in seen if s.resource_group.lower() == key[1] and s.location.lower() == key[2]]
            state = TargetState.from_status(previous.get((spec.region, spec.resource_group)))
            plan = plan_copies(
                policy,
                disk.id,
                spec,
                sources,
                in_target,
                state,
                now,
                self.limits,
                room=self.parallel - self.observer.copies_running(key[0], key[2]),
                disk_busy=disk_busy,
                default_subscription=disk.subscription_id,
            )
            disk_busy = disk_busy or plan.running is not None or plan.start is not None
            prepared.targets.append(_Target(spec, key, plan))
            for name, why in plan.missed:
                text = (
                    f"the source was deleted while its copy to {spec.region} ran (CopySourceNotFound)"
                    if why == "sourceDeleted"
                    else f"no copy to {spec.region} completed within copyDeadline"
                )
                reason = "CopySourceLost" if why == "sourceDeleted" else "CopyMissed"
                prepared.events.append(Event("Warning", reason, f"Snapshot {name}: {text}; counted in copiesMissed."))
        return prepared

    async def finish(
        self, prepared: PreparedCopies | None, report: StatusReport, status: SnapshotPolicyStatus
    ) -> StatusReport:
        """Act on the copies after the disk's own snapshots, and put their status, events and health in the report."""
        if prepared is None:  # no targets: a status of targets that left the spec goes
            return replace(report, status={**report.status, "copies": None}) if status.copies else report
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
