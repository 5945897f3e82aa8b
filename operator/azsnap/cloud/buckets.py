"""Azure's request budgets as token buckets: which policies a call draws on, and what one bucket knows and learns."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal, get_args

from azsnap.cloud.headers import parse_remaining, period_from_policy, retry_after_seconds
from azsnap.cloud.priors import ARM_PREFIX, PRIORS

__all__ = [
    "ARM_PREFIX",
    "KINDS",
    "BucketSpec",
    "Kind",
    "PacerConfig",
    "TokenBucket",
    "parse_remaining",
    "period_from_policy",
    "retry_after_seconds",
    "spec_of",
]

#: What a call costs: a snapshot create, a snapshot delete, a paged list, a single get, an operation poll, a disk
#: create (a restore's disk or a drill's scratch disk: Azure's CreateUpdateDisks policies).
Kind = Literal["create", "delete", "list", "get", "poll", "disk"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)


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


def spec_of(policy: str) -> BucketSpec:
    """The bucket of a policy from the shared priors (`azsnap.cloud.priors`)."""
    prior = PRIORS[policy]
    return BucketSpec(policy, prior.capacity, prior.period_s, prior.per_subscription)


SNAPSHOT_CREATE_3MIN: Final = spec_of("Microsoft.Compute/HighCostSnapshotCreateHydrate3Min")
SNAPSHOT_CREATE_30MIN: Final = spec_of("Microsoft.Compute/HighCostSnapshotCreateHydrate30Min")
HIGH_COST_GET_3MIN: Final = spec_of("Microsoft.Compute/HighCostGet3Min")
HIGH_COST_GET_30MIN: Final = spec_of("Microsoft.Compute/HighCostGet30Min")
LOW_COST_GET_3MIN: Final = spec_of("Microsoft.Compute/LowCostGet3Min")
LOW_COST_GET_30MIN: Final = spec_of("Microsoft.Compute/LowCostGet30Min")
DELETE_DISKS_3MIN: Final = spec_of("Microsoft.Compute/DeleteDisks3Min")
DELETE_DISKS_30MIN: Final = spec_of("Microsoft.Compute/DeleteDisks30Min")
CREATE_UPDATE_DISKS_3MIN: Final = spec_of("Microsoft.Compute/CreateUpdateDisks3Min")
CREATE_UPDATE_DISKS_30MIN: Final = spec_of("Microsoft.Compute/CreateUpdateDisks30Min")
GET_OPERATION_3MIN: Final = spec_of("Microsoft.Compute/GetOperation3Min")
GET_OPERATION_30MIN: Final = spec_of("Microsoft.Compute/GetOperation30Min")
ARM_READS: Final = spec_of(ARM_PREFIX + "subscription-reads")
ARM_WRITES: Final = spec_of(ARM_PREFIX + "subscription-writes")
ARM_DELETES: Final = spec_of(ARM_PREFIX + "subscription-deletes")


@dataclass(frozen=True)
class PacerConfig:
    """Bucket sizes per kind of call and the pacing policy; defaults and their sources are in docs/pacing.md."""

    create: tuple[BucketSpec, ...] = (SNAPSHOT_CREATE_3MIN, SNAPSHOT_CREATE_30MIN, ARM_WRITES)
    delete: tuple[BucketSpec, ...] = (DELETE_DISKS_3MIN, DELETE_DISKS_30MIN, ARM_DELETES)
    list: tuple[BucketSpec, ...] = (HIGH_COST_GET_3MIN, HIGH_COST_GET_30MIN, ARM_READS)
    get: tuple[BucketSpec, ...] = (LOW_COST_GET_3MIN, LOW_COST_GET_30MIN, ARM_READS)
    poll: tuple[BucketSpec, ...] = (GET_OPERATION_3MIN, GET_OPERATION_30MIN, ARM_READS)
    disk: tuple[BucketSpec, ...] = (CREATE_UPDATE_DISKS_3MIN, CREATE_UPDATE_DISKS_30MIN, ARM_WRITES)
    #: Use this share of every bucket (burst and refill), leaving the rest to other clients of the subscription.
    margin: float = 0.97
    #: Hold deletes while a create for the same subscription and region is waiting for budget...
    deletes_yield_to_creates: bool = True
    #: ...but never longer than this, so retention cannot starve behind a permanently saturated create budget.
    delete_max_yield_s: float = 1800.0
    #: How long to block a bucket after the first throttling answer that named no `Retry-After`; each further one
    #: in a row doubles it, up to `max_backoff_s`.
    default_retry_after_s: float = 30.0
    max_backoff_s: float = 600.0
    #: Attach policies Azure reports for a kind that the config does not list (and learn their size).
    learn_policies: bool = True
    #: Until Azure has answered once for a bucket, let one call at a time draw on it: the configured size is
    #: only a guess, and a burst sized on a guess meets 429s before the first answer can correct it.
    probe_first: bool = True
    #: A call without a hard deadline is refused at once (Throttled) when Azure blocked its budget for longer.
    max_blocked_wait_s: float = 120.0

    def __post_init__(self) -> None:
        if not 0 < self.margin <= 1:
            raise ValueError("margin must be in (0, 1]")
        if min(self.delete_max_yield_s, self.default_retry_after_s, self.max_backoff_s, self.max_blocked_wait_s) < 0:
            raise ValueError("delays must not be negative")

    def specs(self, kind: Kind) -> tuple[BucketSpec, ...]:
        """The buckets one call of this kind takes a token from."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind of call: {kind!r}")
        specs: tuple[BucketSpec, ...] = getattr(self, kind)
        return specs


