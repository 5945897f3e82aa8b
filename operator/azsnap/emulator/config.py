"""The emulator's knobs, its fault rules, what it records, and the demo constants of the command-line contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

__all__ = [
    "API_VERSION",
    "DEFAULT_BUCKETS",
    "DEMO_LOCATION",
    "DEMO_RESOURCE_GROUP",
    "DEMO_SUBSCRIPTION",
    "OPERATIONS",
    "BucketSize",
    "EmulatorConfig",
    "FaultKind",
    "FaultRule",
    "RecordedRequest",
]

#: The Disk RP api-version the emulator speaks (what azure-mgmt-compute 39 sends for disks and snapshots).
API_VERSION: Final = "2026-03-02"
DEMO_SUBSCRIPTION: Final = "00000000-0000-0000-0000-000000000000"
DEMO_RESOURCE_GROUP: Final = "rg-demo"
DEMO_LOCATION: Final = "westeurope"

#: Operation names used for fault matching, request records and throttling.
OPERATIONS: Final = (
    "snapshots.put",
    "snapshots.get",
    "snapshots.delete",
    "snapshots.list",
    "disks.get",
    "disks.list",
    "operations.get",
)

FaultKind = Literal["latency", "429", "500", "503", "drop", "lro_failed", "failed_after_limit"]
FAULT_KINDS: Final = frozenset(get_args(FaultKind))


@dataclass(frozen=True)
class BucketSize:
    """One throttling policy: `capacity` calls refilled evenly over `period`."""

    capacity: int
    period: timedelta


#: Throttling policies by name, as the Compute resource provider and ARM report them; sources in docs/emulator.md.
DEFAULT_BUCKETS: Final[dict[str, BucketSize]] = {
    "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min": BucketSize(240, timedelta(minutes=3)),
    "Microsoft.Compute/HighCostSnapshotCreateHydrate30Min": BucketSize(1920, timedelta(minutes=30)),
    "Microsoft.Compute/HighCostGet3Min": BucketSize(160, timedelta(minutes=3)),
    "Microsoft.Compute/HighCostGet30Min": BucketSize(800, timedelta(minutes=30)),
    "Microsoft.Compute/LowCostGet3Min": BucketSize(4000, timedelta(minutes=3)),
    "Microsoft.Compute/LowCostGet30Min": BucketSize(32000, timedelta(minutes=30)),
    "Microsoft.Compute/DeleteDisks3Min": BucketSize(1000, timedelta(minutes=3)),
    "Microsoft.Compute/DeleteDisks30Min": BucketSize(8000, timedelta(minutes=30)),
    # ARM's own per-subscription buckets (token bucket: 250 reads refilled at 25/s, 200 writes/deletes at 10/s).
    "subscription-reads": BucketSize(250, timedelta(seconds=10)),
    "subscription-writes": BucketSize(200, timedelta(seconds=20)),
    "subscription-deletes": BucketSize(200, timedelta(seconds=20)),
}


@dataclass(frozen=True)
class FaultRule:
    """Inject a fault into requests of one operation (or every operation when `operation` is None).

    `count` limits how many requests the rule hits (None: no limit); `probability` draws from the emulator's
    seeded RNG. `lro_failed` and `failed_after_limit` apply to `snapshots.put` (and `lro_failed` to deletes):
    the request is accepted and its long-running operation ends `Failed`.
    """

    operation: str | None = None
    kind: FaultKind = "500"
    probability: float = 1.0
    count: int | None = None
    latency_s: float = 0.0
    retry_after_s: int = 5

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.operation is not None and self.operation not in OPERATIONS:
            raise ValueError(f"unknown operation {self.operation!r}; one of {list(OPERATIONS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.count is not None and self.count < 0:
            raise ValueError("count must not be negative")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator answered (or dropped: status 0)."""

    method: str
    path: str
    status: int
    operation: str
    time: datetime


@dataclass(frozen=True)
class EmulatorConfig:
    """How faithful and how strict the emulator is. Times are emulated (they follow the emulator's clock)."""

    throttling: bool = True
    #: At most `window_creates` incremental snapshots per disk in any `window`.
    window_creates: int = 7
    window: timedelta = timedelta(minutes=5)
    #: At most this many incremental snapshots per disk.
    per_disk_cap: int = 500
    #: Premium SSD v2 / Ultra: snapshots still copying in the background, per disk.
    max_pending_copies: int = 3
    page_size: int = 100
    #: How long a create or delete stays InProgress.
    lro_duration: timedelta = timedelta(seconds=2)
    #: Retry-After sent with accepted long-running operations and their polls (0: none, the client's own interval).
    poll_retry_after_s: int = 1
    #: Premium SSD v2 / Ultra background copy speed.
    copy_rate_percent_per_minute: float = 20.0
    buckets: dict[str, BucketSize] = field(default_factory=lambda: dict(DEFAULT_BUCKETS))
    #: Seed of the RNG that draws fault probabilities.
    seed: int = 0
