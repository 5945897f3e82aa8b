"""`azsnap simulate` with copy targets (`spec.copies`): the targets in the emulator, and what the copies cost and give.

The copies are made by the operator's own code (the reconciler's copy flow, planned by `domain/copies.py`) against
the emulator, which copies as Azure does (a queue, then a transfer; its four copy rules). `CopyWatch` only looks:
after every wake-up it notes each copy in the targets (when it ends or failed), the copies running per
subscription and region and per disk, and the wake-ups of a policy while its copy ran. The report counts the calls
the copies made (their PUTs, polls in the target region, deletes by the targets' retention), their concurrency
against the region's cap, and the copy lag (slot to copy complete) that bounds the RPO in the target region.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from azsnap.domain import naming, schedule
from azsnap.domain.copies import copy_lag_text
from azsnap.domain.models import SnapshotPolicySpec
from azsnap.domain.observed import Limits
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import DEMO_SUBSCRIPTION, Emulator, RecordedRequest

__all__ = ["COPY_LIST_FRESHNESS", "CopyWatch", "copies_summary", "copies_text", "copy_invariants"]

#: With copy targets, the shared list is read as often as the operator reads it: a copy is seen complete (and the
#: disk's next copy started) only from a list newer than its end.
COPY_LIST_FRESHNESS: Final = timedelta(seconds=30)
#: Where the cap came from when the caller does not say (`settings.copy_cap`).
DEFAULT_CAP_SOURCE: Final = "the operator's default"


class _Traced(Protocol):
    """What the watch reads of a simulated disk (`offline.simulate.DiskTrace`)."""

    name: str
    status: SnapshotPolicyStatus
    reconciles: int
    created: list[tuple[datetime, str, datetime | None]]


@dataclass
class _Copy:
    target: tuple[str, str, str]
    slot: datetime | None
    started: datetime
    end: datetime | None = None
    failed: bool = False


@dataclass
class CopyWatch:
    """What the copies of a simulated policy did, seen from the emulator after every wake-up."""

    #: (subscription, resource group, region) of each target, lower-cased.
    targets: list[tuple[str, str, str]]
    cap: int
    start: datetime
    copies: dict[str, _Copy] = field(default_factory=dict)
    most_in_region: Counter[tuple[str, str]] = field(default_factory=Counter)
    most_per_disk: int = 0
    #: Wake-ups of a policy that took no snapshot while its status showed a copy running (looks at the copy).
    looks: int = 0
    _reconciles: dict[str, int] = field(default_factory=dict)
    _running: dict[str, int] = field(default_factory=dict)
    #: The copies not yet seen to end, with their keys in the emulator.
    _open: dict[str, tuple[str, str, str]] = field(default_factory=dict)

    @classmethod
    def begin(cls, emulator: Emulator, spec: SnapshotPolicySpec, limits: Limits, start: datetime) -> CopyWatch | None:
        """Make the targets' resource groups in their regions; None when the policy has no copy target."""
        if not spec.copies:
            return None
        targets = []
        for target in spec.copies:
            sub = target.subscription_id or DEMO_SUBSCRIPTION
            emulator.add_resource_group(sub, target.resource_group, target.region)
            targets.append((sub.lower(), target.resource_group.lower(), target.region.lower()))
        return cls(targets, limits.max_parallel_copies, start)

    def observe(self, emulator: Emulator, traces: Sequence[_Traced], now: datetime) -> None:
        """Note the copies in the targets, what runs at once, and which policies just looked at a running copy."""
        store = emulator.store
        for sub, rg, region in self.targets:
            for record in store.snapshots.in_scope(sub, rg):
                if record.copy_source is None or record.name in self.copies:
                    continue
                slot_text = naming.tag(record.body.get("tags") or {}, naming.TAG_SLOT)
                started = datetime.fromisoformat(str(record.body["properties"]["timeCreated"]))
                slot = naming.parse_slot(slot_text) if slot_text else None
                self.copies[record.name] = _Copy((sub, rg, region), slot, started)
                self._open[record.name] = (
                    record.subscription_id.lower(),
                    record.resource_group.lower(),
                    record.name.lower(),
                )
        running = store.copies_running(now)
        regions = Counter((r.subscription_id.lower(), r.location.lower()) for r in running)
        for key, count in regions.items():
            self.most_in_region[key] = max(self.most_in_region[key], count)
        per_disk = Counter(r.copy_family for r in running)
        self.most_per_disk = max([self.most_per_disk, *per_disk.values()])
        for name in list(self._open):
            copy, found = self.copies[name], store.snapshots.get(self._open[name])
            if found is None:
                del self._open[name]  # deleted before it was seen to end (cannot be: only ended copies are deleted)
            elif not found.copying(now):
                copy.failed = found.copy_failed(now)
                # when the copy really ended (the emulator knows): its transfer counts from the queue's end
                minutes = timedelta(minutes=found.copy_minutes or 0.0)
                copy.end = found.copy_stop if copy.failed else found.created + minutes
                del self._open[name]
        for trace in traces:
            if trace.reconciles == self._reconciles.get(trace.name, 0):
                continue  # not woken now
            took = any(when == now for when, _, _ in trace.created[-4:])
            if self._running.get(trace.name) and not took:
                self.looks += 1
            self._reconciles[trace.name] = trace.reconciles
            self._running[trace.name] = sum(int(e.get("copiesRunning") or 0) for e in trace.status.copies or [])


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def copies_summary(
    watch: CopyWatch,
    statuses: Sequence[SnapshotPolicyStatus],
    requests: Sequence[RecordedRequest],
    spec: SnapshotPolicySpec,
    end: datetime,
) -> dict[str, Any]:
    """The `copies` part of the simulation's summary (JSON-ready), one entry per target plus the run's totals."""
    slots = schedule.slots_between(spec.schedule, watch.start, end)
    gap = max((b - a for a, b in itertools.pairwise(slots)), default=None)
    targets = []
    for sub, rg, region in watch.targets:
        mine = [c for c in watch.copies.values() if c.target == (sub, rg, region)]
        done = [c for c in mine if c.end is not None and not c.failed and c.slot is not None]
        lags = [(c.end - c.slot).total_seconds() for c in done if c.end is not None and c.slot is not None]
        inside = f"/resourcegroups/{rg}/"
        in_group = [r for r in requests if inside in r.path.lower() and r.status < 400]
        status = [e for s in statuses for e in s.copies or [] if str(e.get("resourceGroup", "")).lower() == rg]
        seen = [int(x) for e in status for x in e.get("recentLagSeconds") or ()]
        targets.append(
            {
                "region": region,
                "resource_group": rg,
                "subscription": sub,
                "copies_started": sum(1 for r in in_group if r.method == "PUT"),
                "copies_complete": len(done),
                "copies_failed": sum(1 for c in mine if c.failed),
                "copies_missed": sum(int(e.get("copiesMissed") or 0) for e in status),
                "copies_held": sum(int(e.get("copiesHeld") or 0) for e in status),
                "copies_deleted": sum(1 for r in in_group if r.method == "DELETE"),
                "polls_in_region": sum(
                    1 for r in requests if r.operation == "operations.get" and f"/locations/{region}/" in r.path.lower()
                ),
                "most_running_in_region": watch.most_in_region[(sub, region)],
                "lag_p50_s": round(statistics.median(lags)) if lags else None,
                "lag_p99_s": round(_percentile(lags, 0.99)) if lags else None,
                "lag_max_s": round(max(lags)) if lags else None,
                "status_lag_p50_s": round(statistics.median(seen)) if seen else None,
                "status_lag_max_s": max(seen) if seen else None,
            }
        )
    return {
        "schedule_gap_s": None if gap is None else round(gap.total_seconds()),
        "cap": watch.cap,
        "most_running_per_disk": watch.most_per_disk,
        "looks_while_copying": watch.looks,
        "targets": targets,
    }


