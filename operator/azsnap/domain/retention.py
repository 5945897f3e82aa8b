"""Retention: which of a policy's snapshots to keep, which to delete and why; and what a `Delete` finalizer removes.

Rules, applied to the policy's own snapshots:

- Only `Succeeded` snapshots count towards the rules. A snapshot's time is the instant it is a copy of: Azure's
  creation time (the slot tag when Azure reports none). A jittered scheduled snapshot is created after its slot,
  an on-demand one when it was asked for: ordering by slot tags would put them the wrong way round.
- `keepLast N` keeps the N newest; `maxAge` keeps those younger than it.
- Generational tiers (`hourly`, `daily`, `weekly`, `monthly`, `yearly`) keep the newest snapshot of each of the
  last N periods *that have a snapshot* (the restic/borg reading: a week without snapshots does not use up one
  of the N weeks). Periods are read on the wall clock of the schedule's zone; weeks are ISO weeks (Monday).
- `minKeep` keeps the newest `minKeep`; the newest of all is always kept (`newest`), and so is the newest of each
  earlier incarnation of the disk (a disk deleted and recreated under the same ARM ID: `naming.incarnation_of`),
  the last copy of a disk that is gone.
- A snapshot carrying the hold tag is kept (`hold`) and stays outside the rules: it never uses up a place.
- `Creating`, `Copying` and `Unknown` snapshots are kept (`inProgress`); `Failed` ones are kept for
  `limits.failed_grace` (`failedGrace`), then deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from azsnap.domain import naming
from azsnap.domain.durations import format_duration
from azsnap.domain.models import Policy, RetentionSpec
from azsnap.domain.observed import Disk, Limits, Snapshot, SnapshotState
from azsnap.domain.volumes import disk_ref

__all__ = [
    "RULES",
    "DeleteAction",
    "RetentionDecision",
    "decide_retention",
    "finalize_owned",
    "period_label",
    "plan_finalize",
    "snapshot_time",
]

#: Every reason a snapshot may be kept, in the order people read them.
RULES: Final = (
    "keepLast",
    "maxAge",
    "hourly",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "minKeep",
    "newest",
    "hold",
    "inProgress",
    "failedGrace",
)

_IN_PROGRESS: Final = frozenset({SnapshotState.CREATING, SnapshotState.COPYING, SnapshotState.UNKNOWN})


@dataclass(frozen=True)
class DeleteAction:
    """Delete one snapshot, for a reason a person can read."""

    snapshot: Snapshot
    reason: str


@dataclass(frozen=True)
class RetentionDecision:
    """The fate of every owned snapshot: kept (with the rules keeping it) or deleted (with the reason)."""

    keep: dict[str, tuple[str, ...]] = field(default_factory=dict)
    delete: dict[str, str] = field(default_factory=dict)
    #: The next instant at which the decision changes with no new snapshot (maxAge or failed grace runs out).
    next_change: datetime | None = None


def snapshot_time(snapshot: Snapshot) -> datetime | None:
    """The time retention reads: Azure's creation time, else the slot tag."""
    return snapshot.time_created or naming.slot_of(snapshot)


def _period_keys(zone: ZoneInfo) -> dict[str, Callable[[datetime], Hashable]]:
    def local(when: datetime) -> datetime:
        return when.astimezone(zone)

    return {
        # fold tells the two runs of a repeated hour apart
        "hourly": lambda t: (local(t).date(), local(t).hour, local(t).fold),
        "daily": lambda t: local(t).date(),
        "weekly": lambda t: local(t).isocalendar()[:2],
        "monthly": lambda t: (local(t).year, local(t).month),
        "yearly": lambda t: local(t).year,
    }


#: How each generational tier names its period (on the zone's wall clock), for people: the same periods as above.
_PERIOD_FORMATS: Final = {
    "hourly": "%Y-%m-%d %H:00",
    "daily": "%Y-%m-%d",
    "monthly": "%Y-%m",
    "yearly": "%Y",
}


def period_label(tier: str, when: datetime, zone: ZoneInfo) -> str:
    """The period of `tier` that `when` falls in, as a person reads it: `2026-03-29`, `2026-W13`, `2026-03`."""
    local = when.astimezone(zone)
    if tier == "weekly":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    label = local.strftime(_PERIOD_FORMATS[tier])
    if tier == "hourly" and local.fold:
        label += " (repeated)"  # the second run of an hour the clocks went back over
    return label


