"""What the pacer hands out and reports: grants, waiters, bucket states, counters, and why a slot was missed."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from azsnap.cloud.buckets import Kind, TokenBucket
from azsnap.cloud.errors import SlotMissed

__all__ = ["BucketState", "Grant", "KindStats", "PacerSnapshot", "Waiter", "bucket_states", "missed_error"]

GroupKey = tuple[Kind, str, str]  # kind, subscription, location


@dataclass(frozen=True)
class Grant:
    """Permission for one call: which budget it drew on, when, and how long it waited for it."""

    kind: Kind
    subscription_id: str
    location: str
    granted_at: float
    waited_s: float
    #: Per policy, the bucket's grant count when this call took its token (for `Pacer.observe(..., grant=)`).
    sequence: Mapping[str, int]
    buckets: tuple[TokenBucket, ...] = field(repr=False, compare=False)


@dataclass(frozen=True)
class BucketState:
    """One bucket as the pacer sees it now."""

    policy: str
    subscription_id: str
    location: str
    tokens: float
    capacity: float  # usable: Azure's size times the margin
    azure_capacity: float
    blocked_until: float | None
    waiters: int


@dataclass(frozen=True)
class KindStats:
    """Grants of one kind: how many, how many had to wait, and the seconds waited in total."""

    grants: int = 0
    waits: int = 0
    waited_s: float = 0.0


@dataclass(frozen=True)
class PacerSnapshot:
    """The pacer's buckets and counters at one loop time (for metrics and benchmarks)."""

    at: float
    buckets: tuple[BucketState, ...]
    kinds: Mapping[Kind, KindStats]
    waiting: int
    throttled: int  # throttling answers observed: each is a pacing miss
    corrections: int  # times a header lowered a bucket below our estimate
    missed: int = 0  # creates never sent: their hard deadline passed while they waited for budget
    backoffs: int = 0  # throttling answers without Retry-After, each held as a bounded backoff

    @property
    def waits(self) -> int:
        return sum(stats.waits for stats in self.kinds.values())

    @property
    def waited_s(self) -> float:
        return sum(stats.waited_s for stats in self.kinds.values())


class Waiter:
    """One call waiting for its tokens, ordered by `priority` (deadline, round, arrival)."""

    __slots__ = ("enqueued_at", "expiry", "future", "group", "priority", "round")

    def __init__(
        self,
        group: GroupKey,
        priority: tuple[int, float, int, int],
        rnd: int,
        now: float,
        future: asyncio.Future[Grant],
    ) -> None:
        self.group = group
        self.priority = priority
        self.round = rnd
        self.enqueued_at = now
        self.future = future
        self.expiry: asyncio.TimerHandle | None = None

    def __lt__(self, other: Waiter) -> bool:
        return self.priority < other.priority


def missed_error(kind: Kind, worst: TokenBucket, location: str, now: float) -> SlotMissed:
    """The `SlotMissed` for a call whose deadline came while `worst` (the budget furthest from a token) held it."""
    spec = worst.spec
    where = "the subscription" if spec.per_subscription else (location or "the subscription")
    period = f"{spec.period_s / 60:g} min" if spec.period_s >= 60 else f"{spec.period_s:g} s"
    learned = "as Azure's answers report it" if worst.answered else "azsnap's assumed size"
    blocked = (
        f"; Azure throttled it and asked to wait until {worst.blocked_until - now:.0f}s after the deadline"
        if worst.blocked_until > now
        else ""
    )
    message = (
        f"over Azure's budget: {spec.policy} allows about {spec.capacity:.0f} calls per {period} in {where} "
        f"({learned}){blocked}; the {kind} waited for it until its slot's startingDeadline and was not sent"
    )
    return SlotMissed(message, policy=spec.policy, capacity=spec.capacity, period_s=spec.period_s, location=location)


def bucket_states(
    buckets: Mapping[tuple[str, str, str], TokenBucket], waiting: Mapping[tuple[str, str, str], int], now: float
) -> tuple[BucketState, ...]:
    """Every bucket (keyed policy, subscription, location) as it stands at `now`, with its waiters."""
    states = []
    for key, bucket in sorted(buckets.items()):
        bucket.refill(now)
        blocked = bucket.blocked_until if bucket.blocked_until > now else None
        states.append(
            BucketState(*key, bucket.tokens, bucket.capacity, bucket.spec.capacity, blocked, waiting.get(key, 0))
        )
    return tuple(states)
