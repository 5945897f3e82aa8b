"""The reconcile loop for one policy: observe (shared), plan (pure), act (bounded), report."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, NotFound, PermanentError, Throttled, TransientError
from azsnap.cloud.interface import CloudClient, SnapshotRequest
from azsnap.cloud.pacer import pacing, pacing_until
from azsnap.domain import naming, retention, schedule
from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.durations import format_duration
from azsnap.domain.models import DeletionPolicy, Policy, SnapshotPolicyStatus
from azsnap.domain.observed import Disk, Limits, Snapshot, SnapshotState
from azsnap.domain.planner import DeleteAction, Plan, plan
from azsnap.domain.scope import ScopeCheck
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, FinalizeReport, StatusReport
from azsnap.settings import Settings

__all__ = ["Reconciler", "ReconcilerConfig"]

_AUTH_CODES = frozenset({"AuthorizationFailed", "LinkedAuthorizationFailed", "InvalidAuthenticationToken"})


@dataclass(frozen=True)
class ReconcilerConfig:
    """Tunables of the reconcile loop."""

    limits: Limits = field(default_factory=Limits)
    #: How long a resource group's snapshot list is reused by other policies.
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


def _state_word(snapshot: Snapshot) -> str:
    state = snapshot.state
    if state is SnapshotState.UNKNOWN:
        return "Creating"
    return str(state)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _summary(policy: Policy) -> str:
    """A short schedule text for `kubectl get`: `0 * * * * Europe/Berlin` or `every 4h`."""
    sched = policy.spec.schedule
    text = sched.cron if sched.cron else f"every {format_duration(sched.every or timedelta(0))}"
    return text if sched.time_zone == "UTC" else f"{text} {sched.time_zone}"


def _waiting_for_finalize(policy: Policy, listed: Sequence[Snapshot]) -> list[Snapshot]:
    """The policy's own snapshots still in progress: deletion waits for them."""
    return [
        s
        for s in listed
        if s.tags.get(naming.TAG_MANAGED_BY) == naming.MANAGED_BY_VALUE
        and s.tags.get(naming.TAG_POLICY_UID) == policy.ref.uid
        and not naming.is_held(s)
        and s.state in {SnapshotState.CREATING, SnapshotState.COPYING, SnapshotState.UNKNOWN}
    ]


