"""Cross-region copies, pure: which snapshot to copy next to a target, what is done, missed or lost, and what stays.

Azure's rules (Microsoft Learn, "Copy an incremental snapshot to a new region") shape the plan: snapshots of a
disk are copied in the order they were created, one at a time per disk, at most `room` more per subscription and
target region; the source must not be deleted while its copy runs. So, per disk and target:

- the policy's `Succeeded` snapshots are walked oldest first from the target's watermark (`accountedUntil`, a
  source creation time kept in status); a completed copy passes the watermark and gives a lag sample (slot to
  the copy seen complete), a copy in progress stops the walk, a snapshot without a completed copy is copied
  (attempt 1, then `-r2`, `-r3` after a `copyCompletionError`) until `copyDeadline` after its creation, then
  counted missed; a copy whose source was deleted mid-copy (`CopySourceNotFound`) is counted missed and
  reported as lost, never skipped silently;
- source retention never deletes a snapshot whose copy runs, the newest one copied (the base of the next
  incremental copy), nor one still waiting for its copy within its deadline (`protected`);
- the target's own retention (`spec.copies[].retention`, else the policy's) applies to the completed copies.

Copies are owned by tags as sources are: managed-by, policy UID, disk unique ID and slot, plus the copy role,
the source's name and creation time, and a hash of the disk's ARM ID (a copy's `sourceResourceId` is a snapshot).
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from azsnap.domain import naming
from azsnap.domain.models import CopyTarget, Policy
from azsnap.domain.observed import Limits, Snapshot, SnapshotState
from azsnap.domain.retention import DeleteAction, decide_retention

__all__ = [
    "MAX_LAG_SAMPLES",
    "ROLE_COPY",
    "SOURCE_NOT_FOUND",
    "TAG_COPY_DISK",
    "TAG_COPY_OF",
    "TAG_ROLE",
    "CopyAction",
    "CopyPlan",
    "TargetState",
    "copy_done_estimate",
    "copy_name",
    "copy_tags",
    "disk_hash",
    "is_copy_of_policy",
    "plan_copies",
    "status_of",
    "target_key",
    "target_tag",
]

TAG_ROLE: Final = "azsnap-role"
ROLE_COPY: Final = "copy"
#: The source snapshot's name and creation time (UTC), and a hash of the source disk's ARM ID.
TAG_COPY_OF: Final = "azsnap-copy-of"
TAG_SOURCE_TIME: Final = "azsnap-source-time"
TAG_COPY_DISK: Final = "azsnap-copy-disk"
SOURCE_NOT_FOUND: Final = "CopySourceNotFound"
#: At most this many copies are asked for one snapshot (a retry after one ended with `copyCompletionError`).
MAX_COPY_ATTEMPTS: Final = 3
#: Lag samples kept in status per target (for p50 and max).
MAX_LAG_SAMPLES: Final = 48
_MAX_NAME: Final = 80
#: The tail of every azsnap source name: `-<8 hex>-<YYYYMMDDTHHMMZ>` and an optional `-od`/`-rN`.
_TAIL: Final = 26


def target_key(target: CopyTarget, default_subscription: str) -> tuple[str, str, str]:
    """(subscription, resource group, region) of a target, lower-cased."""
    sub = target.subscription_id or default_subscription
    return (sub.lower(), target.resource_group.lower(), target.region.lower())


def disk_hash(disk_id: str) -> str:
    return hashlib.sha256(disk_id.lower().encode()).hexdigest()[:16]


def target_tag(target: tuple[str, str, str]) -> str:
    """4 hex digits for a target (`target_key`): they end its copies' names (`-c<tag>`)."""
    return hashlib.sha256("/".join(target).encode()).hexdigest()[:4]


def copy_name(source_name: str, target: tuple[str, str, str], attempt: int = 1) -> str:
    """`<source name>-c<target hash>[rN]`, within Azure's 80 characters (the source's disk prefix gives way)."""
    if not 1 <= attempt <= MAX_COPY_ATTEMPTS:
        raise ValueError(f"attempt must be 1-{MAX_COPY_ATTEMPTS}, not {attempt}")
    suffix = "-c" + target_tag(target) + (f"r{attempt}" if attempt > 1 else "")
    overflow = len(source_name) + len(suffix) - _MAX_NAME
    if overflow > 0:
        head, tail = source_name[:-_TAIL], source_name[-_TAIL:]
        source_name = head[: len(head) - overflow] + tail
    return source_name + suffix


