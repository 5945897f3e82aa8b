"""The health of one pass on a disk: what its plan and what acting on it did mean for the policy, and when to wake."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.models import Policy
from azsnap.domain.planner import COPY_RECHECK, CREATE_RECHECK, Plan
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler.act import Outcome, iso
from azsnap.reconciler.report import Event, StatusReport
from azsnap.reconciler.verdicts import Verdicts

__all__ = ["all_succeeded", "pass_health"]


def all_succeeded(the_plan: Plan, outcome: Outcome) -> bool:
    """True when every create of the plan gave a snapshot Azure reports `Succeeded`."""
    return all(c.name in outcome.usable for c in the_plan.creates)


def _wake(the_plan: Plan, outcome: Outcome, now: datetime) -> datetime:
    """The plan's wake-up (made for its creates succeeding), sooner when one did not: look at it again."""
    wake = the_plan.next_time
    if outcome.copying:
        wake = min(wake, now + COPY_RECHECK)
    if outcome.failed or any(
        c.name in outcome.created and c.name not in outcome.usable | outcome.copying for c in the_plan.creates
    ):
        wake = min(wake, now + CREATE_RECHECK)
    return wake


def pass_health(
    verdicts: Verdicts,
    policy: Policy,
    status: SnapshotPolicyStatus,
    the_plan: Plan,
    outcome: Outcome,
    fields: dict[str, Any],
    now: datetime,
) -> StatusReport:
    events = outcome.events
    wake = _wake(the_plan, outcome, now)
    blocked = {b.reason: b for b in the_plan.blocked}
    previous_reason = next((c.reason for c in status.conditions if c.type == "Ready"), None)
    if outcome.error is not None:
        return verdicts.failed(outcome.error, now, fields, what="changing snapshots", events=events)
    if "PerDiskCap" in blocked and not the_plan.deletes:
        events.append(Event("Warning", "LimitReached", blocked["PerDiskCap"].message))
        message = (
            f"{blocked['PerDiskCap'].message} Lower the retention, delete snapshots of this disk that azsnap "
            "did not make, or raise AZSNAP_PER_DISK_CAP if Azure raised the limit for your subscription."
        )
        return verdicts.stalled("LimitReached", message, now, fields, events=events)
    if policy.spec.suspend:
        if previous_reason != "Suspended":
            events.append(Event("Normal", "Suspended", "spec.suspend is true: no snapshot is created or deleted"))
        health = Health(
            HealthState.READY,
            "Suspended",
            "Suspended: spec.suspend is true, so azsnap creates and deletes nothing. Set it to false to resume.",
        )
        return verdicts.report(health, fields, events, verdicts.next_time(wake, now))
    if "RateWindow" in blocked and the_plan.due_slot is not None and not outcome.created:
        b = blocked["RateWindow"]
        events.append(Event("Warning", "RateLimited", b.message))
        until = b.until or now + verdicts.default_retry
        health = Health(HealthState.RETRYING, "RateLimited", f"{b.message} azsnap retries at {iso(until)}.")
        return verdicts.report(health, fields, events, verdicts.next_time(until, now))
    waiting = [b.message for b in the_plan.blocked if b.reason in {"PendingCopies", "DiskCopying", "OnDemandWait"}]
    message = f"{fields['snapshotCount']} snapshot(s) held; next snapshot at {fields['nextSnapshotTime']}."
    if waiting:
        message += " Waiting: " + "; ".join(waiting)
    doubts = [b.message for b in the_plan.blocked if b.reason in {"Unverified", "UnknownState", "RetriesExhausted"}]
    if doubts:
        message += " Not done: " + "; ".join(doubts)
    health = Health(HealthState.READY, "Succeeded", message)
    return verdicts.report(health, fields, events, verdicts.next_time(wake, now))