#: Seconds a probe (the one call on a bucket Azure has not yet answered for) may stay unanswered.
PROBE_TIMEOUT_S: Final = 30.0
#: Header-less answers after which a bucket stops probing and trusts its configured size.
_SILENT_ANSWERS: Final = 3
#: After a 429 the bucket keeps half its size as burst and half as refill: a token bucket (b, r) lets through at
#: most b + r·T in any period T, so this never exceeds a fixed window of the full size either.
_WINDOW_SAFE_SHARE: Final = 0.5
#: A further 429 once window-safe means someone else spends the budget: assume this share of it is left to us.
_SHRINK: Final = 0.8


class TokenBucket:
    """A token bucket in loop time, holding `margin` of the Azure policy's tokens. Tokens stay in [0, capacity].

    The size is a guess until Azure answers: the first answer sets it (remaining plus the calls counted so far),
    larger counts raise it, and every 429 makes the bucket safer (window-safe shares, then a smaller size).
    """

    def __init__(self, spec: BucketSpec, margin: float, now: float) -> None:
        self.spec = spec
        self.margin = margin
        self.share = 1.0
        self.tokens = 0.0
        self.updated = now
        self.blocked_until = -math.inf
        self.taken_total = 0  # every token ever granted: lets an answer discount the calls granted after it
        self.answered = False  # Azure has reported this policy at least once (or stayed silent long enough)
        self.silent = 0
        self.probe_until = -math.inf
        self.throttles = 0  # 429s charged to this bucket
        self.backoff_streak = 0  # throttling answers in a row that named no Retry-After
        self._resize()
        self.tokens = self.capacity

    def _resize(self) -> None:
        self.reserve = self.spec.capacity * (1 - self.margin)
        self.capacity = max(1.0, self.spec.capacity * self.margin * self.share)
        self.rate = self.capacity / self.spec.period_s
        self.tokens = min(self.tokens, self.capacity)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def available(self, now: float) -> bool:
        if now < self.blocked_until or self.tokens < 1 - _EPSILON:
            return False
        return self.answered or now >= self.probe_until

    def take(self, now: float, probing: bool) -> int:
        """Grant one token (the caller checked `available`); returns the bucket's grant sequence number."""
        self.tokens = max(0.0, self.tokens - 1)
        self.taken_total += 1
        if probing and not self.answered:
            self.probe_until = now + PROBE_TIMEOUT_S
        return self.taken_total

    def refund(self) -> None:
        self.tokens = min(self.capacity, self.tokens + 1)

    def ready_at(self, now: float) -> float:
        """The loop time at which one token will be available, all else equal."""
        missing = max(0.0, 1 - self.tokens)
        ready = max(self.blocked_until, now + missing / self.rate)
        return ready if self.answered else max(ready, self.probe_until)

    def correct(self, remaining: float, granted_since: int) -> bool:
        """Lower our tokens to what Azure reported (minus calls granted since); never raise them. True if lowered."""
        estimate = remaining - granted_since - self.reserve
        if estimate < self.tokens:
            self.tokens = max(0.0, estimate)
            return True
        return False

    def learn(self, remaining: float, counted: int, *, learnable: bool) -> None:
        """Azure reported `remaining` after counting `counted` of our calls: size the bucket from it.

        The first answer sets the size (Azure's budget was full when we began, as far as we know: anyone else's
        use only makes the guess smaller, which is safe); later ones can only raise it.
        """
        first = not self.answered
        self.answered = True
        self.silent = 0
        self.backoff_streak = 0
        if not learnable:
            return
        size = remaining + (counted if first else 1)
        if (first and size > 0) or size > self.spec.capacity:
            self.spec = BucketSpec(self.spec.policy, max(1.0, size), self.spec.period_s, self.spec.per_subscription)
            self._resize()

    def unreported(self) -> None:
        """An answer that did not report this policy: release the probe; after a few, trust the configured size."""
        self.probe_until = -math.inf
        self.silent += 1
        if self.silent >= _SILENT_ANSWERS:
            self.answered = True

    def throttled(self, until: float) -> None:
        """Azure refused a call charged here: block until `until` and make the bucket safer for next time."""
        self.throttles += 1
        if self.share > _WINDOW_SAFE_SHARE:
            self.share = _WINDOW_SAFE_SHARE
        else:
            self.spec = BucketSpec(
                self.spec.policy, max(1.0, self.spec.capacity * _SHRINK), self.spec.period_s, self.spec.per_subscription
            )
        self._resize()
        self.block(until)

    def block(self, until: float) -> None:
        self.tokens = 0.0
        self.blocked_until = max(self.blocked_until, until)


#: Tolerance on a token count (float arithmetic on refills).
_EPSILON: Final = 1e-9
