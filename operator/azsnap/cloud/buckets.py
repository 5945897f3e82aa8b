"""Azure's request budgets as token buckets: sizes, the rate-limit headers, and the capacity arithmetic."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Final, Literal, get_args

__all__ = [
    "KINDS",
    "BucketSpec",
    "BucketUse",
    "CapacityReport",
    "Kind",
    "PacerConfig",
    "TokenBucket",
    "capacity_needed",
    "parse_remaining",
    "period_from_policy",
    "retry_after_seconds",
    "theoretical_best_lateness",
]

#: What a call costs: a snapshot create, a snapshot delete, a paged list, a single get.
Kind = Literal["create", "delete", "list", "get"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)

#: ARM's per-subscription token buckets carry this prefix; the header suffix follows it
#: (`x-ms-ratelimit-remaining-subscription-writes` → `ARM/subscription-writes`).
ARM_PREFIX: Final = "ARM/"
_RESOURCE_HEADER: Final = "x-ms-ratelimit-remaining-resource"
_ARM_HEADER_PREFIX: Final = "x-ms-ratelimit-remaining-"
_PERIOD_RE: Final = re.compile(r"(\d+)(Sec|Min|Hour)s?$", re.IGNORECASE)
_PERIOD_UNITS: Final = {"sec": 1.0, "min": 60.0, "hour": 3600.0}


@dataclass(frozen=True)
class BucketSpec:
    """One of Azure's throttling policies: `capacity` calls, refilled evenly over `period_s` seconds.

    `policy` is the name Azure reports in the rate-limit headers, so that answers can correct the bucket.
    Compute policies are per subscription and region; ARM's (`per_subscription=True`) span every region.
    """

    policy: str
    capacity: float
    period_s: float
    per_subscription: bool = False

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.period_s <= 0:
            raise ValueError(f"bucket {self.policy}: capacity and period must be positive")

    @property
    def rate(self) -> float:
        """Tokens per second."""
        return self.capacity / self.period_s


SNAPSHOT_CREATE_3MIN: Final = BucketSpec("Microsoft.Compute/HighCostSnapshotCreateHydrate3Min", 240, 180)
SNAPSHOT_CREATE_30MIN: Final = BucketSpec("Microsoft.Compute/HighCostSnapshotCreateHydrate30Min", 1920, 1800)
HIGH_COST_GET_3MIN: Final = BucketSpec("Microsoft.Compute/HighCostGet3Min", 140, 180)
HIGH_COST_GET_30MIN: Final = BucketSpec("Microsoft.Compute/HighCostGet30Min", 700, 1800)
LOW_COST_GET_3MIN: Final = BucketSpec("Microsoft.Compute/LowCostGet3Min", 4000, 180)
LOW_COST_GET_30MIN: Final = BucketSpec("Microsoft.Compute/LowCostGet30Min", 32000, 1800)
# ARM's regional token buckets (2024 on): size 250 refilled at 25/s for reads, 200 at 10/s for writes and deletes.
ARM_READS: Final = BucketSpec(ARM_PREFIX + "subscription-reads", 250, 10, per_subscription=True)
ARM_WRITES: Final = BucketSpec(ARM_PREFIX + "subscription-writes", 200, 20, per_subscription=True)
ARM_DELETES: Final = BucketSpec(ARM_PREFIX + "subscription-deletes", 200, 20, per_subscription=True)


@dataclass(frozen=True)
class PacerConfig:
    """Bucket sizes per kind of call and the pacing policy; defaults and their sources are in docs/pacing.md."""

    create: tuple[BucketSpec, ...] = (SNAPSHOT_CREATE_3MIN, SNAPSHOT_CREATE_30MIN, ARM_WRITES)
    delete: tuple[BucketSpec, ...] = (ARM_DELETES,)
    list: tuple[BucketSpec, ...] = (HIGH_COST_GET_3MIN, HIGH_COST_GET_30MIN, ARM_READS)
    get: tuple[BucketSpec, ...] = (LOW_COST_GET_3MIN, LOW_COST_GET_30MIN, ARM_READS)
    #: Use this share of every bucket (burst and refill), leaving the rest to other clients of the subscription.
    margin: float = 0.97
    #: Hold deletes while a create for the same subscription and region is waiting for budget...
    deletes_yield_to_creates: bool = True
    #: ...but never longer than this, so retention cannot starve behind a permanently saturated create budget.
    delete_max_yield_s: float = 1800.0
    #: How long to block a bucket after a throttling answer that named no `Retry-After`.
    default_retry_after_s: float = 30.0
    #: Attach policies Azure reports for a kind that the config does not list (and learn their size).
    learn_policies: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.margin <= 1:
            raise ValueError("margin must be in (0, 1]")
        if self.delete_max_yield_s < 0 or self.default_retry_after_s < 0:
            raise ValueError("delays must not be negative")

    def specs(self, kind: Kind) -> tuple[BucketSpec, ...]:
        """The buckets one call of this kind takes a token from."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of call: {kind!r}")
        specs: tuple[BucketSpec, ...] = getattr(self, kind)
        return specs