def copy_invariants(summary: dict[str, Any]) -> dict[str, int]:
    """What must be 0: two copies of one disk at once, a region's cap passed."""
    return {
        "disks_copying_twice": int(summary["most_running_per_disk"] > 1),
        "copy_cap_passed": sum(1 for t in summary["targets"] if t["most_running_in_region"] > summary["cap"]),
    }


def copies_text(summary: dict[str, Any]) -> list[str]:
    """The report's lines about the copies."""
    gap = summary["schedule_gap_s"]
    lines = ["", "Copies (the operator's copy flow against the emulator's copies: 30 s of queue, then 5 minutes):"]
    for t in summary["targets"]:
        lines.append(
            f"  to {t['region']}/{t['resource_group']}: {t['copies_started']} CopyStart PUTs, {t['copies_complete']} "
            f"complete, {t['copies_failed']} failed, {t['copies_missed']} missed; {t['copies_held']} held at the "
            f"end, {t['copies_deleted']} deleted by the target's retention; {t['polls_in_region']} operation polls "
            "in the region."
        )
        lines.append(
            f"    running at once: at most {t['most_running_in_region']} in the region (cap {summary['cap']}, "
            f"{summary.get('cap_source') or DEFAULT_CAP_SOURCE}), "
            f"{summary['most_running_per_disk']} per disk; copy lag (slot to copy complete) p50 "
            f"{copy_lag_text(t['lag_p50_s'])}, p99 {copy_lag_text(t['lag_p99_s'])}, max {copy_lag_text(t['lag_max_s'])}; "
            f"as status reports it (seen complete) p50 {copy_lag_text(t['status_lag_p50_s'])}, "
            f"max {copy_lag_text(t['status_lag_max_s'])}."
        )
        if gap is not None and t["status_lag_max_s"] is not None:
            lines.append(
                f"    RPO in {t['region']}: the newest completed copy is at most "
                f"{copy_lag_text(gap + t['status_lag_max_s'])} old (the schedule's largest gap, "
                f"{copy_lag_text(gap)}, plus the largest lag status reports)."
            )
    lines.append(f"  Wake-ups that looked at a running copy: {summary['looks_while_copying']}.")
    return lines
