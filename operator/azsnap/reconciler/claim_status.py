"""A claim policy's status: an entry per claim, the policy-wide sums over its disks, and its health (the worst wins)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.copy_status import disk_copies
from azsnap.domain.models import Policy
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.targets import DiskEntry
from azsnap.domain.volumes import ClaimDisk, ClaimProblem
from azsnap.reconciler.accounting import combined_restore_points
from azsnap.reconciler.act import iso
from azsnap.reconciler.report import StatusReport

__all__ = [
    "Served",
    "claim_health",
    "disk_name",
    "disk_status",
    "policy_sums",
    "served_entry",
    "short_claim",
    "unresolved_entry",
]

_MESSAGE: Final = 1024


def short_claim(claim: str) -> str:
    return claim.rpartition("/")[2]


def _time(value: Any) -> datetime | None:
    return None if not value else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class Served:
    """A claim whose disk was reconciled, with the per-disk flow's report."""

    claim: str
    disk_id: str
    report: StatusReport


def claim_health(
    policy: Policy,
    served: Sequence[Served],
    problems: Sequence[ClaimDisk],
    resolved: Sequence[ClaimDisk],
) -> Health:
    """Ready when every served disk is; else the worst served disk's state; with none served, why not."""
    unresolved = "; ".join(f"{short_claim(p.claim)}: {p.problem}" for p in problems[:5])
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
            return Health(state, h.reason, f"Claim {short_claim(worst.claim)} (disk {worst.disk_id}): {h.message}")
    ready = served[0].report.health
    if len(served) == 1 and not problems:
        return ready
    message = f"{len(served)} disk(s) snapshotted on schedule"
    if problems:
        message += f"; {len(problems)} claim(s) name no Azure disk ({unresolved})"
    reason = ready.reason if all(s.report.health.reason == ready.reason for s in served) else "Succeeded"
    return Health(HealthState.READY, reason, message + ".")


def disk_status(status: SnapshotPolicyStatus, entry: DiskEntry | None) -> SnapshotPolicyStatus:
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


def unresolved_entry(name: str, previous: DiskEntry | None, problem: ClaimProblem | None, message: str) -> DiskEntry:
    base = previous.model_copy() if previous is not None else DiskEntry(claim=name, state="Unresolved")
    return base.model_copy(
        update={"state": "Unresolved", "reason": str(problem or ""), "message": message[:_MESSAGE], "claim": name}
    )


def served_entry(name: str, disk_id: str, previous: DiskEntry | None, report: StatusReport) -> DiskEntry:
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


def policy_sums(
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
    cleared = {"diskUniqueId": None, "diskSnapshotCount": None}  # `copies`: summed by the caller (copy_fields)
    if policy.spec.suspend:
        cleared["nextSnapshotTime"] = None
    return {**kept, **cleared}


def disk_name(served: Sequence[Served]) -> str | None:
    return served[0].disk_id.rpartition("/")[2] if len(served) == 1 else None
