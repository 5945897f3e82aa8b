"""The pacer's table of token buckets: which buckets a call of a kind in a subscription and region draws on.

A bucket per rate-limit policy, subscription and region (subscription-wide policies share one across regions);
policies Azure charges a call to that the configuration lacks are attached to the kind, learned from the answer.
"""

from __future__ import annotations

from azsnap.cloud.buckets import KINDS, BucketSpec, Kind, PacerConfig, TokenBucket, period_from_policy

__all__ = ["BucketKey", "BucketTable"]

BucketKey = tuple[str, str, str]  # policy, subscription, location ("" for subscription-wide policies)


class BucketTable:
    """The buckets of one pacer, made on first use and refilled to `now` whenever they are handed out."""

    def __init__(self, config: PacerConfig) -> None:
        self.config = config
        self.buckets: dict[BucketKey, TokenBucket] = {}
        self._attached: dict[Kind, list[BucketSpec]] = {kind: [] for kind in KINDS}
        self._learned: dict[str, BucketSpec] = {}

    @staticmethod
    def key(spec: BucketSpec, subscription_id: str, location: str) -> BucketKey:
        return (spec.policy, subscription_id, "" if spec.per_subscription else location)

    def bucket(self, spec: BucketSpec, subscription_id: str, location: str, now: float) -> TokenBucket:
        key = self.key(spec, subscription_id, location)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = TokenBucket(spec, self.config.margin, now)
        bucket.refill(now)
        return bucket

    def for_call(self, kind: Kind, subscription_id: str, location: str, now: float) -> list[TokenBucket]:
        """Every bucket a call of `kind` here draws on: the configured ones and those attached since."""
        specs = (*self.config.specs(kind), *self._attached[kind])
        return [self.bucket(spec, subscription_id, location, now) for spec in specs]

    def spec_for(self, kind: Kind, policy: str, remaining: int) -> BucketSpec | None:
        """The spec of a policy Azure charged this kind of call to; attach (or learn) one the config lacks."""
        for spec in (*self.config.specs(kind), *self._attached[kind]):
            if spec.policy == policy:
                return spec
        if not self.config.learn_policies:
            return None
        known = self._learned.get(policy)
        if known is None:
            known = next((spec for other in KINDS for spec in self.config.specs(other) if spec.policy == policy), None)
        if known is None:
            period = period_from_policy(policy)
            if period is None:
                return None
            known = self._learned[policy] = BucketSpec(policy, remaining + 1, period)
        self._attached[kind].append(known)
        return known