def copy_tags(source: Snapshot, disk_id: str) -> dict[str, str]:
    """The source's ownership tags, plus the copy role, its source's name and time, and the disk's hash."""
    keep = (
        naming.TAG_MANAGED_BY,
        naming.TAG_POLICY_UID,
        naming.TAG_POLICY,
        naming.TAG_DISK_UID,
        naming.TAG_SLOT,
        naming.TAG_KIND,
    )
    tags = {k: v for k in keep if (v := naming.tag(source.tags, k)) is not None}
    created = source.time_created or naming.slot_of(source)
    tags |= {TAG_ROLE: ROLE_COPY, TAG_COPY_OF: source.name, TAG_COPY_DISK: disk_hash(disk_id)}
    if created is not None:
        tags[TAG_SOURCE_TIME] = created.isoformat()
    return tags


def is_copy_of_policy(snapshot: Snapshot, policy_uid: str, disk_id: str) -> bool:
    """True only for a copy azsnap made for this policy of this disk's snapshots (tags and name agree)."""
    return (
        naming.tag(snapshot.tags, naming.TAG_MANAGED_BY) == naming.MANAGED_BY_VALUE
        and naming.tag(snapshot.tags, naming.TAG_POLICY_UID) == policy_uid
        and naming.tag(snapshot.tags, TAG_ROLE) == ROLE_COPY
        and naming.tag(snapshot.tags, TAG_COPY_DISK) == disk_hash(disk_id)
        and bool(naming.tag(snapshot.tags, naming.TAG_DISK_UID))
        and naming.name_matches_owner(snapshot)
    )


@dataclass(frozen=True)
class TargetState:
    """What status remembers of one target: the watermark, the copies counted missed, recent lag samples."""

    accounted_until: datetime | None = None
    missed: int = 0
    lags: tuple[float, ...] = ()
    #: Status holds nothing for the target (a claim's disk that status.disks leaves out, a status lost).
    unknown: bool = False

    @classmethod
    def from_status(cls, raw: Mapping[str, Any] | None) -> TargetState:
        if not raw:
            return cls(unknown=True)
        until = raw.get("accountedUntil")
        lags = raw.get("recentLagSeconds") or ()
        return cls(
            accounted_until=_parse_time(until),
            missed=int(raw.get("copiesMissed") or 0),
            lags=tuple(float(x) for x in lags if isinstance(x, int | float)),
        )


@dataclass(frozen=True)
class CopyAction:
    """Start copying `source` to the target as `name`."""

    source: Snapshot
    name: str
    tags: Mapping[str, str]
    attempt: int


@dataclass(frozen=True)
class CopyPlan:
    """One disk and target: what to start, what runs, what was done, missed or lost, what to delete and keep."""

    start: CopyAction | None
    running: Snapshot | None
    state: TargetState
    #: Sources newly counted missed, with why (`deadline`, `sourceDeleted`).
    missed: tuple[tuple[str, str], ...]
    deletes: tuple[DeleteAction, ...]
    protected: frozenset[str]
    #: Why a copy that is due was not started (`RegionBusy`, `DiskBusy`), or "".
    blocked: str = ""
    newest_copied: Snapshot | None = None
    held: int = 0
    copies: tuple[Snapshot, ...] = field(default=())
    #: The newest snapshot past its copy deadline that has no completed copy (at it or after it), if any:
    #: the target's restore point is behind what the deadline promises.
    overdue: Snapshot | None = None

    @property
    def lag_p50(self) -> float | None:
        return statistics.median(self.state.lags) if self.state.lags else None

    @property
    def lag_max(self) -> float | None:
        return max(self.state.lags) if self.state.lags else None


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _source_time(copy: Snapshot) -> datetime | None:
    return _parse_time(naming.tag(copy.tags, TAG_SOURCE_TIME))


