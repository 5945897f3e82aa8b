"""A policy over PersistentVolumeClaims: resolve its claims to disks, reconcile each disk alone, report them as one.

Each resolved disk goes through the per-disk flow (`Reconciler.reconcile_disk`: one plan per disk per reconcile,
the disk's lock, budgets and limits) as a policy of its own whose spec names the disk, with the accounting kept
for it in its `status.disks` entry. A claim that names no Azure disk gets an `Unresolved` entry with the reason.
A claim that went away (or no longer matches) keeps its entry while the policy holds snapshots of its disk: no new
snapshot is taken, and the old ones are kept, or retired by retention under `onSourceDiskDelete: ApplyRetention`
(never the newest good one, a held one or one `minKeep` keeps), as for a deleted disk; a disk `status.disks` left
out is found again by the policy's snapshots for that (`reconciler/gone_disks.py`).

The policy is Ready when it serves at least one disk and every disk it serves is; a served disk Retrying or
Stalled makes the policy so (the worst wins). Claims that name no disk do not change that: their entries say why.
With no disk served at all, the policy is Retrying while its claims are only pending, else Stalled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError
from azsnap.cloud.interface import CloudClient
from azsnap.domain.conditions import HealthState
from azsnap.domain.copy_accounts import copy_fields
from azsnap.domain.disk_accounts import encode_accounts
from azsnap.domain.models import DeletionPolicy, DiskRef, Policy
from azsnap.domain.observed import Limits
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.schedule import validate_schedule
from azsnap.domain.targets import ClaimView, DiskEntry, bounded_entries
from azsnap.domain.volumes import ClaimDisk, ClaimProblem, resolve_targets
from azsnap.reconciler.accounting import schedule_changed, schedule_summary
from azsnap.reconciler.claim_events import bounded_events
from azsnap.reconciler.claim_status import (
    Served,
    claim_health,
    disk_name,
    disk_status,
    policy_sums,
    served_entry,
    short_claim,
    unresolved_entry,
)
from azsnap.reconciler.gone_disks import GoneDisks, owned_disks
from azsnap.reconciler.hidden_disks import incarnation_events, remembered
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, FinalizeReport, StatusReport
from azsnap.reconciler.verdicts import Verdicts

__all__ = ["ClaimReconciler", "DiskFlow", "disk_policy"]

#: A policy's disks reconciled at once (the pacer still spreads their Azure calls over the budget).
MAX_CONCURRENT_DISKS: Final = 8


class DiskFlow(Protocol):
    """The per-disk reconcile (`Reconciler.reconcile_disk`)."""

    async def __call__(
        self, policy: Policy, status: SnapshotPolicyStatus, *, on_demand_token: str | None = None
    ) -> StatusReport: ...


def disk_policy(policy: Policy, disk_id: str) -> Policy:
    """The policy for one disk of its claims: the spec names the disk and keeps its claim target.

    The claim target stays so that the scope check knows the disk came through a claim of the policy's namespace.
    """
    return Policy(ref=policy.ref, spec=policy.spec.model_copy(update={"disk": DiskRef(id=disk_id)}))


class ClaimReconciler:
    """Reconciles a volumeClaim or volumeClaimSelector policy, disk by disk."""

    def __init__(
        self,
        disk_flow: DiskFlow,
        cloud: CloudClient,
        clock: Clock,
        observer: Observer,
        verdicts: Verdicts,
        limits: Limits,
        stalled_recheck: timedelta,
    ) -> None:
        self.disk_flow = disk_flow
        self.cloud, self.clock, self.observer = cloud, clock, observer
        self.verdicts, self.limits, self.stalled_recheck = verdicts, limits, stalled_recheck
        recheck = int(stalled_recheck.total_seconds() // 60)
        self.gone = GoneDisks(cloud, clock, observer, verdicts, limits, recheck)

    async def reconcile(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        claims: ClaimView | None,
        on_demand_token: str | None,
    ) -> StatusReport:
        """Every claim's disk reconciled once; the policy's status with an entry per claim (bounded, worst first)."""
        now = self.clock.now()
        base: dict[str, Any] = {"schedule": schedule_summary(policy)}
        if schedule_changed(policy, status):
            base["slotsAccountedUntil"] = None  # the old watermark belongs to the old schedule
        invalid = validate_schedule(policy.spec.schedule)
        if invalid:
            message = "; ".join(invalid) + ". Fix the policy; azsnap made no Azure call."
            return self.verdicts.stalled("InvalidSpec", message, now, base)
        if claims is None:
            message = (
                "This policy targets PersistentVolumeClaims, but azsnap runs without a view of them. Run the operator "
                "with its handlers (azsnap run) and the chart's RBAC on persistentvolumeclaims and persistentvolumes."
            )
            return self.verdicts.stalled("ClaimsUnavailable", message, now, base)
        resolved = resolve_targets(policy.spec, policy.ref.namespace, claims)
        # A disk `status.disks` left out goes on from its compact account (missed slots, incarnation), and one whose
        # claim went away is found again by the policy's snapshots.
        memory = await remembered(self.observer, policy, status, resolved, on_demand_token)
        before = memory.before
        served: list[Served] = []
        entries: list[DiskEntry] = []
        problems: list[ClaimDisk] = []
        gone_events: list[Event] = []
        gone_fields: list[dict[str, Any]] = []
        disks = [t for t in resolved if t.disk_id is not None]
        gate = asyncio.Semaphore(MAX_CONCURRENT_DISKS)

        async def one(target: ClaimDisk) -> StatusReport:
            assert target.disk_id is not None  # only resolved claims are reconciled
            async with gate:
                previous = before.get(short_claim(target.claim))
                the_policy, the_status = disk_policy(policy, target.disk_id), disk_status(status, previous)
                return await self.disk_flow(the_policy, the_status, on_demand_token=on_demand_token)

        # The disks of one policy fall due together: reconciled side by side, they share one list of the
        # subscription (a list is fresh for 30 s) where one after the other they would outlast it.
        reports = dict(zip((t.claim for t in disks), await asyncio.gather(*(one(t) for t in disks)), strict=True))
        gone_events += incarnation_events(memory.accounts, reports)
        for target in resolved:
            name, previous = short_claim(target.claim), before.get(short_claim(target.claim))
            if target.disk_id is None:
                problems.append(target)
                if target.problem is ClaimProblem.CLAIM_NOT_FOUND and previous and previous.disk and previous.count:
                    entries.append(await self._gone(policy, status, previous, gone_events, gone_fields))
                    continue
                entries.append(unresolved_entry(name, previous, target.problem, target.message))
                continue
            report = reports[target.claim]
            served.append(Served(target.claim, target.disk_id, report))
            entries.append(served_entry(name, target.disk_id, previous, report))
        current = {short_claim(t.claim) for t in resolved}
        for name, previous in before.items():
            if name not in current and previous.disk and (previous.count or 0) > 0:
                entries.append(await self._gone(policy, status, previous, gone_events, gone_fields))
        gone = (gone_events, gone_fields, memory.carried)
        return self._aggregate(policy, status, base, resolved, served, problems, entries, gone, now)

    async def finalize(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        claims: ClaimView | None,
        finalize_disk: Callable[[Policy], Awaitable[FinalizeReport]],
    ) -> FinalizeReport:
        """The policy's deletion, disk by disk: every disk its claims, its status or its snapshots' tags name."""
        if policy.spec.deletion_policy is DeletionPolicy.RETAIN:
            return FinalizeReport(True, "deletionPolicy is Retain: the snapshots stay, with their ownership tags")
        known = [e.disk for e in status.disks or [] if e.disk]
        if claims is not None:
            known += [t.disk_id for t in resolve_targets(policy.spec, policy.ref.namespace, claims) if t.disk_id]
        try:  # every disk the policy snapshotted, listed in status.disks or not: its snapshots' tags tell
            known += await owned_disks(self.observer, policy.ref, known, policy.spec.snapshot.resource_group)
        except CloudError as exc:
            retry = self.verdicts.retry_delay(exc)
            return FinalizeReport(False, f"Azure answered {exc.message}; retrying", retry_after=retry)
        disks = list({d.lower(): d for d in known}.values())
        deleted: list[str] = []
        events: list[Event] = []
        for disk_id in disks:
            report = await finalize_disk(disk_policy(policy, disk_id))
            deleted += report.deleted
            events += report.events
            if not report.done:
                return FinalizeReport(
                    False, report.message, tuple(deleted), report.remaining, report.retry_after, tuple(events)
                )
        message = f"deleted {len(deleted)} snapshot(s) of {len(disks)} disk(s)"
        return FinalizeReport(True, message, tuple(deleted), events=tuple(bounded_events(events)))

    async def _gone(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        previous: DiskEntry,
        events: list[Event],
        fields: list[dict[str, Any]],
    ) -> DiskEntry:
        """A claim no longer targeted: no new snapshot; its disk's snapshots kept (or retired by ApplyRetention)."""
        entry, disk_fields = await self.gone.entry(policy, status, previous, events)
        fields.append(disk_fields)
        return entry

    def _aggregate(
        self,
        policy: Policy,
        status: SnapshotPolicyStatus,
        base: dict[str, Any],
        resolved: Sequence[ClaimDisk],
        served: Sequence[Served],
        problems: Sequence[ClaimDisk],
        entries: list[DiskEntry],
        gone: tuple[list[Event], list[dict[str, Any]], tuple[str, ...]],
        now: datetime,
    ) -> StatusReport:
        gone_events, gone_fields, carried = gone
        shown, hidden = bounded_entries(entries)
        in_view = {id(e) for e in shown}
        reports = [s.report for s in served]
        missed = tuple(sorted(slot for r in reports for slot in r.missed_slots))
        sums = policy_sums(policy, status, reports, entries, missed, gone_fields)
        token = sums.get("lastOnDemandToken") or status.last_on_demand_token
        left_out = [e for e in entries if id(e) not in in_view]
        accounts = encode_accounts(left_out, token)
        if carried:  # Azure could not tell the disks of these accounts this time: they are kept for the next
            accounts = sorted({*(accounts or ()), *carried})
        keys = (item.partition("=")[0] for item in carried)
        copies = copy_fields(policy.spec.copies, status.copies, status.copy_accounts, shown, left_out, keys)
        ready = sum(1 for s in served if s.report.health.state is HealthState.READY)
        fields: dict[str, Any] = {
            **base,
            **sums,
            "diskName": disk_name(served) if policy.spec.volume_claim is not None else None,
            "disks": [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in shown],
            "disksNotShown": hidden,
            "diskAccounts": accounts,
            "disksReady": f"{ready}/{len(resolved)}",
            **copies,  # the sums per target, with what the disks left out add (domain/copy_accounts.py)
        }
        health = claim_health(policy, served, problems, resolved)
        events = bounded_events([e for r in reports for e in r.events] + gone_events)
        wakes = [r.next_time for r in reports]
        if problems or not served:
            wakes.append(now + self.stalled_recheck)
        return StatusReport(
            health=health,
            status=fields,
            events=tuple(events),
            next_time=min(wakes),
            created=tuple(n for r in reports for n in r.created),
            deleted=tuple(n for r in reports for n in r.deleted),
            failed=tuple(n for r in reports for n in r.failed),
            missed_slots=missed,
            blocked=tuple(dict.fromkeys(b for r in reports for b in r.blocked)),
            failed_seen=tuple(n for r in reports for n in r.failed_seen),
            over_budget=next((r.over_budget for r in reports if r.over_budget), ""),
        )
