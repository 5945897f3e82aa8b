"""What a reconcile tells its caller: health, status fields, events, and when to come back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from azsnap.domain.conditions import Health

__all__ = ["Event", "FinalizeReport", "StatusReport"]


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post on the policy."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class StatusReport:
    """The result of `Reconciler.reconcile`: the handler writes `status` and `health`, posts `events`."""

    health: Health
    #: Status fields (camelCase, JSON-ready) except `conditions` and `observedGeneration`.
    status: dict[str, Any]
    events: tuple[Event, ...]
    #: When the policy should be reconciled again.
    next_time: datetime
    #: Snapshot names created, deleted, and those whose create failed (refused, or ended `Failed` in Azure).
    created: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    #: Slots this reconcile counted missed (each is also in status `missedSlots`), oldest first.
    missed_slots: tuple[datetime, ...] = ()
    #: Why the plan could not do all it wanted (`azsnap.domain.planner.BLOCKED_REASONS`), before or after acting.
    blocked: tuple[str, ...] = ()
    #: The policy's own snapshots Azure reports `Failed` at the end of this reconcile, whoever's call made them
    #: (metrics count each once, when first seen).
    failed_seen: tuple[str, ...] = ()
    #: Non-empty when slots were missed because Azure's request budget could not serve their creates before their
    #: deadline: what happened, with the figures. The health model turns it into Ready=False, reason OverBudget.
    over_budget: str = ""
    #: Azure calls made by this reconcile, by kind (for tests and the demo's summary).
    azure_calls: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FinalizeReport:
    """The result of `Reconciler.finalize`: done means the finalizer may go."""

    done: bool
    message: str
    deleted: tuple[str, ...] = ()
    remaining: int = 0
    retry_after: float = 0.0
    events: tuple[Event, ...] = ()