def decide_retention(
    retention: RetentionSpec,
    zone: ZoneInfo,
    owned: Sequence[Snapshot],
    now: datetime,
    limits: Limits,
) -> RetentionDecision:
    """Decide for each owned snapshot whether to keep it (and by which rules) or delete it (and why)."""
    keep: dict[str, list[str]] = {}
    delete: dict[str, str] = {}
    changes: list[datetime] = []

    def time_of(s: Snapshot) -> datetime:
        return snapshot_time(s) or now

    good: list[Snapshot] = []
    for s in owned:
        state = s.state
        if naming.is_held(s):
            keep.setdefault(s.name, []).append("hold")
        elif state in _IN_PROGRESS:
            keep.setdefault(s.name, []).append("inProgress")
        elif state is SnapshotState.FAILED:
            failed_at = s.time_created or time_of(s)
            expires = failed_at + limits.failed_grace
            if now < expires:
                keep.setdefault(s.name, []).append("failedGrace")
                changes.append(expires)
            else:
                delete[s.name] = f"failed in Azure and older than the {_fmt(limits.failed_grace)} grace period"
        else:
            good.append(s)

    # newest first; the name breaks ties so the decision never depends on listing order
    good.sort(key=lambda s: (time_of(s), s.name), reverse=True)
    rules: dict[str, list[str]] = {s.name: [] for s in good}
    if retention.keep_last is not None:
        for s in good[: retention.keep_last]:
            rules[s.name].append("keepLast")
    if retention.max_age is not None:
        for s in good:
            expires = time_of(s) + retention.max_age
            if now < expires:
                rules[s.name].append("maxAge")
                changes.append(expires)
    tiers = {
        "hourly": retention.hourly,
        "daily": retention.daily,
        "weekly": retention.weekly,
        "monthly": retention.monthly,
        "yearly": retention.yearly,
    }
    keys = _period_keys(zone)
    for tier, count in tiers.items():
        if count is None:
            continue
        seen: set[Hashable] = set()
        for s in good:
            if len(seen) >= count:
                break
            key = keys[tier](time_of(s))
            if key not in seen:
                seen.add(key)
                rules[s.name].append(tier)
    for s in good[: retention.min_keep]:
        rules[s.name].append("minKeep")
    newest_of: set[str] = set()
    for s in good:
        if naming.incarnation_of(s) not in newest_of:
            newest_of.add(naming.incarnation_of(s))
            rules[s.name].append("newest")

    described = _describe(retention)
    for s in good:
        if rules[s.name]:
            keep.setdefault(s.name, []).extend(rules[s.name])
        else:
            delete[s.name] = f"kept by no retention rule ({described})"

    future = [c for c in changes if c > now]
    return RetentionDecision(
        keep={name: tuple(reasons) for name, reasons in keep.items()},
        delete=delete,
        next_change=min(future, default=None),
    )


def _fmt(value: object) -> str:
    return format_duration(value) if isinstance(value, timedelta) else str(value)


def _describe(retention: RetentionSpec) -> str:
    parts = [
        f"{name} {_fmt(value)}"
        for name, value in (
            ("keepLast", retention.keep_last),
            ("maxAge", retention.max_age),
            ("hourly", retention.hourly),
            ("daily", retention.daily),
            ("weekly", retention.weekly),
            ("monthly", retention.monthly),
            ("yearly", retention.yearly),
        )
        if value is not None
    ]
    parts.append(f"minKeep {retention.min_keep}")
    return ", ".join(parts)


def finalize_owned(snapshot: Snapshot, policy: Policy, disk: Disk | None) -> bool:
    """Ownership when the policy is being deleted.

    With the disk present, `naming.is_owned`. With the disk gone (None) its unique ID cannot be compared, so a
    snapshot is the policy's when the managed-by and policy-UID tags match, it carries a disk-UID tag, and
    Azure's source resource ID (when still reported) is the policy's disk.
    """
    if disk is not None:
        return naming.is_owned(snapshot, policy.ref, disk)
    tags = snapshot.tags
    source = snapshot.source_resource_id
    return (
        naming.tag(tags, naming.TAG_MANAGED_BY) == naming.MANAGED_BY_VALUE
        and naming.tag(tags, naming.TAG_POLICY_UID) == policy.ref.uid
        and bool(naming.tag(tags, naming.TAG_DISK_UID))
        and (source is None or source.lower() == disk_ref(policy.spec).id.lower())
    )


def plan_finalize(
    policy: Policy,
    disk: Disk | None,
    observed: Sequence[Snapshot],
    now: datetime,
) -> list[DeleteAction]:
    """For `deletionPolicy: Delete`: every snapshot of the policy, except held ones and ones still in progress.

    In-progress snapshots are left for a later call (they can be deleted once they settle); `now` is accepted
    for symmetry with the planner and keeps the order stable when creation times are missing.
    """
    doomed = [
        s for s in observed if finalize_owned(s, policy, disk) and not naming.is_held(s) and s.state not in _IN_PROGRESS
    ]
    doomed.sort(key=lambda s: (snapshot_time(s) or now.astimezone(UTC), s.name))
    return [DeleteAction(s, "the policy is being deleted and its deletionPolicy is Delete") for s in doomed]
