"""Token buckets per subscription and region, refilled on the emulated clock, as the Compute RP and ARM throttle."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from azsnap.clock import Clock
from azsnap.emulator.config import BucketSize

__all__ = ["ARM_HEADERS", "POLICIES", "UNREPORTED", "Bucket", "Throttled", "Throttler"]

_CREATE: Final = (
    "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min",
    "Microsoft.Compute/HighCostSnapshotCreateHydrate30Min",
)
_LIST: Final = ("Microsoft.Compute/HighCostGet3Min", "Microsoft.Compute/HighCostGet30Min")
_GET: Final = ("Microsoft.Compute/LowCostGet3Min", "Microsoft.Compute/LowCostGet30Min")
_DELETE: Final = ("Microsoft.Compute/DeleteDisks3Min", "Microsoft.Compute/DeleteDisks30Min")
_DISK_PUT: Final = ("Microsoft.Compute/CreateUpdateDisks3Min", "Microsoft.Compute/CreateUpdateDisks30Min")
_POLL: Final = ("Microsoft.Compute/GetOperation3Min", "Microsoft.Compute/GetOperation30Min")

#: The Compute RP policies each operation is charged against (per subscription and region), as the recorded
#: answers name them: snapshot PUT and begin/endGetAccess share the create policy; snapshot and disk DELETE share
#: DeleteDisks; operation polls are charged to GetOperation.
POLICIES: Final[Mapping[str, tuple[str, ...]]] = {
    "snapshots.put": _CREATE,
    "snapshots.access": _CREATE,
    "snapshots.get": _GET,
    "snapshots.delete": _DELETE,
    "snapshots.list": _LIST,
    "disks.get": _GET,
    "disks.put": _DISK_PUT,
    "disks.delete": _DELETE,
    "disks.list": _LIST,
    "operations.get": _POLL,
}

#: ARM buckets that are charged but never reported: Azure's answers carry no `…-subscription-reads` header.
UNREPORTED: Final = frozenset({"subscription-reads"})

#: The ARM subscription bucket (and its response header) each HTTP method is charged against.
ARM_HEADERS: Final[Mapping[str, str]] = {
    "GET": "subscription-reads",
    "PUT": "subscription-writes",
    "PATCH": "subscription-writes",
    "POST": "subscription-writes",
    "DELETE": "subscription-deletes",
}


@dataclass
class Bucket:
    """`capacity` tokens, refilled continuously at `capacity / period`; one token per call."""

    capacity: int
    rate: float  # tokens per second
    tokens: float
    updated: datetime

    @classmethod
    def full(cls, size: BucketSize, now: datetime) -> Bucket:
        return cls(size.capacity, size.capacity / size.period.total_seconds(), float(size.capacity), now)

    def refill(self, now: datetime) -> None:
        elapsed = (now - self.updated).total_seconds()
        if elapsed > 0:
            self.tokens = min(float(self.capacity), self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)

    def seconds_until_token(self) -> float:
        missing = 1.0 - self.tokens
        return 0.0 if missing <= 0 else missing / self.rate

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.tokens + 1e-9))


@dataclass(frozen=True)
class Throttled:
    """A call refused: which policy ran dry, how long until it lets one through, and its size."""

    policy: str
    retry_after_s: int
    allowed: int


class Throttler:
    """Charge calls to buckets; answer the rate-limit headers, or which policy refused the call."""

    def __init__(self, clock: Clock, sizes: Mapping[str, BucketSize], *, enabled: bool = True) -> None:
        self._clock = clock
        self._sizes = dict(sizes)
        self.enabled = enabled
        self._buckets: dict[tuple[str, ...], Bucket] = {}

    def reset(self) -> None:
        self._buckets.clear()

    def _bucket(self, key: tuple[str, ...], policy: str, now: datetime) -> Bucket | None:
        size = self._sizes.get(policy)
        if size is None:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket.full(size, now)
        bucket.refill(now)
        return bucket

    def charge(
        self, operation: str, method: str, subscription_id: str, location: str
    ) -> tuple[dict[str, str], Throttled | None]:
        """Take one token from every bucket the call is charged to, or none if one of them is empty.

        Returns the `x-ms-ratelimit-remaining-*` headers and, when refused, why.
        """
        now = self._clock.now()
        sub, region = subscription_id.lower(), location.lower()
        buckets: list[tuple[str, str, Bucket]] = []  # (kind, policy, bucket)
        for policy in POLICIES.get(operation, ()):
            bucket = self._bucket(("rp", sub, region, policy), policy, now)
            if bucket is not None:
                buckets.append(("rp", policy, bucket))
        arm = ARM_HEADERS.get(method.upper())
        if arm is not None:
            bucket = self._bucket(("arm", sub, arm), arm, now)
            if bucket is not None:
                buckets.append(("arm", arm, bucket))
        refused: Throttled | None = None
        if self.enabled:
            for _, policy, bucket in buckets:
                if bucket.tokens < 1.0:
                    wait = max(1, math.ceil(bucket.seconds_until_token()))
                    if refused is None or wait > refused.retry_after_s:
                        refused = Throttled(policy, wait, bucket.capacity)
        if refused is None:
            for _, _, bucket in buckets:
                # Switched off, the buckets still count (floored at zero) so the headers stay informative.
                bucket.tokens = bucket.tokens - 1.0 if self.enabled else max(0.0, bucket.tokens - 1.0)
        headers: dict[str, str] = {}
        resource = [f"{policy};{bucket.remaining}" for kind, policy, bucket in buckets if kind == "rp"]
        if resource:
            headers["x-ms-ratelimit-remaining-resource"] = ",".join(resource)
        for kind, policy, bucket in buckets:
            if kind == "arm" and policy not in UNREPORTED:
                headers[f"x-ms-ratelimit-remaining-{policy}"] = str(bucket.remaining)
        return headers, refused
