"""A policy's snapshots told one by one: which retention rules keep each, what holds it, what goes next; restore points.

This is retention's own decision (`retention.decide_retention`) read per snapshot, not a second retention: every
rule named here is one the decision gave. On top of it come the planner's two guards that stop a delete the
decision asks for: a suspended policy deletes nothing, and a snapshot whose name does not carry the hash of the
policy its tags name is never deleted on its tags alone. The caller names what else stops every delete
(`suspended`; `onSourceDiskDelete` for a gone disk whose policy keeps everything).

A *hold* is what keeps a snapshot whatever the counting rules say: the hold tag, the newest good snapshot (of
each incarnation of the disk), `minKeep`, a create or background copy still in progress, a source a
cross-region copy still needs, what stops every delete, and the name guard. A *restore point* is a snapshot Azure reports `Succeeded` with its data complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from azsnap.domain import naming
from azsnap.domain.models import RetentionSpec
from azsnap.domain.observed import Limits, Snapshot, SnapshotState
from azsnap.domain.retention import decide_retention, period_label, snapshot_time

__all__ = ["HOLDS", "STOPS", "Explanation", "RestorePoints", "explain", "restore_points"]

#: The keep reasons that are holds, and the guards that stop a delete retention asks for, in reading order.
HOLDS: Final = (
    "hold",
    "newest",
    "minKeep",
    "inProgress",
    "copySource",
    "suspended",
    "onSourceDiskDelete",
    "nameMismatch",
)
#: What may stop every delete of a policy: spec.suspend, or a gone disk under `onSourceDiskDelete: Keep`.
STOPS: Final = ("suspended", "onSourceDiskDelete")
_STOPPED: Final = {"suspended": "suspended", "onSourceDiskDelete": "disk gone, onSourceDiskDelete Keep"}
_TIERS: Final = ("hourly", "daily", "weekly", "monthly", "yearly")


@dataclass(frozen=True)
class Explanation:
    """One snapshot of a policy: what it is, which rules keep it and what holds it, or why it goes next."""

    snapshot: Snapshot
    #: The instant it is a copy of (retention's time); None when Azure reports no time and it has no slot tag.
    time: datetime | None
    slot: datetime | None
    state: SnapshotState
    #: The keep reasons retention gave (`retention.RULES`), plus a guard (`STOPS`, `nameMismatch`) that stops a delete.
    rules: tuple[str, ...]
    #: One phrase per rule for people, e.g. `daily 2026-03-29`, `keepLast 2/24`, `maxAge until 2026-04-02T10:00:00Z`.
    notes: tuple[str, ...]
    #: Of `rules`, those that are holds (`HOLDS`).
    holds: tuple[str, ...]
    #: Why the next reconcile deletes it; None when it stays.
    deleting: str | None
    #: Usable for a restore now: `Succeeded` with its data complete.
    restore_point: bool

    @property
    def held(self) -> bool:
        return bool(self.holds)


@dataclass(frozen=True)
class RestorePoints:
    """The snapshots a policy can restore from now: the newest, the oldest and how many."""

    newest: Snapshot | None
    oldest: Snapshot | None
    count: int


def _order(snapshots: Sequence[Snapshot], now: datetime) -> list[Snapshot]:
    """Newest first, by retention's time, the name breaking ties (as retention orders them)."""
    return sorted(snapshots, key=lambda s: (snapshot_time(s) or now, s.name), reverse=True)


def restore_points(owned: Sequence[Snapshot], now: datetime) -> RestorePoints:
    """The newest and oldest usable snapshot of `owned`, and how many there are."""
    good = _order([s for s in owned if s.state is SnapshotState.SUCCEEDED], now)
    return RestorePoints(newest=good[0] if good else None, oldest=good[-1] if good else None, count=len(good))


def _stamp(when: datetime) -> str:
    return naming.format_slot(when)


def explain(
    retention: RetentionSpec,
    zone: ZoneInfo,
    owned: Sequence[Snapshot],
    now: datetime,
    limits: Limits,
    *,
    stopped_by: str | None = None,
    copy_sources: Mapping[str, str] | None = None,
) -> list[Explanation]:
    """Every owned snapshot, newest first, with the rules retention keeps it by or the reason it deletes it.

    `stopped_by` (one of `STOPS`) names what stops every delete of the policy now; `copy_sources` the snapshots a
    cross-region copy still needs (name -> why), which retention's deletes pass over.
    """
    if stopped_by is not None and stopped_by not in STOPS:
        raise ValueError(f"stopped_by must be one of {', '.join(STOPS)}, not {stopped_by!r}")
    decision = decide_retention(retention, zone, owned, now, limits)
    ordered = _order(owned, now)
    good = [s for s in ordered if s.state is SnapshotState.SUCCEEDED and not naming.is_held(s)]
    rank = {s.name: i + 1 for i, s in enumerate(good)}
    newest_good = good[0].name if good else None
    out: list[Explanation] = []
    for s in ordered:
        when = snapshot_time(s)
        rules = list(decision.keep.get(s.name, ()))
        notes = [_note(rule, s, when or now, rank, len(good), newest_good, retention, zone, limits) for rule in rules]
        deleting = decision.delete.get(s.name)
        needed = (copy_sources or {}).get(s.name)
        if needed is not None:
            rules.append("copySource")
            notes.append(needed)
            deleting = None
        elif deleting is not None and stopped_by is not None:
            rules.append(stopped_by)
            notes.append(f"{_STOPPED[stopped_by]} (else deleted: {deleting})")
            deleting = None
        elif deleting is not None and not naming.name_matches_owner(s):
            rules.append("nameMismatch")
            notes.append("name names another policy: never deleted on its tags alone")
            deleting = None
        out.append(
            Explanation(
                snapshot=s,
                time=when,
                slot=naming.slot_of(s),
                state=s.state,
                rules=tuple(rules),
                notes=tuple(notes),
                holds=tuple(h for h in HOLDS if h in rules),
                deleting=deleting,
                restore_point=s.state is SnapshotState.SUCCEEDED,
            )
        )
    return out


def _note(
    rule: str,
    s: Snapshot,
    when: datetime,
    rank: dict[str, int],
    good: int,
    newest_good: str | None,
    retention: RetentionSpec,
    zone: ZoneInfo,
    limits: Limits,
) -> str:
    """A phrase for one keep reason of one snapshot."""
    if rule in _TIERS:
        return f"{rule} {period_label(rule, when, zone)}"
    if rule == "keepLast":
        return f"keepLast {rank[s.name]}/{retention.keep_last}"
    if rule == "minKeep":
        return f"minKeep {rank[s.name]}/{retention.min_keep}"
    if rule == "maxAge":
        return f"maxAge until {_stamp(when + (retention.max_age or timedelta(0)))}"
    if rule == "newest":
        return "newest good" if s.name == newest_good else "newest of an earlier disk incarnation"
    if rule == "hold":
        return "hold tag"
    if rule == "inProgress":
        if s.state is SnapshotState.COPYING:
            return f"copying {s.completion_percent or 0:.0f}%"
        return "creating" if s.state is SnapshotState.CREATING else f"state unknown ({s.provisioning_state or 'none'})"
    if rule == "failedGrace":
        return f"failed, kept until {_stamp((s.time_created or when) + limits.failed_grace)}"
    return rule  # a rule retention added later than this module: still named, never hidden
