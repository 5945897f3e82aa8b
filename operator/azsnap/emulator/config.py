"""The emulator's knobs, its fault rules, what it records, and the demo constants of the command-line contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

from azsnap.cloud.priors import ARM_PREFIX, PRIORS

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
    "scaled_buckets",
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


#: Throttling policies by name, as the Compute resource provider and ARM report them: azsnap's shared priors
#: (`azsnap.cloud.priors`, sources in docs/pacing.md); ARM's buckets without the `ARM/` prefix.
DEFAULT_BUCKETS: Final[dict[str, BucketSize]] = {
    name.removeprefix(ARM_PREFIX): BucketSize(p.capacity, timedelta(seconds=p.period_s)) for name, p in PRIORS.items()
}


def scaled_buckets(factor: float, buckets: dict[str, BucketSize] | None = None) -> dict[str, BucketSize]:
    """Every budget times `factor` (at least one call per period): a subscription poorer than the priors say."""
    if factor <= 0:
        raise ValueError("a budget scale must be positive")
    source = DEFAULT_BUCKETS if buckets is None else buckets
    return {name: BucketSize(max(1, int(size.capacity * factor)), size.period) for name, size in source.items()}


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
    #: Throttling: "token" buckets refilled continuously, or "window": fixed windows whose 429 waits for the window's end.
    throttle_mode: Literal["token", "window"] = "token"
    #: A fixed `Retry-After` on every 429 (None: until a token is back, or the window's end up to 1,200 s).
    throttle_retry_after_s: int | None = None
    #: "compute": 429 OperationNotAllowed with Retry-After and details; "subscription": Azure's front-door 429
    #: SubscriptionRequestsThrottled without Retry-After or rate-limit headers (recorded in 2022).
    throttle_shape: Literal["compute", "subscription"] = "compute"
    #: Send each Compute policy in its own `x-ms-ratelimit-remaining-resource` header line, as Azure documents.
    ratelimit_header_lines: bool = False
    #: Seed of the RNG that draws fault probabilities.
    seed: int = 0
