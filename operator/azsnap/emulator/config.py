"""The emulator's knobs, its fault rules, what it records, and the demo constants of the command-line contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal, get_args

from azsnap.cloud.priors import ARM_PREFIX, PRIORS

__all__ = [
    "API_VERSION",
    "AZURE_DURATIONS",
    "DEFAULT_BUCKETS",
    "DEMO_LOCATION",
    "DEMO_RESOURCE_GROUP",
    "DEMO_SUBSCRIPTION",
    "OPERATIONS",
    "TIMINGS",
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
    "snapshots.access",
    "disks.get",
    "disks.put",
    "disks.delete",
    "disks.list",
    "operations.get",
)

FaultKind = Literal[
    "latency",
    "429",
    "500",
    "503",
    "drop",
    "lro_failed",
    "failed_after_limit",
    "subscription_throttled",
    "forbidden",
    "linked_forbidden",
    "copy_failed",
]
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
    """Every Compute budget times `factor` (at least one call per period): a subscription poorer than the priors.

    ARM's own buckets keep their documented size: they are the same for every subscription, and Azure's answers
    do not report the read bucket, so no client could learn a smaller one.
    """
    if factor <= 0:
        raise ValueError("a budget scale must be positive")
    source = DEFAULT_BUCKETS if buckets is None else buckets
    return {
        name: BucketSize(max(1, int(size.capacity * factor)), size.period) if name.startswith("Microsoft.") else size
        for name, size in source.items()
    }


@dataclass(frozen=True)
class FaultRule:
    """Inject a fault into requests of one operation (or every operation when `operation` is None).

    `count` limits how many requests the rule hits (None: no limit); `probability` draws from the emulator's
    seeded RNG. `lro_failed` and `failed_after_limit` apply to `snapshots.put` (`lro_failed` also to disk PUTs and
    to deletes): the request is accepted and its long-running operation ends `Failed`. `forbidden` answers ARM's
    403 `AuthorizationFailed` (the identity lacks the operation's action); `linked_forbidden` answers 403
    `LinkedAuthorizationFailed` to a PUT that names a source it may not read (a disk copied from a snapshot).
    `copy_failed` applies to a CopyStart `snapshots.put`: the copy is accepted and stops half-way with a
    `copyCompletionError`.
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


#: Operation durations Azure showed (emulated seconds from the accepted request to the operation's end), fitted
#: to the recorded answers: a create or update from a source is still running 2 s after its PUT and done by the
#: first poll 10 s later; an empty snapshot without a customer key, and granting or revoking access, end at once;
#: a delete ends within a second.
AZURE_DURATIONS: Final[dict[str, timedelta]] = {
    "create": timedelta(seconds=3),
    "create_empty": timedelta(0),
    "update": timedelta(seconds=3),
    "delete": timedelta(seconds=1),
    "grant": timedelta(0),
    "revoke": timedelta(0),
}


@dataclass(frozen=True)
class EmulatorConfig:
    """How faithful and how strict the emulator is. Times are emulated (they follow the emulator's clock).

    The defaults answer as Azure answered (see docs/emulator.md); `EmulatorConfig.named("gentle")` is the gentler
    timing for fast tests and benchmarks that ask for it.
    """

    throttling: bool = True
    #: At most `window_creates` incremental snapshots per disk in any `window`.
    window_creates: int = 7
    window: timedelta = timedelta(minutes=5)
    #: At most this many incremental snapshots per disk.
    per_disk_cap: int = 500
    #: Premium SSD v2 / Ultra: snapshots still copying in the background, per disk.
    max_pending_copies: int = 3
    page_size: int = 100
    #: How long every long-running operation stays InProgress; None: Azure's recorded durations per kind.
    lro_duration: timedelta | None = None
    #: Retry-After sent with accepted long-running operations and their running polls (0: none, as Azure).
    poll_retry_after_s: int = 0
    #: CopyStart copies running at once per subscription and target region (Azure documents 100).
    max_parallel_copies: int = 100
    #: Premium SSD v2 / Ultra background copy and CopyStart speed.
    copy_rate_percent_per_minute: float = 20.0
    #: True: a copy (CopyStart, background copy) is complete when its operation ends (Azure: it runs on after).
    copies_with_operation: bool = False
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

    def duration(self, kind: str) -> timedelta:
        """How long an operation of `kind` (a key of `AZURE_DURATIONS`) runs."""
        if self.lro_duration is not None:
            return self.lro_duration
        return AZURE_DURATIONS[kind]

    @classmethod
    def named(cls, timing: str, **overrides: Any) -> EmulatorConfig:
        """The configuration of a named timing (`azure`, `gentle`, `instant`), with `overrides` on top."""
        try:
            base = TIMINGS[timing]
        except KeyError:
            raise ValueError(f"unknown emulator timing {timing!r}; one of {sorted(TIMINGS)}") from None
        return cls(**{**base, **overrides})


#: Named timings. `azure`: as Azure answered (the default). `gentle`: operations end at once, a copy completes
#: with its operation, and 202s and running polls carry `Retry-After: 1`. `instant`: the same without
#: Retry-After (clients poll at their own interval, which tests set to 0).
TIMINGS: Final[dict[str, dict[str, Any]]] = {
    "azure": {},
    "gentle": {"lro_duration": timedelta(0), "poll_retry_after_s": 1, "copies_with_operation": True},
    "instant": {"lro_duration": timedelta(0), "poll_retry_after_s": 0, "copies_with_operation": True},
}