def _attempt(copy: Snapshot) -> int:
    tail = copy.name.rsplit("-c", 1)[-1]
    return int(tail[5:]) if len(tail) > 5 and tail[4] == "r" and tail[5:].isdigit() else 1


def _restore_point(source: Snapshot) -> datetime:
    slot = naming.slot_of(source)
    return slot if slot is not None and not naming.is_on_demand(source) else source.time_created or slot or datetime.min


def plan_copies(
    policy: Policy,
    disk_id: str,
    target: CopyTarget,
    sources: Sequence[Snapshot],
    copies: Iterable[Snapshot],
    state: TargetState,
    now: datetime,
    limits: Limits,
    *,
    room: int,
    disk_busy: bool,
    default_subscription: str,
) -> CopyPlan:
    """Plan one target for one disk. `sources`: the policy's snapshots of the disk; `copies`: those in the target.

    `room`: copies that may still start in the target's subscription and region; `disk_busy`: a copy of this
    disk to another target runs. Computed twice on the same observation it asks for the same name.
    """
    key = target_key(target, default_subscription)
    mine = sorted((c for c in copies if is_copy_of_policy(c, policy.ref.uid, disk_id)), key=lambda c: c.name)
    by_source: dict[str, list[Snapshot]] = {}
    for c in mine:
        by_source.setdefault(naming.tag(c.tags, TAG_COPY_OF) or "", []).append(c)
    present = {s.name for s in sources}
    watermark, missed_count, lags = state.accounted_until, state.missed, list(state.lags)
    if state.unknown:  # no status kept: go on from the newest completed copy rather than count the past again
        watermark = max(
            (t for c in mine if c.state is SnapshotState.SUCCEEDED and (t := _source_time(c))), default=None
        )
    items: list[tuple[datetime, Snapshot | None, str]] = [
        (s.time_created, s, s.name)
        for s in sources
        if s.time_created is not None and (watermark is None or s.time_created > watermark)
    ]
    for name, attempts in by_source.items():  # copies whose source is gone: lost if the source vanished mid-copy
        when = _source_time(attempts[0])
        lost = any(c.copy_error == SOURCE_NOT_FOUND for c in attempts)
        if lost and name not in present and when is not None and (watermark is None or when > watermark):
            items.append((when, None, name))
    items.sort(key=lambda item: (item[0], item[2]))

    start: CopyAction | None = None
    running: Snapshot | None = None
    blocked = ""
    missed: list[tuple[str, str]] = []
    protected: set[str] = set()
    for when, source, name in items:
        attempts = sorted(by_source.get(name, []), key=_attempt)
        latest = attempts[-1] if attempts else None
        if source is None:
            missed.append((name, "sourceDeleted"))
        elif source.state is SnapshotState.FAILED:
            pass  # nothing to copy; the source's own accounting counts the slot
        elif source.state is not SnapshotState.SUCCEEDED:
            protected.add(source.name)
            break  # not ready yet, and later ones must wait for it (creation order)
        elif latest is not None and latest.state is SnapshotState.SUCCEEDED:
            lags.append(max(0.0, (now - _restore_point(source)).total_seconds()))
        elif latest is not None and latest.state in (SnapshotState.COPYING, SnapshotState.CREATING):
            running = latest
            protected.add(source.name)
            break
        elif latest is not None and latest.state is SnapshotState.UNKNOWN:
            protected.add(source.name)
            break
        elif now >= when + target.copy_deadline or len(attempts) >= MAX_COPY_ATTEMPTS:
            missed.append((name, "deadline"))
        else:
            protected.add(source.name)
            if disk_busy:
                blocked = "DiskBusy"
            elif room <= 0:
                blocked = "RegionBusy"
            else:
                attempt = max((_attempt(c) for c in attempts), default=0) + 1
                start = CopyAction(source, copy_name(source.name, key, attempt), copy_tags(source, disk_id), attempt)
            break
        watermark = when
    missed_count += len(missed)

    complete = [c for c in mine if c.state is SnapshotState.SUCCEEDED]
    newest = max(complete, key=lambda c: (_source_time(c) or datetime.min, c.name), default=None)
    base = naming.tag(newest.tags, TAG_COPY_OF) if newest is not None else None
    if base is not None and base in present:
        protected.add(base)  # the base of the next incremental copy
    for source in sources:  # a source whose copy is still due within its deadline waits for it
        created = source.time_created
        if created is None or source.state is not SnapshotState.SUCCEEDED or now >= created + target.copy_deadline:
            continue
        if watermark is None or created > watermark:
            protected.add(source.name)
    deletes = _copy_retention(policy, target, mine, watermark, now, limits)
    copied_until = _source_time(newest) if newest is not None else None
    due = [
        s
        for s in sources
        if s.state is SnapshotState.SUCCEEDED
        and s.time_created is not None
        and s.time_created + target.copy_deadline <= now
        and (copied_until is None or s.time_created > copied_until)
    ]
    return CopyPlan(
        start=start,
        running=running,
        state=TargetState(watermark, missed_count, tuple(lags[-MAX_LAG_SAMPLES:])),
        missed=tuple(missed),
        deletes=deletes,
        protected=frozenset(protected),
        blocked=blocked,
        newest_copied=newest,
        held=len(complete),
        copies=tuple(mine),
        overdue=max(due, key=lambda s: (s.time_created or now, s.name), default=None),
    )


