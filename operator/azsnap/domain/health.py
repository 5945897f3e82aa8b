"""The health model: whether a policy's backups are as fresh as its schedule allows, as a verdict a person can act on.

A reconcile reports what it did (`Health`: Ready, Retrying or Stalled). That is not enough to trust a backup: a
create can be throttled for hours, a snapshot can end `Failed` after it was created, Azure's budget can be too small
for every policy. `assess` looks at the policy's snapshot history against its schedule and turns such states into
`Stalled` with a reason and a message (kstatus: Failed; Argo CD: Degraded; Ready=False). Rules, first match wins:

1. the reconcile's own `Stalled` (a bad spec, a refused scope, a missing disk, missing rights, the disk's cap);
2. `spec.suspend`: the reconcile's verdict (Ready, reason Suspended): nothing is owed while suspended;
3. `OverBudget`: slots were missed because Azure's request budget could not serve their creates in time;
4. `SnapshotFailed`: the policy's newest snapshot ended `Failed` in Azure;
5. `SlotsMissed`: slots were counted missed and no good snapshot has been taken since;
6. `SnapshotOverdue`: the latest slot whose window (slot + jitter offset + `startingDeadline`) has closed is
   neither taken nor accounted for (the backstop for a reconcile that never got to count it).

States 3 and 5 stay until a good snapshot for a slot after the one that was missed exists (the Ready condition's
`lastTransitionTime` is the memory); 4 until a newer snapshot succeeds; all of them clear by themselves. Pure: `now`
is an argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, Final

from azsnap.domain import schedule
from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.durations import format_duration
from azsnap.domain.models import ScheduleSpec

__all__ = ["STICKY_REASONS", "BackupFacts", "Freshness", "assess", "freshness", "with_drill"]

#: Reasons that stay until a good snapshot newer than the moment Ready turned False exists.
STICKY_REASONS: Final = frozenset({"SlotsMissed", "OverBudget"})
#: The longest gap is looked for over the first of these spans (from the latest slot) that holds enough slots: two
#: weeks of an hourly schedule, a year of a monthly one.
_GAP_SLOTS: Final = 12
_GAP_SPANS: Final = (timedelta(days=15), timedelta(days=370))


@dataclass(frozen=True)
class Freshness:
    """How often a policy's schedule fires and how old its newest good snapshot may get."""

    #: The longest gap between two consecutive slots around now (Friday to Monday for a weekday schedule).
    expected_interval: timedelta
    #: The newest good snapshot is overdue once older than this: the interval, the disk's jitter offset and the
    #: `startingDeadline` (the whole window in which the next slot may still be taken).
    stale_after: timedelta


@dataclass(frozen=True)
class BackupFacts:
    """What the health model needs to know about a policy after a reconcile."""

    schedule: ScheduleSpec
    #: The disk's jitter offset (a slot is due at slot + offset).
    offset: timedelta
    suspended: bool
    #: The policy's `metadata.creationTimestamp`: slots whose window closed before it are not owed.
    created: datetime | None
    last_success: datetime | None
    last_snapshot_name: str | None
    last_snapshot_state: str | None
    #: Slots up to here are accounted for (taken, counted missed or skipped while suspended).
    accounted_until: datetime | None
    #: Slots this reconcile counted missed.
    missed_now: Sequence[datetime]
    #: Non-empty when slots were missed because Azure's budget could not serve them (says why).
    over_budget: str = ""


@lru_cache(maxsize=256)
def _longest_gap(cron: str | None, every: timedelta | None, zone: str, hour: datetime) -> timedelta | None:
    spec = ScheduleSpec(cron=cron, every=every, time_zone=zone)
    start = schedule.previous_slot(spec, hour) or hour
    slots = [start]
    for span in _GAP_SPANS:
        slots = [start, *schedule.slots_between(spec, start, start + span)]
        if len(slots) >= _GAP_SLOTS:
            break
    if len(slots) < 2:
        try:
            slots.append(schedule.next_slot(spec, start))
        except ValueError:
            return None
    return max(b - a for a, b in pairwise(slots))


