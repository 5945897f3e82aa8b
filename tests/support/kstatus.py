"""kstatus, the status rules Flux and kubectl-style tools apply to custom resources, in Python.

This follows sigs.k8s.io/cli-utils `pkg/kstatus/status` for resources that are not built-in kinds, which is
what Flux's health checks (`Kustomization.spec.healthChecks`, `HelmRelease` waits) run on a SnapshotPolicy:

1. `metadata.deletionTimestamp` set: Terminating.
2. `status.observedGeneration` present and different from `metadata.generation`: InProgress.
3. A condition `Reconciling=True`: InProgress; a condition `Stalled=True`: Failed (first one in list order wins).
4. Otherwise: Current. kstatus reads no `Ready` condition for custom kinds; `ready_reached` below is the
   separate question `kubectl wait --for=condition=Ready` asks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["KStatus", "Result", "compute", "ready_reached"]


class KStatus(StrEnum):
    """The statuses kstatus can compute from an object alone."""

    CURRENT = "Current"
    IN_PROGRESS = "InProgress"
    FAILED = "Failed"
    TERMINATING = "Terminating"


@dataclass(frozen=True)
class Result:
    """A computed status with the message kstatus would show."""

    status: KStatus
    message: str
    reason: str = ""


def _conditions(obj: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    return [c for c in conditions if isinstance(c, Mapping)]


def compute(obj: Mapping[str, Any]) -> Result:
    """The kstatus verdict for a full object (metadata and status), as Flux would see it."""
    metadata = obj.get("metadata") or {}
    if metadata.get("deletionTimestamp"):
        return Result(KStatus.TERMINATING, "Resource scheduled for deletion")

    generation = metadata.get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    if generation is not None and observed is not None and int(observed) != int(generation):
        kind = obj.get("kind", "Resource")
        return Result(
            KStatus.IN_PROGRESS,
            f"{kind} generation is {generation}, but latest observed generation is {observed}",
            "LatestGenerationNotObserved",
        )

    for condition in _conditions(obj):
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Reconciling":
            return Result(KStatus.IN_PROGRESS, str(condition.get("message", "")), str(condition.get("reason", "")))
        if condition.get("type") == "Stalled":
            return Result(KStatus.FAILED, str(condition.get("message", "")), str(condition.get("reason", "")))

    return Result(KStatus.CURRENT, "Resource is current")


def ready_reached(obj: Mapping[str, Any]) -> bool:
    """What `kubectl wait --for=condition=Ready` waits for: a `Ready` condition with status True."""
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in _conditions(obj))