def _subscription_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[2] if len(parts) > 2 else ""


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
        self._disk_locks: dict[str, asyncio.Lock] = {}

    # -- reconcile -----------------------------------------------------------------------------------------

    async def reconcile(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        *,
        on_demand_token: str | None = None,
    ) -> StatusReport:
        """Observe, plan, act; never raises for Azure errors (they become the report's health)."""
        now = self.clock.now()
        spec = policy.spec
        coords = spec.disk.coordinates
        base: dict[str, Any] = {"diskName": coords.name, "schedule": _summary(policy)}

        problems = schedule.validate_schedule(spec.schedule)
        if problems:
            message = "; ".join(problems) + ". Fix the policy; azsnap made no Azure call."
            return self._stalled("InvalidSpec", message, now, base)
        if self.scope is not None:
            refusal = self.scope.check(policy)
            if refusal is not None:
                return self._stalled("ScopeNotAllowed", refusal, now, base)

        try:
            disk = await self.observer.disk(spec.disk.id)
        except CloudError as exc:
            return self._failed(exc, now, base, what=f"reading disk {coords.name}")
        if disk is None:
            message = (
                f"Disk {spec.disk.id} does not exist or azsnap's identity cannot read it. Fix spec.disk.id, "
                f"restore the disk, or grant Microsoft.Compute/disks/read; azsnap checks again every "
                f"{int(self.config.stalled_recheck.total_seconds() // 60)} minutes."
            )
            return self._stalled("DiskNotFound", message, now, base)

        lock = self._disk_locks.setdefault(disk.id.lower(), asyncio.Lock())
        async with lock:
            return await self._reconcile_disk(policy, status, disk, on_demand_token, base)

    async def _reconcile_disk(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        disk: Disk,
        on_demand_token: str | None,
        base: dict[str, Any],
    ) -> StatusReport:
        spec = policy.spec
        limits = self.config.limits
        subscription = disk.subscription_id
        snapshot_rg = spec.snapshot.resource_group or disk.resource_group
        now = self.clock.now()
        try:
            listed = await self.observer.snapshots(subscription, snapshot_rg)
        except CloudError as exc:
            return self._failed(exc, now, base, what=f"listing snapshots in {snapshot_rg}")
        of_disk = [s for s in listed if s.is_of_disk(disk)]
        the_plan = self._plan(
            policy,
            disk,
            of_disk,
            now,
            accounted_until=status.slots_accounted_until,
            on_demand_token=on_demand_token,
            last_on_demand_token=status.last_on_demand_token,
        )

        events: list[Event] = []
        created: list[str] = []
        deleted: list[str] = []
        failed: list[str] = []
        error: CloudError | None = None
        incremental_count = sum(1 for s in of_disk if s.incremental)
        deletes_first = incremental_count + len(the_plan.creates) > limits.per_disk_cap

        async def do_creates() -> CloudError | None:
            for action in the_plan.creates:
                request = SnapshotRequest(
                    subscription_id=subscription,
                    resource_group=snapshot_rg,
                    name=action.name,
                    location=disk.location,
                    source_disk_id=disk.id,
                    tags=action.tags,
                    incremental=spec.snapshot.incremental,
                    sku=str(spec.snapshot.sku) if spec.snapshot.sku else None,
                )
                # The pacer serves the creates closest to their startingDeadline first, taking turns by disk.
                due = action.slot + schedule.slot_offset(spec.schedule, disk.id) + spec.schedule.starting_deadline
                try:
                    with pacing_until(due, self.clock.now(), key=disk.id.lower()):
                        made = await self.cloud.create_snapshot(request)
                except TransientError as exc:
                    # The create may have been accepted before the error: look again next time.
                    self.observer.invalidate(subscription, snapshot_rg)
                    return exc
                except CloudError as exc:
                    failed.append(action.name)
                    events.append(Event("Warning", "SnapshotFailed", f"Creating {action.name} failed: {exc.message}"))
                    return exc
                self.observer.record_created(subscription, snapshot_rg, made, disk)
                if made.state is SnapshotState.FAILED:
                    failed.append(made.name)
                    events.append(Event("Warning", "SnapshotFailed", f"Snapshot {made.name} ended Failed in Azure"))
                    continue
                created.append(made.name)
                what = "on-demand snapshot" if action.on_demand else f"snapshot for slot {_iso(action.slot)}"
                events.append(Event("Normal", "SnapshotCreated", f"Created {what} {made.name} of disk {disk.name}"))
            return None

        async def do_deletes(actions: Sequence[DeleteAction] = the_plan.deletes) -> CloudError | None:
            for action in actions:
                snap = action.snapshot
                sub = _subscription_of(snap.id) or subscription
                try:
                    with pacing(key=disk.id.lower()):
                        await self.cloud.delete_snapshot(sub, snap.resource_group, snap.name)
                except NotFound:
                    pass
                except CloudError as exc:
                    if isinstance(exc, TransientError):
                        self.observer.invalidate(subscription, snapshot_rg)
                    return exc
                self.observer.record_deleted(sub, snap.resource_group, snap.name)
                deleted.append(snap.name)
                events.append(Event("Normal", "SnapshotDeleted", f"Deleted {snap.name}: {action.reason}"))
            return None

        steps = (do_deletes, do_creates) if deletes_first else (do_creates, do_deletes)
        for step in steps:
            error = await step()
            if error is not None:
                break
        if error is None and created:
            # A new snapshot can make an older one unnecessary at once (keepLast, hourly): delete it now rather
            # than at the next slot. Planned on the cached observation: no extra list call.
            after = [s for s in await self._cached(subscription, snapshot_rg) if s.is_of_disk(disk)]
            follow = self._plan(
                policy, disk, after, now, accounted_until=the_plan.accounted_until, last_on_demand_token=on_demand_token
            )
            if follow.deletes and not follow.creates:
                error = await do_deletes(follow.deletes)

        return await self._report(
            policy,
            status,
            on_demand_token,
            disk,
            snapshot_rg,
            the_plan,
            error,
            events,
            created,
            deleted,
            failed,
            base,
            now,
        )

    async def _report(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        on_demand_token: str | None,
        disk: Disk,
        snapshot_rg: str,
        the_plan: Plan,
        error: CloudError | None,
        events: list[Event],
        created: list[str],
        deleted: list[str],
        failed: list[str],
        base: dict[str, Any],
        now: datetime,
    ) -> StatusReport:
        spec = policy.spec
        limits = self.config.limits
        after = [s for s in await self._cached(disk.subscription_id, snapshot_rg) if s.is_of_disk(disk)]
        owned = [s for s in after if naming.is_owned(s, policy.ref, disk)]

        def when(s: Snapshot) -> datetime:
            return naming.slot_of(s) or s.time_created or now

        newest = max(owned, key=when, default=None)
        good = [s.time_created or when(s) for s in owned if s.state is SnapshotState.SUCCEEDED]
        create_ok = error is None or not the_plan.creates or len(created) == len(the_plan.creates)
        watermark = the_plan.accounted_until if create_ok else max([*the_plan.missed], default=None)
        if watermark is None or (status.slots_accounted_until and watermark < status.slots_accounted_until):
            watermark = status.slots_accounted_until
        missed = len(the_plan.missed)
        missed_slots = set(the_plan.missed)
        settled = the_plan
        if error is None:
            # Plan once more on what is there now (no Azure call): the wake-up, the pending deletions and the
            # watermark then describe the state after acting, not before it.
            settled = self._plan(
                policy,
                disk,
                after,
                now,
                accounted_until=watermark,
                last_on_demand_token=on_demand_token if created else status.last_on_demand_token,
            )
            missed += len(settled.missed)
            missed_slots.update(settled.missed)
            watermark = settled.accounted_until
        on_demand_done = any(a.on_demand and a.name in created for a in the_plan.creates)
        next_slot = the_plan.next_slot + schedule.slot_offset(spec.schedule, disk.id)
        fields: dict[str, Any] = {
            **base,
            "lastSnapshot": None
            if newest is None
            else {
                "name": newest.name,
                "scheduledTime": _iso(when(newest)),
                "createdTime": _iso(newest.time_created),
                "state": _state_word(newest),
            },
            "lastSuccessfulSnapshotTime": _iso(max(good, default=None)) or _iso(status.last_successful_snapshot_time),
            "nextSnapshotTime": None if spec.suspend else _iso(next_slot),
            "snapshotCount": len(owned),
            "diskSnapshotCount": len(after),
            "diskSnapshotLimit": limits.per_disk_cap,
            "missedSlots": (status.missed_slots or 0) + missed,
            "pendingDeletions": len(settled.deletes) if error is None else len(the_plan.deletes) - len(deleted),
            "slotsAccountedUntil": _iso(watermark),
            "lastOnDemandToken": on_demand_token if on_demand_done else status.last_on_demand_token,
        }
        blocked = {b.reason: b for b in the_plan.blocked}
        previous_reason = next((c.reason for c in status.conditions if c.type == "Ready"), None)

        if error is not None:
            report = self._failed(error, now, fields, what="changing snapshots", events=events)
        elif "PerDiskCap" in blocked and not the_plan.deletes:
            events.append(Event("Warning", "LimitReached", blocked["PerDiskCap"].message))
            message = (
                f"{blocked['PerDiskCap'].message} Lower the retention, delete snapshots of this disk that azsnap "
                "did not make, or raise AZSNAP_PER_DISK_CAP if Azure raised the limit for your subscription."
            )
            report = self._stalled("LimitReached", message, now, fields, events=events)
        elif spec.suspend:
            if previous_reason != "Suspended":
                events.append(Event("Normal", "Suspended", "spec.suspend is true: no snapshot is created or deleted"))
            health = Health(
                HealthState.READY,
                "Suspended",
                "Suspended: spec.suspend is true, so azsnap creates and deletes nothing. Set it to false to resume.",
            )
            report = self._report_of(health, fields, events, self._next(settled.next_time, now))
        elif "RateWindow" in blocked and the_plan.due_slot is not None and not created:
            b = blocked["RateWindow"]
            events.append(Event("Warning", "RateLimited", b.message))
            until = b.until or now + self.config.default_retry
            health = Health(HealthState.RETRYING, "RateLimited", f"{b.message} azsnap retries at {_iso(until)}.")
            report = self._report_of(health, fields, events, self._next(until, now))
        else:
            waiting = [b.message for b in the_plan.blocked if b.reason in {"PendingCopies", "DiskCopying"}]
            message = f"{len(owned)} snapshot(s) held; next snapshot at {fields['nextSnapshotTime']}."
            if waiting:
                message += " Waiting: " + "; ".join(waiting)
            doubts = [b.message for b in the_plan.blocked if b.reason in {"Unverified", "UnknownState"}]
            if doubts:
                message += " Not deleted: " + "; ".join(doubts)
            health = Health(HealthState.READY, "Succeeded", message)
            report = self._report_of(health, fields, events, self._next(settled.next_time, now))
        return StatusReport(
            health=report.health,
            status=report.status,
            events=report.events,
            next_time=report.next_time,
            created=tuple(created),
            deleted=tuple(deleted),
            failed=tuple(failed),
            missed_slots=tuple(sorted(missed_slots)),
            failed_seen=tuple(sorted(s.name for s in owned if s.state is SnapshotState.FAILED)),
        )

    async def _cached(self, subscription: str, resource_group: str) -> list[Snapshot]:
        # After acting, a paced write may have waited past the list's freshness: the cache (with our own writes
        # applied) still describes the group, and listing again would spend the scarce list budget per policy.
        try:
            return await self.observer.known_snapshots(subscription, resource_group)
        except CloudError:
            return []

    # -- finalize ------------------------------------------------------------------------------------------

    async def finalize(self, policy: Policy) -> FinalizeReport:
        """Handle the policy's deletion: keep (Retain) or delete (Delete) its own snapshots, resumably."""
        spec = policy.spec
        if spec.deletion_policy is DeletionPolicy.RETAIN:
            return FinalizeReport(True, "deletionPolicy is Retain: the snapshots stay, with their ownership tags")
        if self.scope is not None and self.scope.check(policy) is not None:
            return FinalizeReport(True, "the policy is outside its namespace's Azure scope: nothing was deleted")
        coords = spec.disk.coordinates
        snapshot_rg = spec.snapshot.resource_group or coords.resource_group
        try:
            disk = await self.observer.disk(spec.disk.id)
            listed = await self.observer.snapshots(coords.subscription_id, snapshot_rg)
        except CloudError as exc:
            return FinalizeReport(False, f"Azure answered {exc.message}; retrying", retry_after=self._retry(exc))
        doomed = retention.plan_finalize(policy, disk, listed, self.clock.now())
        deleted: list[str] = []
        events: list[Event] = []
        for action in doomed:
            snap = action.snapshot
            sub = _subscription_of(snap.id) or coords.subscription_id
            try:
                await self.cloud.delete_snapshot(sub, snap.resource_group, snap.name)
            except NotFound:
                pass
            except CloudError as exc:
                return FinalizeReport(
                    False,
                    f"deleting {snap.name} failed: {exc.message}; {len(doomed) - len(deleted)} left, retrying",
                    deleted=tuple(deleted),
                    remaining=len(doomed) - len(deleted),
                    retry_after=self._retry(exc),
                    events=tuple(events),
                )
            self.observer.record_deleted(sub, snap.resource_group, snap.name)
            deleted.append(snap.name)
            events.append(Event("Normal", "SnapshotDeleted", f"Deleted {snap.name}: the policy is being deleted"))
        still = await self._cached(coords.subscription_id, snapshot_rg)
        left = retention.plan_finalize(policy, disk, still, self.clock.now())
        waiting = _waiting_for_finalize(policy, still)
        if left or waiting:
            return FinalizeReport(
                False,
                f"{len(left) + len(waiting)} snapshot(s) still to delete (some may still be in progress)",
                deleted=tuple(deleted),
                remaining=len(left) + len(waiting),
                retry_after=self.config.default_retry.total_seconds(),
                events=tuple(events),
            )
        return FinalizeReport(True, f"deleted {len(deleted)} snapshot(s)", deleted=tuple(deleted), events=tuple(events))

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

    def _retry(self, exc: CloudError) -> float:
        if isinstance(exc, TransientError) and exc.retry_after:
            return float(exc.retry_after)
        return self.config.default_retry.total_seconds()

    def _next(self, when: datetime, now: datetime) -> datetime:
        return max(now + timedelta(seconds=1), min(when, now + self.config.max_sleep))

    @staticmethod
    def _report_of(
        health: Health, fields: dict[str, Any], events: Sequence[Event], next_time: datetime
    ) -> StatusReport:
        return StatusReport(health=health, status=fields, events=tuple(events), next_time=next_time)

    def _stalled(
        self,
        reason: str,
        message: str,
        now: datetime,
        fields: dict[str, Any],
        *,
        events: Sequence[Event] = (),
    ) -> StatusReport:
        health = Health(HealthState.STALLED, reason, message)
        return self._report_of(health, fields, events, now + self.config.stalled_recheck)

    def _failed(
        self,
        exc: CloudError,
        now: datetime,
        fields: dict[str, Any],
        *,
        what: str,
        events: Sequence[Event] = (),
    ) -> StatusReport:
        if isinstance(exc, TransientError):
            delay = self._retry(exc)
            reason = "Throttled" if isinstance(exc, Throttled) else "AzureUnavailable"
            message = f"Azure answered {exc.message!r} while {what}; azsnap retries in {int(delay)}s."
            extra = [Event("Warning", "RateLimited", message)] if isinstance(exc, Throttled) else []
            health = Health(HealthState.RETRYING, reason, message)
            return self._report_of(health, fields, [*events, *extra], now + timedelta(seconds=delay))
        code = exc.code or "AzureError"
        if code in _AUTH_CODES:
            message = (
                f"Azure refused azsnap's identity while {what} ({code}: {exc.message}). Grant it the azsnap role on "
                "the disk's and the snapshots' resource groups (see docs/azure-setup.md)."
            )
            return self._stalled("AuthorizationFailed", message, now, fields, events=events)
        if code == "SnapshotsLimitReached":
            message = (
                f"Azure says the disk has reached its snapshot limit while {what}: {exc.message}. Lower the "
                "retention or delete snapshots of this disk that azsnap did not make."
            )
            return self._stalled(
                "LimitReached", message, now, fields, events=[*events, Event("Warning", "LimitReached", message)]
            )
        if isinstance(exc, PermanentError):
            message = f"Azure rejected a request while {what} ({code}: {exc.message}). Check the policy and the disk."
            return self._stalled("AzureError", message, now, fields, events=events)
        message = f"Azure answered {exc.message!r} while {what}; azsnap retries."
        health = Health(HealthState.RETRYING, "AzureUnavailable", message)
        return self._report_of(health, fields, events, now + self.config.default_retry)
