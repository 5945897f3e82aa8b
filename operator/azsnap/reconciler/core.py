"""The reconcile loop for one policy: observe (shared), plan (pure), act (bounded), report."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, NotFound
from azsnap.cloud.interface import CloudClient
from azsnap.domain import naming, schedule
from azsnap.domain.models import Policy
from azsnap.domain.observed import Disk, Limits, Snapshot, SnapshotState
from azsnap.domain.planner import DeleteAction, Plan, plan
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.scope import ScopeCheck
from azsnap.domain.targets import ClaimView
from azsnap.domain.volumes import disk_ref
from azsnap.reconciler.accounting import (
    accounted_until,
    schedule_changed,
    schedule_summary,
    status_fields,
    watermark_after,
)
from azsnap.reconciler.act import Actor, Outcome
from azsnap.reconciler.copies import CopyFlow
from azsnap.reconciler.finalize import finalize
from azsnap.reconciler.former_targets import former_places, track_former_targets
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.orphans import disk_missing
from azsnap.reconciler.pass_health import all_succeeded, pass_health
from azsnap.reconciler.report import Event, FinalizeReport, StatusReport
from azsnap.reconciler.targets import ClaimReconciler
from azsnap.reconciler.verdicts import Verdicts
from azsnap.settings import Settings

__all__ = ["Reconciler", "ReconcilerConfig"]


@dataclass(frozen=True)
class ReconcilerConfig:
    """Tunables of the reconcile loop."""

    limits: Limits = field(default_factory=Limits)
    #: How long a subscription's snapshot list is reused by other policies.
    list_freshness: timedelta = timedelta(seconds=30)
    #: How soon to look again at a policy that is stalled (a disk may come back, a role may be granted).
    stalled_recheck: timedelta = timedelta(minutes=10)
    #: Retry delay when Azure gave no Retry-After.
    default_retry: timedelta = timedelta(seconds=30)
    #: Never sleep longer than this, so drift (a snapshot deleted by hand) is seen.
    max_sleep: timedelta = timedelta(hours=1)

    @classmethod
    def from_settings(cls, settings: Settings) -> ReconcilerConfig:
        """The limits and freshness an operator process was configured with."""
        return cls(limits=settings.limits, list_freshness=timedelta(seconds=settings.list_freshness_seconds))


class _DiskChanged(Exception):
    """The disk Azure shows is not the one the snapshot list stood for: its deletes wait for a new pass."""


class Reconciler:
    """Keeps one policy's snapshots in line with its spec; safe to call any time, any number of times."""

    def __init__(
        self,
        cloud: CloudClient,
        clock: Clock,
        config: ReconcilerConfig | None = None,
        *,
        observer: Observer | None = None,
        scope: ScopeCheck | None = None,
    ) -> None:
        self.cloud = cloud
        self.clock = clock
        self.config = config or ReconcilerConfig()
        self.observer = observer or Observer(cloud, clock, freshness=self.config.list_freshness)
        self.scope = scope
        self.verdicts = Verdicts(
            stalled_recheck=self.config.stalled_recheck,
            default_retry=self.config.default_retry,
            max_sleep=self.config.max_sleep,
        )
        self._disk_locks: dict[str, asyncio.Lock] = {}
        self.copies = CopyFlow(cloud, clock, self.observer, self.config.limits)
        targets = (self.observer, self.verdicts, self.config.limits, self.config.stalled_recheck)
        self.claim_targets = ClaimReconciler(self.reconcile_disk, cloud, clock, *targets)

    # -- reconcile -----------------------------------------------------------------------------------------

    async def reconcile(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        *,
        on_demand_token: str | None = None,
        claims: ClaimView | None = None,
    ) -> StatusReport:
        """Observe, plan, act; never raises for Azure errors (they become the report's health).

        A policy over PersistentVolumeClaims reads them in `claims` and reconciles each of their disks in turn.
        """
        if policy.spec.disk is None:
            report = await self.claim_targets.reconcile(policy, status, claims, on_demand_token)
        else:
            report = await self.reconcile_disk(policy, status, on_demand_token=on_demand_token)
        return await track_former_targets(self.observer, policy, status, report)  # targets left out of the spec

    async def reconcile_disk(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        *,
        on_demand_token: str | None = None,
    ) -> StatusReport:
        """The reconcile of one disk (`spec.disk`, set for a claim's disk by `reconciler/targets.py`)."""
        now = self.clock.now()
        spec = policy.spec
        ref = disk_ref(spec)
        coords = ref.coordinates
        base: dict[str, Any] = {"diskName": coords.name, "schedule": schedule_summary(policy)}
        if schedule_changed(policy, status):
            base["slotsAccountedUntil"] = None  # the old watermark belongs to the old schedule

        problems = schedule.validate_schedule(spec.schedule)
        if problems:
            message = "; ".join(problems) + ". Fix the policy; azsnap made no Azure call."
            return self.verdicts.stalled("InvalidSpec", message, now, base)
        if self.scope is not None:
            refusal = self.scope.check(policy)
            if refusal is not None:
                return self.verdicts.stalled("ScopeNotAllowed", refusal, now, base)

        groups = (coords.resource_group, spec.snapshot.resource_group or coords.resource_group)
        for attempt in range(2):
            try:
                disk, vouched = await self.observer.disk_or_list(ref.id, groups)
            except CloudError as exc:
                return self.verdicts.failed(exc, now, base, what=f"reading disk {coords.name}")
            if disk is None:
                return await disk_missing(
                    policy,
                    status,
                    base,
                    cloud=self.cloud,
                    clock=self.clock,
                    observer=self.observer,
                    verdicts=self.verdicts,
                    limits=self.config.limits,
                    recheck_minutes=int(self.config.stalled_recheck.total_seconds() // 60),
                )
            lock = self._disk_locks.setdefault(disk.id.lower(), asyncio.Lock())
            async with lock:
                report = await self._reconcile_disk(
                    policy, status, disk, on_demand_token, base, vouched and not attempt
                )
            if report is not None:
                return report
        raise AssertionError("a disk read on the second pass always gives a report")  # pragma: no cover

    async def _reconcile_disk(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        disk: Disk,
        on_demand_token: str | None,
        base: dict[str, Any],
        vouched: bool,
    ) -> StatusReport | None:
        """One pass on a disk; None when the list stood for the disk (`vouched`) and Azure then showed it changed."""
        spec = policy.spec
        snapshot_rg = spec.snapshot.resource_group or disk.resource_group
        groups = (disk.resource_group, snapshot_rg)
        now = self.clock.now()
        try:
            of_disk = await self.observer.of_disk(disk, groups)
        except CloudError as exc:
            return self.verdicts.failed(exc, now, base, what=f"listing the snapshots of disk {disk.name}")
        previous = accounted_until(policy, status)
        the_plan = self._plan(
            policy,
            disk,
            of_disk,
            now,
            accounted_until=previous,
            on_demand_token=on_demand_token,
            last_on_demand_token=status.last_on_demand_token,
        )
        copies = await self.copies.prepare(policy, status, disk, of_disk)
        the_plan = the_plan if copies is None else copies.guard(the_plan)  # keeps the sources copies need
        # Near the per-disk cap (counting every snapshot of the disk, in any group), retention makes room first.
        deletes_first = (
            sum(1 for s in of_disk if s.incremental) + len(the_plan.creates) > self.config.limits.per_disk_cap
        )
        del of_disk  # made whole for the plan: not held while the creates wait for their turn (a slot has 10,000)

        actor = Actor(self.cloud, self.clock, self.observer, policy, disk, snapshot_rg)
        outcome = actor.outcome
        checked = not vouched

        async def deletes(actions: Sequence[DeleteAction]) -> CloudError | None:
            # A delete rests on the disk as it is now: a disk the list stood for is read first, unless a create of
            # this pass came back from its incarnation (Azure read the disk for it).
            nonlocal checked
            if actions and not checked:
                checked = (bool(outcome.created) and self.observer.holds(disk)) or await self.observer.confirm(disk)
                if not checked:
                    raise _DiskChanged
            return await actor.deletes(actions)

        error: CloudError | None = None
        try:
            if deletes_first:
                error = await deletes(the_plan.deletes) or await actor.creates(the_plan.creates)
            else:
                error = await actor.creates(the_plan.creates) or await deletes(the_plan.deletes)
            outcome.error = error
            if error is None and the_plan.deletes_after_creates and all_succeeded(the_plan, outcome):
                # A new snapshot can make an older one unnecessary at once (keepLast, hourly): delete it now rather
                # than at the next slot. The plan looked ahead for this; no second plan, no extra list call.
                outcome.error = await deletes(the_plan.deletes_after_creates)
        except _DiskChanged:
            if not outcome.created:
                return None
        if vouched and isinstance(error, NotFound) and not outcome.created:
            self.observer.forget_disk(disk.id)  # the list stood for a disk Azure says is gone: read it, start over
            return None
        report = await self._report(
            policy, status, on_demand_token, disk, groups, the_plan, previous, outcome, base, now
        )
        return await self.copies.finish(copies, report, status)

    async def _report(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        on_demand_token: str | None,
        disk: Disk,
        groups: tuple[str, str],
        the_plan: Plan,
        previous: datetime | None,
        outcome: Outcome,
        base: dict[str, Any],
        now: datetime,
    ) -> StatusReport:
        spec = policy.spec
        created = outcome.created
        after = await self._known(disk, groups)
        watermark = watermark_after(the_plan, outcome, previous)
        missed = tuple(sorted({*the_plan.missed, *outcome.missed}))  # outcome.missed: never sent, over budget
        on_demand_done = any(a.on_demand and a.name in created for a in the_plan.creates)
        planned = len(the_plan.deletes)
        if the_plan.deletes_after_creates and all_succeeded(the_plan, outcome):
            planned += len(the_plan.deletes_after_creates)
        fields: dict[str, Any] = {
            **base,
            **status_fields(
                policy,
                status,
                disk,
                after,
                self.config.limits,
                next_slot=the_plan.next_slot + schedule.slot_offset(spec.schedule, disk.id),
                missed=len(missed),
                pending_deletions=max(planned - len(outcome.deleted), 0),
                watermark=watermark,
                on_demand_token=on_demand_token,
                on_demand_done=on_demand_done,
            ),
        }
        if status.disk_unique_id and status.disk_unique_id != disk.unique_id:
            outcome.events.append(
                Event(
                    "Normal",
                    "NewDiskIncarnation",
                    f"Disk {disk.name} was recreated or restored in place (unique ID {disk.unique_id}, was "
                    f"{status.disk_unique_id}); its earlier snapshots stay under this policy's retention.",
                )
            )
        report = pass_health(self.verdicts, policy, status, the_plan, outcome, fields, now)
        return StatusReport(
            health=report.health,
            status=report.status,
            events=report.events,
            next_time=report.next_time,
            created=tuple(created),
            deleted=tuple(outcome.deleted),
            failed=tuple(outcome.failed),
            missed_slots=missed,
            failed_seen=tuple(
                sorted(
                    s.name for s in after if s.state is SnapshotState.FAILED and naming.is_owned(s, policy.ref, disk)
                )
            ),
            blocked=tuple(dict.fromkeys(b.reason for b in the_plan.blocked)),
            over_budget=outcome.over_budget,
        )

    async def _known(self, disk: Disk, groups: Sequence[str]) -> list[Snapshot]:
        # After acting, a paced write may have waited past the list's freshness: the cache (with our own writes
        # applied) still describes the disk, and listing again would spend the scarce list budget per policy.
        try:
            return await self.observer.of_disk(disk, groups, fresh=False)
        except CloudError:
            return []

    # -- finalize ------------------------------------------------------------------------------------------

    async def finalize(
        self, policy: Policy, *, status: SnapshotPolicyStatus | None = None, claims: ClaimView | None = None
    ) -> FinalizeReport:
        """The policy's deletion: keep (Retain) or delete (Delete) its snapshots and copies, resumably (per claim disk)."""
        if policy.spec.disk is None:
            by_disk = partial(self.finalize, status=status)  # each disk's deletion finds the former targets' copies
            return await self.claim_targets.finalize(policy, status or SnapshotPolicyStatus(), claims, by_disk)
        return await finalize(
            policy,
            cloud=self.cloud,
            clock=self.clock,
            observer=self.observer,
            scope=self.scope,
            verdicts=self.verdicts,
            default_retry=self.config.default_retry,
            former=former_places(status),
        )

    # -- helpers -------------------------------------------------------------------------------------------

    def _plan(
        self,
        policy: Policy,
        disk: Disk,
        of_disk: list[Snapshot],
        now: datetime,
        *,
        accounted_until: datetime | None,
        last_on_demand_token: str | None,
        on_demand_token: str | None = None,
    ) -> Plan:
        """The pure planner on an observation of the disk, with the disk's rolling window as azsnap knows it."""
        return plan(
            policy,
            disk,
            of_disk,
            self.observer.recent_creates(disk, of_disk, self.config.limits.window),
            now,
            self.config.limits,
            accounted_until=accounted_until,
            on_demand_token=on_demand_token,
            last_on_demand_token=last_on_demand_token,
        )