class TokenBucket:
    """A token bucket in loop time, holding `margin` of the Azure policy's tokens. Tokens stay in [0, capacity]."""

    def __init__(self, spec: BucketSpec, margin: float, now: float) -> None:
        self.spec = spec
        self.reserve = spec.capacity * (1 - margin)
        self.capacity = spec.capacity * margin
        self.rate = self.capacity / spec.period_s
        self.tokens = self.capacity
        self.updated = now
        self.blocked_until = -math.inf
        self.taken_total = 0  # every token ever granted: lets an answer discount the calls granted after it

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available(self, now: float) -> bool:
        return now >= self.blocked_until and self.tokens >= 1 - _EPSILON

    def take(self) -> int:
        """Grant one token (the caller checked `available`); returns the bucket's grant sequence number."""
        self.tokens = max(0.0, self.tokens - 1)
        self.taken_total += 1
        return self.taken_total

    def refund(self) -> None:
        self.tokens = min(self.capacity, self.tokens + 1)

    def ready_at(self, now: float) -> float:
        """The loop time at which one token will be available, all else equal."""
        missing = max(0.0, 1 - self.tokens)
        return max(self.blocked_until, now + missing / self.rate)

    def correct(self, remaining: float, granted_since: int) -> bool:
        """Lower our tokens to what Azure reported (minus calls granted since); never raise them. True if lowered."""
        estimate = remaining - granted_since - self.reserve
        if estimate < self.tokens:
            self.tokens = max(0.0, estimate)
            return True
        return False

    def block(self, until: float) -> None:
        self.tokens = 0.0
        self.blocked_until = max(self.blocked_until, until)

    def learn_capacity(self, remaining: float) -> None:
        """A learned policy's size is at least what Azure said remained plus the call that reported it."""
        if remaining + 1 > self.spec.capacity:
            margin = self.capacity / self.spec.capacity
            self.spec = BucketSpec(self.spec.policy, remaining + 1, self.spec.period_s, self.spec.per_subscription)
            self.reserve = self.spec.capacity * (1 - margin)
            self.capacity = self.spec.capacity * margin
            self.rate = self.capacity / self.spec.period_s


#: Tolerance on a token count (float arithmetic on refills).
_EPSILON: Final = 1e-9


def parse_remaining(headers: Mapping[str, str]) -> dict[str, int]:
    """Remaining calls per policy from the `x-ms-ratelimit-remaining-*` headers (names case-insensitive).

    `x-ms-ratelimit-remaining-resource: Microsoft.Compute/A3Min;239,Microsoft.Compute/A30Min;1919` gives both
    Compute policies; `x-ms-ratelimit-remaining-subscription-writes: 1199` gives `ARM/subscription-writes`.
    Repeated headers may arrive joined by commas. Malformed parts are skipped.
    """
    found: dict[str, int] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == _RESOURCE_HEADER:
            for part in value.split(","):
                policy, sep, count = part.strip().rpartition(";")
                number = _int(count)
                if sep and policy and number is not None:
                    found[policy] = min(number, found.get(policy, number))
        elif lowered.startswith(_ARM_HEADER_PREFIX + "subscription-"):
            number = _int(value.split(",")[0])
            if number is not None:
                found[ARM_PREFIX + lowered.removeprefix(_ARM_HEADER_PREFIX)] = number
    return found


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def period_from_policy(policy: str) -> float | None:
    """The window a Compute policy's name states (`...3Min` → 180), or None."""
    match = _PERIOD_RE.search(policy)
    if match is None or int(match.group(1)) == 0:
        return None
    return int(match.group(1)) * _PERIOD_UNITS[match.group(2).lower()]


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds or HTTP date).

    An HTTP date is measured against the answer's own `Date` header, else against `now`; None if neither.
    """
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0), ("retry-after", 1.0)):
        text = lower.get(name)
        if text is None:
            continue
        try:
            seconds = float(text) / scale
        except ValueError:
            seconds = None
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            return seconds
        if name == "retry-after":
            return _seconds_until(text, lower.get("date"), now)
    return None


def _seconds_until(when_text: str, date_text: str | None, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(when_text)
        reference = parsedate_to_datetime(date_text) if date_text else now
    except (TypeError, ValueError, IndexError):
        return None
    if reference is None or when.tzinfo is None or reference.tzinfo is None:
        return None
    return max(0.0, (when - reference).total_seconds())


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
) -> CapacityReport:
    """Sustained demand per policy for one subscription-region's load; a policy shared by kinds sums them."""
    demand = {"create": creates_per_hour, "delete": deletes_per_hour, "list": lists_per_hour, "get": gets_per_hour}
    needed: dict[str, float] = {}
    specs: dict[str, BucketSpec] = {}
    for kind in KINDS:
        for spec in config.specs(kind):
            specs.setdefault(spec.policy, spec)
            needed[spec.policy] = needed.get(spec.policy, 0.0) + demand[kind]
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
