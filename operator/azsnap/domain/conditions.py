"""Kubernetes-style conditions (Ready, Reconciling, Stalled) following the API conventions and kstatus rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = ["Health", "HealthState", "conditions_for", "merge_condition"]


class HealthState(StrEnum):
    """The three states a reconcile can leave a policy in."""

    READY = "Ready"  # in line with its spec (or suspended on purpose)
    RETRYING = "Retrying"  # something transient failed; azsnap retries by itself
    STALLED = "Stalled"  # will not fix itself: a person must act


@dataclass(frozen=True)
class Health:
    """The outcome of one reconcile, as conditions will show it."""

    state: HealthState
    reason: str
    message: str


def merge_condition(
    existing: Sequence[Mapping[str, Any]],
    *,
    type_: str,
    status: str,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> dict[str, Any]:
    """One condition; `lastTransitionTime` is kept unless the status flips."""
    previous = next((c for c in existing if c.get("type") == type_), None)
    transition = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    if previous is not None and previous.get("status") == status and previous.get("lastTransitionTime"):
        transition = str(previous["lastTransitionTime"])
    condition: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def conditions_for(
    health: Health,
    existing: Sequence[Mapping[str, Any]],
    *,
    now: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """The full conditions list for a health outcome (abnormal-true `Reconciling`/`Stalled`, positive `Ready`)."""
    ready = health.state is HealthState.READY
    retrying = health.state is HealthState.RETRYING
    stalled = health.state is HealthState.STALLED
    idle_reason = "Succeeded" if ready else health.reason

    def make(type_: str, flag: bool, reason: str, message: str) -> dict[str, Any]:
        return merge_condition(
            existing,
            type_=type_,
            status="True" if flag else "False",
            reason=reason,
            message=message,
            now=now,
            generation=generation,
        )

    return [
        make("Ready", ready, health.reason, health.message),
        make(
            "Reconciling",
            retrying,
            "ProgressingWithRetry" if retrying else idle_reason,
            health.message if retrying else "",
        ),
        make("Stalled", stalled, health.reason if stalled else idle_reason, health.message if stalled else ""),
    ]
