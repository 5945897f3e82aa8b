"""Azure's throttling budgets as azsnap first assumes them: one table for the pacer, the emulator and the capacity tool.

These are starting guesses, not truths: budgets differ by subscription and region and change over time, so the
pacer learns the real size of every policy from `x-ms-ratelimit-remaining-*` headers (see docs/pacing.md for the
sources of each figure). No I/O and no Azure SDK here, so the emulator may share the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = ["ARM_PREFIX", "PRIORS", "Prior", "prior"]

#: ARM's per-subscription token buckets carry this prefix; the header suffix follows it
#: (`x-ms-ratelimit-remaining-subscription-writes` → `ARM/subscription-writes`).
ARM_PREFIX: Final = "ARM/"

_COMPUTE: Final = "Microsoft.Compute/"


@dataclass(frozen=True)
class Prior:
    """A policy's assumed size: `capacity` calls per `period_s` seconds; ARM's span every region."""

    capacity: int
    period_s: float
    per_subscription: bool = False


#: Policy name (as Azure reports it) → its prior.
PRIORS: Final[Mapping[str, Prior]] = {
    # Snapshot creates: the observed HighCostSnapshotCreateHydrate buckets the scale requirements quote.
    _COMPUTE + "HighCostSnapshotCreateHydrate3Min": Prior(240, 180),
    _COMPUTE + "HighCostSnapshotCreateHydrate30Min": Prior(1920, 1800),
    # Lists: the sample in Azure's "Troubleshooting API throttling errors" (HighCostGet3Min;159, 30Min;799).
    _COMPUTE + "HighCostGet3Min": Prior(160, 180),
    _COMPUTE + "HighCostGet30Min": Prior(800, 1800),
    # Single GETs: the smaller of the budgets seen in recorded answers (3,999 and 14,999 remaining after a call).
    _COMPUTE + "LowCostGet3Min": Prior(4000, 180),
    _COMPUTE + "LowCostGet30Min": Prior(32000, 1800),
    # Snapshot and disk deletes: the smaller budget seen in recorded answers (999 and 2,999).
    _COMPUTE + "DeleteDisks3Min": Prior(1000, 180),
    _COMPUTE + "DeleteDisks30Min": Prior(8000, 1800),
    # Disk PUTs (a disk restored from a snapshot) and disk access grants: the recorded maxima (2,999/24,999, 999/7,991).
    _COMPUTE + "CreateUpdateDisks3Min": Prior(3000, 180),
    _COMPUTE + "CreateUpdateDisks30Min": Prior(25000, 1800),
    _COMPUTE + "HighCostDiskHydrate3Min": Prior(1000, 180),
    _COMPUTE + "HighCostDiskHydrate30Min": Prior(8000, 1800),
    # Long-running operation polls (DiskOperations): recorded 49,999 and 399,999 remaining after a poll.
    _COMPUTE + "GetOperation3Min": Prior(50000, 180),
    _COMPUTE + "GetOperation30Min": Prior(400000, 1800),
    # ARM's regional token buckets (2024 on): 250 reads refilled at 25/s, 200 writes or deletes refilled at 10/s.
    ARM_PREFIX + "subscription-reads": Prior(250, 10, per_subscription=True),
    ARM_PREFIX + "subscription-writes": Prior(200, 20, per_subscription=True),
    ARM_PREFIX + "subscription-deletes": Prior(200, 20, per_subscription=True),
}


def prior(policy: str) -> Prior:
    """The prior of a policy the table names (KeyError otherwise)."""
    return PRIORS[policy]
