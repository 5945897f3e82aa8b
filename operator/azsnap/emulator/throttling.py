"""Token buckets or fixed windows per subscription and region, on the emulated clock, as Compute RP and ARM throttle.

Two ways to refuse, both recorded from Azure: the Compute shape (`429 OperationNotAllowed` with `Retry-After`, the
rate-limit headers and a `TooManyRequests` detail naming the policy, its window and its counts) and the front-door
shape (`429 SubscriptionRequestsThrottled`, no `Retry-After`, no rate-limit headers, the wait only in the message).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Literal

from multidict import CIMultiDict

from azsnap.clock import Clock
from azsnap.emulator.arm import ArmError
from azsnap.emulator.config import BucketSize

__all__ = [
    "ARM_HEADERS",
    "POLICIES",
    "UNREPORTED",
    "Bucket",
    "Throttled",
    "Throttler",
    "injected_throttle",
    "throttled_error",
]

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

#: Azure's longest `Retry-After` on a Compute 429 ("Troubleshooting API throttling errors" shows 1200).
MAX_RETRY_AFTER_S: Final = 1200
_RESOURCE_HEADER: Final = "x-ms-ratelimit-remaining-resource"

ThrottleMode = Literal["token", "window"]
ThrottleShape = Literal["compute", "subscription"]


@dataclass
class Bucket:
    """`capacity` tokens, refilled continuously at `capacity / period` (token mode) or all at once per window."""

    capacity: int
    rate: float  # tokens per second
    tokens: float
    updated: datetime
    period: timedelta
    window: bool = False
    measured: int = 0  # calls seen in the current window, refused ones included (what Azure's detail reports)

    @classmethod
    def full(cls, size: BucketSize, now: datetime, *, window: bool = False) -> Bucket:
        capacity = size.capacity
        return cls(capacity, capacity / size.period.total_seconds(), float(capacity), now, size.period, window)

    def window_start(self, when: datetime) -> datetime:
        """The start of the fixed window holding `when` (windows are aligned on the Unix epoch)."""
        period = self.period.total_seconds()
        seconds = when.timestamp()
        return datetime.fromtimestamp(math.floor(seconds / period) * period, tz=UTC)

    def refill(self, now: datetime) -> None:
        if self.window:
            if self.window_start(now) > self.window_start(self.updated):
                self.tokens = float(self.capacity)
                self.measured = 0
        else:
            elapsed = (now - self.updated).total_seconds()
            if elapsed > 0:
                self.tokens = min(float(self.capacity), self.tokens + elapsed * self.rate)
        self.updated = max(self.updated, now)

    def seconds_until_token(self, now: datetime) -> float:
        if self.tokens >= 1.0:
            return 0.0
        if self.window:
            return (self.window_start(now) + self.period - now).total_seconds()
        return (1.0 - self.tokens) / self.rate

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.tokens + 1e-9))


@dataclass(frozen=True)
class Throttled:
    """A call refused: which policy ran dry, how long until it lets one through, and its counts and window."""

    policy: str
    retry_after_s: int
    allowed: int
    measured: int = 0
    start: datetime | None = None
    end: datetime | None = None
    shape: ThrottleShape = "compute"
    operation: str = ""
    subscription_id: str = ""
    method: str = "GET"


class Throttler:
    """Charge calls to buckets; answer the rate-limit headers, or which policy refused the call.

    `mode` "window" counts calls in fixed windows (3 and 30 minutes, aligned on the epoch), and a refusal's
    `Retry-After` runs to the end of the window, at most `MAX_RETRY_AFTER_S`; `retry_after_s` fixes it instead.
    `shape` "subscription" refuses as Azure's front door does (no `Retry-After`, no rate-limit headers).
    `header_lines` sends each Compute policy in its own `x-ms-ratelimit-remaining-resource` line.
    """

    def __init__(
        self,
        clock: Clock,
        sizes: Mapping[str, BucketSize],
        *,
        enabled: bool = True,
        mode: ThrottleMode = "token",
        retry_after_s: int | None = None,
        shape: ThrottleShape = "compute",
        header_lines: bool = False,
    ) -> None:
        if mode not in ("token", "window"):
            raise ValueError(f"unknown throttling mode {mode!r}; token or window")
        if shape not in ("compute", "subscription"):
            raise ValueError(f"unknown throttling shape {shape!r}; compute or subscription")
        if retry_after_s is not None and retry_after_s < 0:
            raise ValueError("retry_after_s must not be negative")
        self._clock = clock
        self._sizes = dict(sizes)
        self.enabled = enabled
        self.mode: ThrottleMode = mode
        self.retry_after_s = retry_after_s
        self.shape: ThrottleShape = shape
        self.header_lines = header_lines
        self._buckets: dict[tuple[str, ...], Bucket] = {}

    def reset(self) -> None:
        self._buckets.clear()

    def _bucket(self, key: tuple[str, ...], policy: str, now: datetime) -> Bucket | None:
        size = self._sizes.get(policy)
        if size is None:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            # ARM's own buckets stay token buckets: only the Compute RP's policies are windowed.
            windowed = self.mode == "window" and key[0] == "rp"
            bucket = self._buckets[key] = Bucket.full(size, now, window=windowed)
        bucket.refill(now)
        return bucket

    def charge(
        self, operation: str, method: str, subscription_id: str, location: str
    ) -> tuple[CIMultiDict[str], Throttled | None]:
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
        for _, _, bucket in buckets:
            bucket.measured += 1
        refused = self._refusal(buckets, now, operation, subscription_id, method) if self.enabled else None
        if refused is None:
            for _, _, bucket in buckets:
                # Switched off, the buckets still count (floored at zero) so the headers stay informative.
                bucket.tokens = bucket.tokens - 1.0 if self.enabled else max(0.0, bucket.tokens - 1.0)
        headers: CIMultiDict[str] = CIMultiDict()
        if refused is not None and refused.shape == "subscription":
            return headers, refused  # the front door's 429 carries no rate-limit header
        resource = [f"{policy};{bucket.remaining}" for kind, policy, bucket in buckets if kind == "rp"]
        if resource and self.header_lines:
            for part in resource:
                headers.add(_RESOURCE_HEADER, part)
        elif resource:
            headers[_RESOURCE_HEADER] = ",".join(resource)
        for kind, policy, bucket in buckets:
            if kind == "arm" and policy not in UNREPORTED:
                headers[f"x-ms-ratelimit-remaining-{policy}"] = str(bucket.remaining)
        return headers, refused

    def _refusal(
        self, buckets: list[tuple[str, str, Bucket]], now: datetime, operation: str, subscription_id: str, method: str
    ) -> Throttled | None:
        refused: Throttled | None = None
        for _, policy, bucket in buckets:
            if bucket.tokens >= 1.0:
                continue
            wait = max(1, math.ceil(bucket.seconds_until_token(now)))
            if bucket.window:
                wait = min(wait, MAX_RETRY_AFTER_S)
            if self.retry_after_s is not None:
                wait = self.retry_after_s
            if refused is None or wait > refused.retry_after_s:
                start = bucket.window_start(now) if bucket.window else now - bucket.period
                end = start + bucket.period if bucket.window else now + timedelta(seconds=wait)
                refused = Throttled(
                    policy,
                    wait,
                    bucket.capacity,
                    bucket.measured,
                    start,
                    end,
                    self.shape,
                    operation,
                    subscription_id,
                    method.upper(),
                )
        return refused


def throttled_error(refused: Throttled) -> ArmError:
    """The 429 Azure answers for this refusal, in the refusal's shape."""
    if refused.shape == "subscription":
        path = (
            f"{refused.method}/SUBSCRIPTIONS/RESOURCEGROUPS/PROVIDERS/MICROSOFT.COMPUTE/{_path_kind(refused.operation)}"
        )
        return ArmError(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of requests for subscription '{refused.subscription_id}' and operation '{path}' exceeded the "
            f"backend storage limit. Please try again after '{refused.retry_after_s}' seconds.",
            arm_level=True,
        )
    group = refused.policy.rsplit("/", 1)[-1]
    detail_message: dict[str, object] = {"operationGroup": group}
    if refused.start is not None and refused.end is not None:
        detail_message["startTime"] = _iso(refused.start)
        detail_message["endTime"] = _iso(refused.end)
    detail_message["allowedRequestCount"] = refused.allowed
    if refused.measured:
        detail_message["measuredRequestCount"] = refused.measured
    return ArmError(
        429,
        "OperationNotAllowed",
        "The server rejected the request because too many requests have been received for this subscription.",
        details=[{"code": "TooManyRequests", "target": group, "message": json.dumps(detail_message)}],
        headers={"Retry-After": str(refused.retry_after_s)},
    )


def injected_throttle(retry_after_s: int) -> ArmError:
    """A fault rule's 429: the Compute shape, for a policy no bucket tracks."""
    group = "InjectedFault"
    return ArmError(
        429,
        "OperationNotAllowed",
        "The server rejected the request because too many requests have been received for this subscription.",
        details=[
            {"code": "TooManyRequests", "target": group, "message": f"Too many requests for operation group {group}."}
        ],
        headers={"Retry-After": str(retry_after_s)},
    )


def _path_kind(operation: str) -> str:
    return operation.split(".", 1)[0].upper() + "/"


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()
