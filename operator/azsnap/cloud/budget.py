"""Capacity arithmetic: a load's sustained demand per policy against its budget, and the best lateness possible."""

from __future__ import annotations

from dataclasses import dataclass

from azsnap.cloud.buckets import BucketSpec, Kind, PacerConfig

__all__ = ["BucketUse", "CapacityReport", "capacity_needed", "theoretical_best_lateness"]


@dataclass(frozen=True)
class BucketUse:
    """The sustained demand on one Azure policy against its budget (per subscription and region)."""

    policy: str
    needed_per_hour: float
    budget_per_hour: float  # Azure's own
    paced_per_hour: float  # what the pacer lets through (the margin applied)

    @property
    def utilisation(self) -> float:
        """Share of Azure's budget the load needs."""
        return self.needed_per_hour / self.budget_per_hour

    @property
    def fits(self) -> bool:
        return self.needed_per_hour <= self.paced_per_hour


@dataclass(frozen=True)
class CapacityReport:
    """Every policy a load touches, with its utilisation; `fits` when the pacer can carry all of it."""

    buckets: tuple[BucketUse, ...]

    @property
    def fits(self) -> bool:
        return all(use.fits for use in self.buckets)

    @property
    def worst(self) -> BucketUse | None:
        """The policy closest to (or furthest over) its budget."""
        return max(self.buckets, key=lambda use: use.utilisation, default=None)


def capacity_needed(
    creates_per_hour: float,
    deletes_per_hour: float,
    lists_per_hour: float,
    config: PacerConfig,
    *,
    gets_per_hour: float = 0.0,
    polls_per_hour: float = 0.0,
    disk_creates_per_hour: float = 0.0,
) -> CapacityReport:
    """Sustained demand per policy for one subscription-region's load; a policy shared by kinds sums them.

    Disk creates (restores, drills) are not part of a snapshot load: their policies are counted only when asked for.
    """
    demand: dict[Kind, float] = {
        "create": creates_per_hour,
        "delete": deletes_per_hour,
        "list": lists_per_hour,
        "get": gets_per_hour,
        "poll": polls_per_hour,
    }
    if disk_creates_per_hour:
        demand["disk"] = disk_creates_per_hour
    needed: dict[str, float] = {}
    specs: dict[str, BucketSpec] = {}
    for kind, per_hour in demand.items():
        for spec in config.specs(kind):
            specs.setdefault(spec.policy, spec)
            needed[spec.policy] = needed.get(spec.policy, 0.0) + per_hour
    uses = []
    for policy, spec in specs.items():
        budget = spec.rate * 3600
        uses.append(BucketUse(policy, needed[policy], budget, budget * config.margin))
    return CapacityReport(tuple(uses))


def theoretical_best_lateness(n_due_at_same_instant: int, config: PacerConfig) -> list[float]:
    """Seconds each of N creates due at the same instant waits under Azure's full create buckets, paced perfectly.

    The i-th call (from 1) can go once every create bucket has had i tokens: `max((i - capacity) / rate, 0)`.
    No margin: this is the bound Azure itself sets. Sorted ascending.
    """
    specs = config.specs("create")
    return [
        max([0.0, *((i - spec.capacity) / spec.rate for spec in specs)]) for i in range(1, n_due_at_same_instant + 1)
    ]
