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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError
from azsnap.cloud.interface import CloudClient
from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.copy_accounts import copy_fields
from azsnap.domain.copy_status import disk_copies
from azsnap.domain.disk_accounts import encode_accounts
from azsnap.domain.models import DeletionPolicy, DiskRef, Policy, SnapshotPolicyStatus
from azsnap.domain.observed import Limits
from azsnap.domain.schedule import validate_schedule
from azsnap.domain.targets import ClaimView, DiskEntry, bounded_entries
from azsnap.domain.volumes import ClaimDisk, ClaimProblem, resolve_targets
from azsnap.reconciler.accounting import combined_restore_points, schedule_changed, schedule_summary
from azsnap.reconciler.act import iso
from azsnap.reconciler.claim_events import bounded_events
from azsnap.reconciler.gone_disks import GoneDisks, owned_disks
from azsnap.reconciler.hidden_disks import incarnation_events, remembered
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, FinalizeReport, StatusReport
from azsnap.reconciler.verdicts import Verdicts

__all__ = ["ClaimReconciler", "DiskFlow", "disk_policy"]

#: A policy's disks reconciled at once (the pacer still spreads their Azure calls over the budget).
MAX_CONCURRENT_DISKS: Final = 8
_MESSAGE: Final = 1024


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


def _short(claim: str) -> str:
    return claim.rpartition("/")[2]


def _time(value: Any) -> datetime | None:
    return None if not value else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class _Served:
    claim: str
    disk_id: str
    report: StatusReport


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
        served: list[_Served] = []
        entries: list[DiskEntry] = []
        problems: list[ClaimDisk] = []
        gone_events: list[Event] = []
        gone_fields: list[dict[str, Any]] = []
        disks = [t for t in resolved if t.disk_id is not None]
        gate = asyncio.Semaphore(MAX_CONCURRENT_DISKS)

        async def one(target: ClaimDisk) -> StatusReport:
            assert target.disk_id is not None  # only resolved claims are reconciled
            async with gate:
                previous = before.get(_short(target.claim))
                the_policy, the_status = disk_policy(policy, target.disk_id), _disk_status(status, previous)
                return await self.disk_flow(the_policy, the_status, on_demand_token=on_demand_token)

        # The disks of one policy fall due together: reconciled side by side, they share one list of the
        # subscription (a list is fresh for 30 s) where one after the other they would outlast it.
        reports = dict(zip((t.claim for t in disks), await asyncio.gather(*(one(t) for t in disks)), strict=True))
        gone_events += incarnation_events(memory.accounts, reports)
        for target in resolved:
            name, previous = _short(target.claim), before.get(_short(target.claim))
            if target.disk_id is None:
                problems.append(target)
                if target.problem is ClaimProblem.CLAIM_NOT_FOUND and previous and previous.disk and previous.count:
                    entries.append(await self._gone(policy, status, previous, gone_events, gone_fields))
                    continue
                entries.append(_unresolved(name, previous, target.problem, target.message))
                continue
            report = reports[target.claim]
            served.append(_Served(target.claim, target.disk_id, report))
            entries.append(_entry(name, target.disk_id, previous, report))
        current = {_short(t.claim) for t in resolved}
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
        served: Sequence[_Served],
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
        sums = _sums(policy, status, reports, entries, missed, gone_fields)
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
            "diskName": _disk_name(served) if policy.spec.volume_claim is not None else None,
            "disks": [e.model_dump(mode="json", by_alias=True, exclude_none=True) for e in shown],
            "disksNotShown": hidden,
            "diskAccounts": accounts,
            "disksReady": f"{ready}/{len(resolved)}",
            **copies,
        }
        health = self._health(policy, served, problems, resolved)
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

    def _health(
        self,
        policy: Policy,
        served: Sequence[_Served],
        problems: Sequence[ClaimDisk],
        resolved: Sequence[ClaimDisk],
    ) -> Health:
        unresolved = "; ".join(f"{_short(p.claim)}: {p.problem}" for p in problems[:5])
        if len(problems) > 5:
            unresolved += f"; and {len(problems) - 5} more (see status.disks)"
        if not served:
            if not resolved:
                selector = policy.spec.volume_claim_selector
                what = f"matches the selector {selector.summary()}" if selector else "is named"
                message = (
                    f"No PersistentVolumeClaim in namespace {policy.ref.namespace} {what}; azsnap covers each one "
                    "as soon as it is created."
                )
                return Health(HealthState.STALLED, "NoClaims", message)
            first = problems[0]
            only_pending = all(p.problem is ClaimProblem.CLAIM_PENDING for p in problems)
            state = HealthState.RETRYING if only_pending else HealthState.STALLED
            message = f"No claim names an Azure disk yet: {first.message}." + (
                f" Also: {unresolved}." if len(problems) > 1 else ""
            )
            return Health(state, str(first.problem), message[: _MESSAGE * 4])
        for state in (HealthState.STALLED, HealthState.RETRYING):
            worst = next((s for s in served if s.report.health.state is state), None)
            if worst is not None:
                h = worst.report.health
                return Health(state, h.reason, f"Claim {_short(worst.claim)} (disk {worst.disk_id}): {h.message}")
        ready = served[0].report.health
        if len(served) == 1 and not problems:
            return ready
        message = f"{len(served)} disk(s) snapshotted on schedule"
        if problems:
            message += f"; {len(problems)} claim(s) name no Azure disk ({unresolved})"
        reason = ready.reason if all(s.report.health.reason == ready.reason for s in served) else "Succeeded"
        return Health(HealthState.READY, reason, message + ".")


