"""The budget-aware pacer: calls to Azure wait for a token instead of meeting a 429, in deadline-fair order.

The buckets and what they learn from Azure's answers are in `azsnap.cloud.buckets`, which buckets a call draws on
in `azsnap.cloud.bucket_table`; the adapter's hooks and the per-task deadline in `azsnap.cloud.hooks` (re-exported
here).
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Final

from azsnap.clock import Clock
from azsnap.cloud.bucket_table import BucketKey, BucketTable
from azsnap.cloud.buckets import (
    KINDS,
    Kind,
    PacerConfig,
    TokenBucket,
    parse_remaining,
    retry_after_seconds,
)
from azsnap.cloud.errors import SlotMissed, Throttled
from azsnap.cloud.grants import BucketState, Grant, KindStats, PacerSnapshot, Waiter, bucket_states, missed_error
from azsnap.cloud.headers import RETRY_HEADERS
from azsnap.cloud.hooks import OPERATION_KINDS, PacerHooks, pacing, pacing_until

__all__ = [
    "OPERATION_KINDS",
    "BucketState",
    "Grant",
    "KindStats",
    "Pacer",
    "PacerHooks",
    "PacerSnapshot",
    "pacing",
    "pacing_until",
]

#: The shortest wait the pacer schedules: keeps a float rounding from spinning the loop at one instant.
_MIN_STEP: Final = 1e-3
_ROUND_TABLE_LIMIT: Final = 4096

_GroupKey = tuple[Kind, str, str]  # kind, subscription, location


class Pacer:
    """Token buckets per subscription, region and kind of call, shared by the whole operator.

    Time is the running loop's (`loop.time()`), so an emulated loop fast-forwards it. Waiters are served
    earliest `deadline` first (loop time), round-robin by `key` among equal deadlines, those without a
    deadline last; deletes wait while creates for the same subscription and region wait. A waiter with a
    hard deadline is never granted after it: it gets `SlotMissed`, naming the budget that ran out. `clock` is
    only used to read a `Retry-After` given as an HTTP date when the answer carries no `Date`.
    """

    def __init__(self, config: PacerConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or PacerConfig()
        self._clock = clock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._table = BucketTable(self.config)
        self._groups: dict[_GroupKey, list[Waiter]] = {}
        self._next_round: dict[str, int] = {}
        self._vround = 0
        self._seq = 0
        self._stats: dict[Kind, KindStats] = {kind: KindStats() for kind in KINDS}
        self._throttled = 0
        self._corrections = 0
        self._missed = 0
        self._backoffs = 0
        self._dispatch_soon: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- the callers' side

    async def acquire(
        self,
        kind: Kind,
        subscription_id: str,
        location: str,
        *,
        deadline: float | None = None,
        key: str = "",
        hard: bool = False,
    ) -> Grant:
        """Wait until every bucket of this kind has a token for the call, take them, and return the grant.

        With `hard`, raise `SlotMissed` at `deadline` instead of granting late. Without a deadline, raise
        `Throttled` at once when Azure blocked one of the buckets for longer than `max_blocked_wait_s`.
        """
        self.config.specs(kind)  # rejects an unknown kind before anything waits
        loop = self._bind()
        now = loop.time()
        group: _GroupKey = (kind, subscription_id, location)
        if hard and deadline is not None and now >= deadline:
            raise self._missed_error(kind, subscription_id, location, now)
        if not hard:
            blocked = max(
                (b.blocked_until for b in self._table.for_call(kind, subscription_id, location, now)), default=0
            )
            if blocked - now > self.config.max_blocked_wait_s:
                raise Throttled(
                    f"Azure blocked the {kind} budget for {blocked - now:.0f}s more (Retry-After)",
                    retry_after=blocked - now,
                    code="PacerBlocked",
                )
        if kind == "delete" and self.config.deletes_yield_to_creates:
            yield_limit = now + self.config.delete_max_yield_s
            deadline = yield_limit if deadline is None else min(deadline, yield_limit)
        rnd = max(self._next_round.get(key, 0), self._vround)
        self._next_round[key] = rnd + 1
        self._seq += 1
        priority = (0, deadline, rnd, self._seq) if deadline is not None else (1, 0.0, rnd, self._seq)
        waiter = Waiter(group, priority, rnd, now, loop.create_future())
        heapq.heappush(self._groups.setdefault(group, []), waiter)
        if hard and deadline is not None:
            waiter.expiry = loop.call_at(deadline, self._expire, waiter)
        self._wake_soon()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                for bucket in waiter.future.result().buckets:
                    bucket.refund()
            waiter.future.cancel()
            self._wake_soon()
            raise
        finally:
            if waiter.expiry is not None:
                waiter.expiry.cancel()

    def _expire(self, waiter: Waiter) -> None:
        """A hard deadline passed before the waiter was granted: it is missed, never sent."""
        if waiter.future.done():
            return
        kind, sub, loc = waiter.group
        waiter.future.set_exception(self._missed_error(kind, sub, loc, self._bind().time()))
        self._wake_soon()

    def _missed_error(self, kind: Kind, subscription_id: str, location: str, now: float) -> SlotMissed:
        self._missed += 1
        buckets = self._table.for_call(kind, subscription_id, location, now)
        lacking = [b for b in buckets if not b.available(now)] or buckets
        worst = max(lacking, key=lambda b: (b.ready_at(now), -b.spec.capacity / b.spec.period_s))
        return missed_error(kind, worst, location, now)

    @asynccontextmanager
    async def slot(
        self, kind: Kind, subscription_id: str, location: str, *, deadline: float | None = None, key: str = ""
    ) -> AsyncIterator[Grant]:
        """`acquire`, then run the body; a `Throttled` escaping the body blocks this budget for its retry_after."""
        grant = await self.acquire(kind, subscription_id, location, deadline=deadline, key=key)
        try:
            yield grant
        except Throttled as exc:
            self.block(kind, subscription_id, location, exc.retry_after)
            raise

    # -- what Azure tells us

    def observe(
        self,
        kind: Kind,
        subscription_id: str,
        location: str,
        status: int,
        headers: Mapping[str, str],
        *,
        grant: Grant | None = None,
    ) -> None:
        """Correct the buckets from an answer's rate-limit headers; on a throttling answer, block until Retry-After.

        Pass the call's `grant` where known: calls granted after it are then not counted twice.
        A 409 counts as throttling only with a `Retry-After` and a policy reported exhausted: Azure's other
        409s (the per-disk snapshot window, a busy disk) are about one resource, not the budget.
        """
        now = self._bind().time()
        reported: list[tuple[TokenBucket, int]] = []
        for policy, count in parse_remaining(headers).items():
            spec = self._table.spec_for(kind, policy, count)
            if spec is None:
                continue
            bucket = self._table.bucket(spec, subscription_id, location, now)
            counted = max(1, bucket.taken_total)  # without a grant: at least the answered call was counted
            if grant is not None and policy in grant.sequence:
                counted = grant.sequence[policy]
            # A refusal says the budget is spent, not how big it is: only answers that went through size it.
            bucket.learn(count, counted, learnable=status < 400)
            if bucket.correct(count, max(0, bucket.taken_total - counted)):
                self._corrections += 1
            reported.append((bucket, count))
        if grant is not None:
            answered = {id(bucket) for bucket, _ in reported}
            for bucket in grant.buckets:
                if id(bucket) not in answered and not bucket.answered:
                    bucket.unreported()
        if status < 400 and grant is not None:
            for bucket in grant.buckets:
                bucket.backoff_streak = 0  # the budget let a call through: the next refusal backs off afresh
        exhausted = [bucket for bucket, count in reported if count <= 0]
        has_retry_after = any(k.lower() in RETRY_HEADERS for k in headers)
        if status == 429 or (status == 409 and has_retry_after and exhausted):
            self._throttled += 1
            delay = retry_after_seconds(headers, self._clock.now() if self._clock else None)
            every = self._table.for_call(kind, subscription_id, location, now)
            targets = exhausted or [b for b in every if not b.spec.per_subscription] or every
            if delay is None:
                # No Retry-After (Azure's front door says the wait only in words): back off, doubling per answer
                # in a row, never longer than max_backoff_s; only this budget is held.
                self._backoffs += 1
                streak = max(bucket.backoff_streak for bucket in targets)
                delay = min(self.config.max_backoff_s, self.config.default_retry_after_s * 2**streak)
                for bucket in targets:
                    bucket.backoff_streak = streak + 1
            for bucket in targets:
                bucket.throttled(now + delay)
        self._wake_soon()

    def block(self, kind: Kind, subscription_id: str, location: str, retry_after: float | None) -> None:
        """Grant nothing of this kind here for `retry_after` seconds (the default when None), e.g. after a 429."""
        now = self._bind().time()
        delay = self.config.default_retry_after_s if retry_after is None else max(0.0, retry_after)
        for bucket in self._table.for_call(kind, subscription_id, location, now):
            bucket.block(now + delay)
        self._wake_soon()

    # -- introspection

    def snapshot(self) -> PacerSnapshot:
        now = self._bind().time()
        waiting: dict[BucketKey, int] = {}
        total = 0
        for (kind, sub, loc), heap in self._groups.items():
            count = sum(1 for waiter in heap if not waiter.future.done())
            total += count
            if count:
                for bucket in self._table.for_call(kind, sub, loc, now):
                    key = self._table.key(bucket.spec, sub, loc)
                    waiting[key] = waiting.get(key, 0) + count
        states = bucket_states(self._table.buckets, waiting, now)
        counters = (self._throttled, self._corrections, self._missed, self._backoffs)
        return PacerSnapshot(now, states, dict(self._stats), total, *counters)

    # -- the event loop

    def _bind(self) -> asyncio.AbstractEventLoop:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None:
                raise
            return self._loop  # e.g. a snapshot taken after the loop stopped
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError("a Pacer serves one event loop")
        return loop

    # -- dispatch: grant what the budget allows, in order, then sleep until the next token

    def _wake_soon(self) -> None:
        if self._dispatch_soon is None and self._loop is not None:
            self._dispatch_soon = self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        assert self._loop is not None
        self._dispatch_soon = None
        now = self._loop.time()
        reserved: set[int] = set()  # buckets a higher-priority waiter is waiting on: nobody behind may take them
        wake = math.inf
        heads: list[tuple[tuple[int, float, int, int], _GroupKey]] = []
        for group, heap in list(self._groups.items()):
            while heap and heap[0].future.done():
                heapq.heappop(heap)
            if heap:
                heads.append((heap[0].priority, group))
            else:
                del self._groups[group]
        heapq.heapify(heads)
        held: list[_GroupKey] = []
        while heads:
            _, group = heapq.heappop(heads)
            kind, sub, loc = group
            heap = self._groups[group]
            waiter = heap[0]
            if kind == "delete" and self._delete_held(waiter, now):
                held.append(group)  # reconsidered once the creates have had their turn
                continue
            buckets = self._table.for_call(kind, sub, loc, now)
            if self._try_grant(waiter, buckets, reserved, now):
                heapq.heappop(heap)
                while heap and heap[0].future.done():
                    heapq.heappop(heap)
                if heap:
                    heapq.heappush(heads, (heap[0].priority, group))
            else:
                wake = min(wake, self._ready_at(buckets, now))
        for group in held:
            kind, sub, loc = group
            heap = self._groups[group]
            if self.config.deletes_yield_to_creates and self._creates_waiting(sub, loc):
                wake = min(wake, heap[0].enqueued_at + self.config.delete_max_yield_s)
                continue
            buckets = self._table.for_call(kind, sub, loc, now)
            while heap and self._try_grant(heap[0], buckets, reserved, now):
                heapq.heappop(heap)
                while heap and heap[0].future.done():
                    heapq.heappop(heap)
            if heap:
                wake = min(wake, self._ready_at(buckets, now))
        self._arm_timer(wake, now)
        self._forget_rounds()

    def _delete_held(self, waiter: Waiter, now: float) -> bool:
        config = self.config
        overdue = now >= waiter.enqueued_at + config.delete_max_yield_s
        return config.deletes_yield_to_creates and not overdue

    def _creates_waiting(self, subscription_id: str, location: str) -> bool:
        """Creates waiting in this subscription and region (any region when the delete's is unknown: "")."""
        return any(
            not heap[0].future.done()  # heads are pruned of finished waiters before this is asked
            for (kind, sub, loc), heap in self._groups.items()
            if heap and kind == "create" and sub == subscription_id and (loc == location or not location)
        )

    def _try_grant(self, waiter: Waiter, buckets: list[TokenBucket], reserved: set[int], now: float) -> bool:
        if waiter.expiry is not None and now >= waiter.priority[1]:
            self._expire(waiter)  # a hard deadline is due: never granted late, whatever the buckets hold
            return True
        lacking = [bucket for bucket in buckets if id(bucket) in reserved or not bucket.available(now)]
        if lacking:
            reserved.update(id(bucket) for bucket in lacking)
            return False
        kind, sub, loc = waiter.group
        sequence = {bucket.spec.policy: bucket.take(now, self.config.probe_first) for bucket in buckets}
        waited = max(0.0, now - waiter.enqueued_at)
        stats = self._stats[kind]
        self._stats[kind] = KindStats(stats.grants + 1, stats.waits + (waited > 0), stats.waited_s + waited)
        self._vround = max(self._vround, waiter.round)
        waiter.future.set_result(Grant(kind, sub, loc, now, waited, sequence, tuple(buckets)))
        return True

    @staticmethod
    def _ready_at(buckets: list[TokenBucket], now: float) -> float:
        """When the missing tokens will be there; inf if only a reservation holds the waiter (its holder wakes us)."""
        missing = [bucket.ready_at(now) for bucket in buckets if not bucket.available(now)]
        return max(missing) if missing else math.inf

    def _arm_timer(self, wake: float, now: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if math.isfinite(wake):
            self._timer = self._loop.call_at(max(wake, now + _MIN_STEP), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()

    def _forget_rounds(self) -> None:
        """Keys at or behind the current round carry no credit: drop them so the table stays small."""
        if len(self._next_round) > _ROUND_TABLE_LIMIT:
            self._next_round = {key: rnd for key, rnd in self._next_round.items() if rnd > self._vround}