def _copy_retention(
    policy: Policy,
    target: CopyTarget,
    mine: Sequence[Snapshot],
    watermark: datetime | None,
    now: datetime,
    limits: Limits,
) -> tuple[DeleteAction, ...]:
    """The target's retention on its completed copies; failed attempts go once their source is accounted for."""
    retention = target.retention or policy.spec.retention
    zone = ZoneInfo(policy.spec.schedule.time_zone)
    # A copy's sourceUniqueId is its source snapshot's: the disk's incarnation is in the disk-UID tag.
    good = [replace(c, source_unique_id=None) for c in mine if c.state is not SnapshotState.FAILED]
    decision = decide_retention(retention, zone, good, now, limits)
    deletes = [DeleteAction(c, decision.delete[c.name]) for c in good if c.name in decision.delete]
    for c in mine:
        when = _source_time(c)
        done = watermark is not None and when is not None and when <= watermark
        if c.state is SnapshotState.FAILED and not naming.is_held(c) and done:
            deletes.append(
                DeleteAction(c, f"its copy failed ({c.copy_error or 'Failed'}) and its source is accounted for")
            )
    return tuple(deletes)


def copy_done_estimate(copy: Snapshot, now: datetime) -> datetime | None:
    """When a running copy completes at the pace it has shown since it started (`completionPercent`), if known."""
    started, percent = copy.time_created, copy.completion_percent
    if started is None or percent is None or not 0 < percent < 100:
        return None
    return started + (now - started) * (100.0 / percent)


def copy_lag_text(seconds: float | None) -> str:
    """A lag for people: `42m`, `3h05m`, or `-`."""
    if seconds is None:
        return "-"
    minutes = int(seconds // 60)
    return f"{minutes}m" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def status_of(target: CopyTarget, plan: CopyPlan, default_subscription: str) -> dict[str, Any]:
    """The target's entry in `status.copies` (camelCase, as the CRD declares it)."""
    newest = plan.newest_copied
    newest_slot = naming.slot_of(newest) if newest is not None else None
    entry: dict[str, Any] = {
        "region": target.region,
        "resourceGroup": target.resource_group,
        "subscriptionId": target.subscription_id or default_subscription,
        "copiesHeld": plan.held,
        "copiesRunning": 1 if plan.running is not None or plan.start is not None else 0,
        "copiesMissed": plan.state.missed,
        "newestCopiedSlot": naming.format_slot(newest_slot) if newest_slot else None,
        "accountedUntil": plan.state.accounted_until.isoformat() if plan.state.accounted_until else None,
        "lagP50Seconds": None if plan.lag_p50 is None else int(plan.lag_p50),
        "lagMaxSeconds": None if plan.lag_max is None else int(plan.lag_max),
        "recentLagSeconds": [int(x) for x in plan.state.lags],
    }
    return {k: v for k, v in entry.items() if v is not None}  # a null inside a status list item is invalid