def freshness(spec: ScheduleSpec, offset: timedelta, now: datetime) -> Freshness | None:
    """The schedule's expected interval and staleness threshold at `now`; None if it never fires."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    gap = _longest_gap(spec.cron, spec.every, spec.time_zone, hour)
    if gap is None:
        return None
    return Freshness(expected_interval=gap, stale_after=gap + offset + spec.starting_deadline)


def _iso(when: datetime | None) -> str:
    return "none yet" if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ago(now: datetime, when: datetime | None) -> str:
    if when is None:
        return "there is no good snapshot yet"
    age = timedelta(minutes=max(now - when, timedelta(0)) // timedelta(minutes=1))
    return f"the newest good snapshot is from {_iso(when)} ({format_duration(age)} ago)"


def _parse(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _previous_ready(conditions: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == "Ready"), None)


def _closed_slot(facts: BackupFacts, now: datetime) -> datetime | None:
    """The latest slot whose window (slot + offset + startingDeadline) has closed by `now`."""
    return schedule.previous_slot(facts.schedule, now - facts.offset - facts.schedule.starting_deadline)


def assess(
    reported: Health,
    facts: BackupFacts,
    previous: Sequence[Mapping[str, Any]],
    now: datetime,
) -> Health:
    """The verdict to write: the reconcile's own, or a Stalled one when the backups are not what the schedule owes."""
    if reported.state is HealthState.STALLED or facts.suspended:
        return reported
    retry = f" Meanwhile: {reported.message}" if reported.state is HealthState.RETRYING else ""
    ready = _previous_ready(previous)
    since = _parse(ready.get("lastTransitionTime")) if ready is not None and ready.get("status") == "False" else None
    sticky = str(ready.get("reason")) if ready is not None and since is not None else ""
    # Ready turned False at `since`, at least a startingDeadline (and the jitter offset) after the slot it missed: a
    # good snapshot for any later slot (`lastSuccessfulSnapshotTime` is its slot time) lies past that point.
    horizon = None if since is None else since - facts.offset - facts.schedule.starting_deadline
    recovered_since = facts.last_success is not None and horizon is not None and facts.last_success > horizon

    if facts.over_budget or (sticky == "OverBudget" and not recovered_since):
        why = facts.over_budget or (str(ready.get("message") or "") if ready is not None else "")
        if not facts.over_budget:
            return Health(HealthState.STALLED, "OverBudget", why)
        message = (
            f"Slot missed, {why.rstrip('.')}; {_ago(now, facts.last_success)}. Spread the policies' schedules "
            "(jitter, other minutes), lower their number per subscription and region, or ask Azure for a higher "
            "limit; Ready returns by itself after the next good snapshot."
        )
        return Health(HealthState.STALLED, "OverBudget", message + retry)

    if facts.last_snapshot_state == "Failed":
        message = (
            f"Snapshot {facts.last_snapshot_name} ended Failed in Azure; {_ago(now, facts.last_success)}. "
            "Check the disk in the Azure portal and the policy's events; azsnap takes the next slot as usual "
            "and Ready returns by itself when a newer snapshot succeeds."
        )
        return Health(HealthState.STALLED, "SnapshotFailed", message + retry)

    missed = [slot for slot in facts.missed_now if facts.last_success is None or facts.last_success < slot]
    if missed or (sticky == "SlotsMissed" and not recovered_since):
        if missed:
            head = f"{len(missed)} scheduled slot(s) missed, the latest {_iso(max(missed))}"
        else:
            head = f"Scheduled slots missed since {_iso(since)}"
        message = (
            f"{head}; {_ago(now, facts.last_success)}. Check the policy's events and Azure throttling "
            "(azsnap_azure_throttled_total); Ready returns by itself after the next good snapshot."
        )
        return Health(HealthState.STALLED, "SlotsMissed", message + retry)

    closed = _closed_slot(facts, now)
    owed = closed is not None and (
        facts.created is None or closed + facts.offset + facts.schedule.starting_deadline > facts.created
    )
    unaccounted = facts.accounted_until is None or (closed is not None and closed > facts.accounted_until)
    if owed and unaccounted and closed is not None and (facts.last_success is None or facts.last_success < closed):
        message = (
            f"The snapshot for slot {_iso(closed)} was not taken within its startingDeadline "
            f"({format_duration(facts.schedule.starting_deadline)}); {_ago(now, facts.last_success)}. Check the "
            "operator's logs and the policy's events; Ready returns by itself after the next good snapshot."
        )
        return Health(HealthState.STALLED, "SnapshotOverdue", message + retry)
    return reported


def with_drill(health: Health, last_verified: Mapping[str, Any] | None) -> Health:
    """A policy whose last restore drill failed is not Ready: its snapshots are not proved to restore.

    Only a Ready verdict is turned (the others already say what is wrong); the next drill that succeeds clears it.
    """
    if health.state is not HealthState.READY or not last_verified or last_verified.get("result") != "Failed":
        return health
    of = f" of claim {last_verified['claim']}'s disk {last_verified.get('disk')}" if last_verified.get("claim") else ""
    message = (
        f"The last restore drill ({last_verified.get('finishedTime')}, snapshot {last_verified.get('snapshot')}{of}) "
        "failed: "
        f"{last_verified.get('message')}. The policy's snapshots are not proved to restore; azsnap drills again at "
        "the next spec.restoreDrill.every."
    )
    return Health(HealthState.STALLED, "RestoreDrillFailed", message)