def _disk_status(status: SnapshotPolicyStatus, entry: DiskEntry | None) -> SnapshotPolicyStatus:
    """What the per-disk flow reads of its status: the policy's conditions and schedule, the disk's accounting."""
    if entry is None:  # a claim new to the policy: it serves on-demand requests from now on, not the past ones
        return SnapshotPolicyStatus(
            conditions=status.conditions, schedule=status.schedule, last_on_demand_token=status.last_on_demand_token
        )
    return SnapshotPolicyStatus(
        conditions=status.conditions,
        schedule=status.schedule,
        slots_accounted_until=entry.slots_accounted_until,
        missed_slots=entry.missed,
        disk_unique_id=entry.disk_unique_id,
        last_successful_snapshot_time=entry.last_successful_snapshot_time,
        snapshot_count=entry.count,
        last_on_demand_token=entry.last_on_demand_token or status.last_on_demand_token,
        copies=entry.copies,
    )


def _unresolved(name: str, previous: DiskEntry | None, problem: ClaimProblem | None, message: str) -> DiskEntry:
    base = previous.model_copy() if previous is not None else DiskEntry(claim=name, state="Unresolved")
    return base.model_copy(
        update={"state": "Unresolved", "reason": str(problem or ""), "message": message[:_MESSAGE], "claim": name}
    )


def _entry(name: str, disk_id: str, previous: DiskEntry | None, report: StatusReport) -> DiskEntry:
    f = report.status
    last = f.get("lastSnapshot") or {}
    known = previous.model_dump() if previous is not None and previous.disk == disk_id else {}
    fresh = {
        "last_snapshot_time": _time(last.get("createdTime")) if "lastSnapshot" in f else None,
        "last_successful_snapshot_time": _time(f.get("lastSuccessfulSnapshotTime")),
        "count": f.get("snapshotCount"),
        "missed": f.get("missedSlots"),
        "disk_unique_id": f.get("diskUniqueId"),
        "slots_accounted_until": _time(f.get("slotsAccountedUntil")),
        "last_on_demand_token": f.get("lastOnDemandToken"),
        "copies": disk_copies(f.get("copies")),
    }
    merged = {**known, **{k: v for k, v in fresh.items() if v is not None}}
    merged.update(
        claim=name,
        disk=disk_id,
        state=str(report.health.state),
        reason=report.health.reason,
        message=report.health.message[:_MESSAGE],
    )
    return DiskEntry.model_validate(merged)


def _sums(
    policy: Policy,
    status: SnapshotPolicyStatus,
    reports: Sequence[StatusReport],
    entries: Sequence[DiskEntry],
    missed: Sequence[datetime],
    gone_fields: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    """The policy-wide fields: totals, the newest snapshot, and the oldest of each disk's marks (for health).

    A gone claim's disk counts in what the policy holds (`snapshotCount`, `earlierIncarnations`, `restorePoints`).
    """
    fields = [r.status for r in reports]
    holding = [*fields, *gone_fields]
    lasts = [f["lastSnapshot"] for f in fields if f.get("lastSnapshot")]
    newest = max(lasts, key=lambda s: (s.get("createdTime") or "", s.get("name") or ""), default=None)

    def oldest(key: str) -> str | None:
        values = [f[key] for f in fields if f.get(key)]
        return min(values, key=lambda v: _time(v) or datetime.max) if values else None

    tokens = {f.get("lastOnDemandToken") for f in fields}
    sums: dict[str, Any] = {
        "lastSnapshot": newest,
        "lastSuccessfulSnapshotTime": oldest("lastSuccessfulSnapshotTime"),
        "nextSnapshotTime": oldest("nextSnapshotTime"),
        "slotsAccountedUntil": oldest("slotsAccountedUntil") or iso(status.slots_accounted_until),
        "snapshotCount": sum(e.count or 0 for e in entries),
        "earlierIncarnations": sum(int(f.get("earlierIncarnations") or 0) for f in holding),
        "diskSnapshotLimit": None if not fields else max(int(f.get("diskSnapshotLimit") or 0) for f in fields) or None,
        "missedSlots": (status.missed_slots or 0) + len(missed),
        "pendingDeletions": sum(int(f.get("pendingDeletions") or 0) for f in fields),
        "restorePoints": combined_restore_points(holding),
        "lastOnDemandToken": tokens.pop() if len(tokens) == 1 and None not in tokens else status.last_on_demand_token,
    }
    # A field no disk reported this time (Azure failed for all of them) keeps what the status holds.
    kept = {key: value for key, value in sums.items() if value is not None}
    cleared = {"diskUniqueId": None, "diskSnapshotCount": None}
    if policy.spec.suspend:
        cleared["nextSnapshotTime"] = None
    return {**kept, **cleared}


def _disk_name(served: Sequence[_Served]) -> str | None:
    return served[0].disk_id.rpartition("/")[2] if len(served) == 1 else None
