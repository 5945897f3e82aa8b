import asyncio
import random
from datetime import UTC, datetime

import looptime
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from azsnap.clock import ManualClock
from azsnap.cloud.buckets import (
    ARM_WRITES,
    HIGH_COST_GET_3MIN,
    SNAPSHOT_CREATE_3MIN,
    SNAPSHOT_CREATE_30MIN,
    BucketSpec,
    PacerConfig,
    TokenBucket,
    parse_remaining,
    period_from_policy,
    retry_after_seconds,
)
from azsnap.cloud.budget import capacity_needed, theoretical_best_lateness
from azsnap.cloud.errors import SlotMissed, Throttled
from azsnap.cloud.pacer import Grant, Pacer, PacerHooks, pacing

SUB = "00000000-0000-0000-0000-000000000001"
LOC = "westeurope"
CREATE_3MIN = SNAPSHOT_CREATE_3MIN.policy
CREATE_30MIN = SNAPSHOT_CREATE_30MIN.policy
RESOURCE = "x-ms-ratelimit-remaining-resource"
GET_OPERATION_3MIN = "Microsoft.Compute/GetOperation3Min"
GET_OPERATION_30MIN = "Microsoft.Compute/GetOperation30Min"

#: Azure's two snapshot-create buckets, used in full (no margin, no ARM bucket): the shape of the budget alone.
COMPUTE_ONLY = PacerConfig(probe_first=False, create=(SNAPSHOT_CREATE_3MIN, SNAPSHOT_CREATE_30MIN), margin=1.0)
#: One token every 10 s: ordering is easy to read.
SLOW = BucketSpec("test/Slow", 1, 10)
SLOW_DELETE = BucketSpec("test/SlowDelete", 1, 10)
ORDERING = PacerConfig(probe_first=False, create=(SLOW,), delete=(SLOW_DELETE,), margin=1.0)


def tokens(pacer: Pacer, policy: str, location: str = LOC) -> float:
    (state,) = [b for b in pacer.snapshot().buckets if b.policy == policy and b.location in (location, "")]
    return state.tokens


def within_envelope(times: list[float], spec: BucketSpec, margin: float) -> bool:
    """Replay the grants against Azure's own bucket (full at the start): it must never be asked for a missing token."""
    capacity, rate = spec.capacity * margin, spec.rate * margin
    level, last = capacity, 0.0
    for at in sorted(times):
        level = min(capacity, level + (at - last) * rate) - 1
        last = at
        if level < -1e-6:
            return False
    return True


async def creates(pacer: Pacer, n: int, **kwargs: object) -> list[Grant]:
    return await asyncio.gather(*(pacer.acquire("create", SUB, LOC, key=f"disk-{i}", **kwargs) for i in range(n)))  # type: ignore[arg-type]


# -- pacing a load


@pytest.mark.looptime
async def test_a_load_that_fits_is_granted_at_once() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    grants = await creates(pacer, 240)
    assert {g.granted_at for g in grants} == {0.0}
    stats = pacer.snapshot().kinds["create"]
    assert (stats.grants, stats.waits, stats.waited_s) == (240, 0, 0.0)
    assert tokens(pacer, CREATE_3MIN) == pytest.approx(0.0)
    assert tokens(pacer, CREATE_30MIN) == pytest.approx(1680.0)


@pytest.mark.looptime
async def test_an_overflow_goes_at_the_refill_rate_and_no_later() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    times = sorted(g.granted_at for g in await creates(pacer, 300))
    assert times[:240] == [0.0] * 240
    # The 3-minute bucket refills 240 per 180 s: one token every 0.75 s.
    for k, at in enumerate(times[240:], start=1):
        assert at == pytest.approx(k * 0.75, abs=2e-3)
    best = theoretical_best_lateness(300, COMPUTE_ONLY)
    assert all(b - 1e-9 <= t <= b + 2e-3 for t, b in zip(times, best, strict=True))
    stats = pacer.snapshot().kinds["create"]
    assert stats.waits == 60
    assert stats.waited_s == pytest.approx(sum(times[240:]), abs=0.1)


@pytest.mark.looptime
async def test_default_budget_keeps_the_margin_and_the_arm_write_bucket() -> None:
    config = PacerConfig(probe_first=False)
    pacer = Pacer(config)
    times = sorted(g.granted_at for g in await creates(pacer, 300))
    assert times.count(0.0) == 194  # ARM writes: 200 × 0.97
    best = theoretical_best_lateness(300, config)
    assert all(t >= b - 1e-9 for t, b in zip(times, best, strict=True))
    for spec in config.create:
        assert within_envelope(times, spec, config.margin)
    margin = config.margin  # 97% of the 3-minute bucket: burst 232.8, then 1.2933 per second
    assert times[-1] == pytest.approx((300 - 240 * margin) / (240 / 180 * margin), abs=2e-3)


@pytest.mark.looptime
async def test_regions_and_subscriptions_have_their_own_compute_buckets() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    await creates(pacer, 240)
    other_region = await pacer.acquire("create", SUB, "northeurope")
    other_sub = await pacer.acquire("create", "sub-2", LOC)
    assert other_region.granted_at == other_sub.granted_at == 0.0


@pytest.mark.looptime
async def test_arm_buckets_span_the_regions_of_a_subscription() -> None:
    config = PacerConfig(probe_first=False, create=(ARM_WRITES,), margin=1.0)
    pacer = Pacer(config)
    await asyncio.gather(*(pacer.acquire("create", SUB, f"region-{i % 4}") for i in range(200)))
    late = await pacer.acquire("create", SUB, "region-9")
    assert late.granted_at == pytest.approx(0.1, abs=2e-3)  # 10 tokens per second


# -- invariants under random load


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(min_value=1, max_value=300),
    spread=st.sampled_from([0.0, 30.0, 120.0, 600.0]),
    margin=st.sampled_from([1.0, 0.97, 0.5]),
    rnd=st.randoms(use_true_random=False),
)
def test_buckets_never_go_negative_and_grants_stay_inside_the_budget(
    n: int, spread: float, margin: float, rnd: random.Random
) -> None:
    kinds = ["create", "create", "delete", "list"]
    arrivals = [
        (
            rnd.uniform(0, spread),
            rnd.choice(kinds),
            rnd.randrange(8),
            rnd.choice([None, rnd.uniform(0, 900)]),
        )
        for _ in range(n)
    ]
    create_small = BucketSpec("test/Create", 20, 60)
    shared = BucketSpec("test/Shared", 15, 30)
    config = PacerConfig(
        probe_first=False,
        create=(create_small, shared),
        delete=(shared,),
        list=(BucketSpec("test/List", 5, 20),),
        margin=margin,
    )
    loop = looptime.new_event_loop(start=0)
    granted: dict[str, list[float]] = {"create": [], "delete": [], "list": []}
    lowest: list[float] = []

    async def one(pacer: Pacer, delay: float, kind: str, disk: int, deadline: float | None) -> None:
        await asyncio.sleep(delay)
        grant = await pacer.acquire(kind, SUB, LOC, key=f"disk-{disk}", deadline=deadline)  # type: ignore[arg-type]
        granted[kind].append(grant.granted_at)
        lowest.append(min(b.tokens for b in pacer.snapshot().buckets))

    async def scenario() -> Pacer:
        pacer = Pacer(config)
        await asyncio.gather(*(one(pacer, *a) for a in arrivals))
        return pacer

    try:
        pacer = loop.run_until_complete(scenario())  # a new looptime loop starts with its fake time on
    finally:
        loop.close()
    assert sum(len(times) for times in granted.values()) == len(arrivals)
    assert min(lowest) >= 0
    assert within_envelope(granted["create"], create_small, margin)
    assert within_envelope(granted["create"] + granted["delete"], shared, margin)
    assert within_envelope(granted["list"], config.list[0], margin)
    assert pacer.snapshot().waiting == 0


def test_a_token_bucket_clamps_at_zero_and_at_capacity() -> None:
    bucket = TokenBucket(BucketSpec("test/B", 2, 10), 1.0, now=0.0)
    bucket.take(0.0, probing=False)
    bucket.take(0.0, probing=False)
    bucket.take(0.0, probing=False)  # the pacer never does this; the bucket still never goes negative
    assert bucket.tokens == 0.0
    bucket.refill(1000.0)
    assert bucket.tokens == 2.0
    assert not bucket.correct(5, 0)  # a header never raises our estimate
    assert bucket.tokens == 2.0


# -- Retry-After and header correction


@pytest.mark.looptime
async def test_a_429_blocks_the_budget_until_retry_after() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    await pacer.acquire("create", SUB, LOC)
    pacer.observe("create", SUB, LOC, 429, {"Retry-After": "120"})
    grants = await creates(pacer, 5)
    assert min(g.granted_at for g in grants) >= 120
    assert max(g.granted_at for g in grants) == pytest.approx(120, abs=2e-3)
    assert pacer.snapshot().throttled == 1


@pytest.mark.looptime
async def test_retry_after_as_an_http_date_counts_from_the_answers_date() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    headers = {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT", "Date": "Wed, 21 Oct 2026 07:26:30 GMT"}
    pacer.observe("create", SUB, LOC, 429, headers)
    grant = await pacer.acquire("create", SUB, LOC)
    assert grant.granted_at == pytest.approx(90, abs=2e-3)


@pytest.mark.looptime
async def test_retry_after_as_an_http_date_without_date_uses_the_clock() -> None:
    clock = ManualClock(datetime(2026, 10, 21, 7, 27, 0, tzinfo=UTC))
    pacer = Pacer(COMPUTE_ONLY, clock=clock)
    pacer.observe("create", SUB, LOC, 429, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})
    grant = await pacer.acquire("create", SUB, LOC)
    assert grant.granted_at == pytest.approx(60, abs=2e-3)


@pytest.mark.looptime
async def test_a_429_without_retry_after_blocks_for_the_default() -> None:
    pacer = Pacer(PacerConfig(probe_first=False, create=COMPUTE_ONLY.create, margin=1.0, default_retry_after_s=45))
    pacer.observe("create", SUB, LOC, 429, {})
    assert (await pacer.acquire("create", SUB, LOC)).granted_at == pytest.approx(45, abs=2e-3)


@pytest.mark.looptime
async def test_a_429_blocks_only_the_policy_azure_reports_exhausted() -> None:
    pacer = Pacer(PacerConfig(probe_first=False, margin=1.0))
    headers = {RESOURCE: f"{CREATE_3MIN};0,{CREATE_30MIN};1500", "Retry-After": "30"}
    pacer.observe("create", SUB, LOC, 429, headers)
    blocked = {b.policy: b.blocked_until for b in pacer.snapshot().buckets}
    assert blocked[CREATE_3MIN] == pytest.approx(30)
    assert blocked[CREATE_30MIN] is None
    assert blocked.get("ARM/subscription-writes") is None


@pytest.mark.looptime
async def test_a_409_about_one_disk_does_not_block_the_budget() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    pacer.observe("create", SUB, LOC, 409, {"Retry-After": "300"})
    assert (await pacer.acquire("create", SUB, LOC)).granted_at == 0.0
    pacer.observe("create", SUB, LOC, 409, {"Retry-After": "60", RESOURCE: f"{CREATE_30MIN};0"})
    assert (await pacer.acquire("create", SUB, LOC)).granted_at == pytest.approx(60, abs=2e-3)


@pytest.mark.looptime
async def test_a_throttled_body_of_a_slot_blocks_the_budget() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    with pytest.raises(Throttled):
        async with pacer.slot("create", SUB, LOC, key="disk-1"):
            raise Throttled("too many requests", retry_after=75)
    assert (await pacer.acquire("create", SUB, LOC)).granted_at == pytest.approx(75, abs=2e-3)


@pytest.mark.looptime
async def test_headers_lower_our_tokens_and_never_raise_them() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    await pacer.acquire("create", SUB, LOC)
    pacer.observe(
        "create", SUB, LOC, 200, {"X-MS-RateLimit-Remaining-Resource": f"{CREATE_3MIN};100,{CREATE_30MIN};1919"}
    )
    assert tokens(pacer, CREATE_3MIN) == pytest.approx(100)
    assert tokens(pacer, CREATE_30MIN) == pytest.approx(1919)
    pacer.observe("create", SUB, LOC, 200, {RESOURCE: f"{CREATE_3MIN};200"})
    assert tokens(pacer, CREATE_3MIN) == pytest.approx(100)
    assert pacer.snapshot().corrections == 1


@pytest.mark.looptime
async def test_a_correction_discounts_the_calls_granted_after_the_answered_one() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    first = await pacer.acquire("create", SUB, LOC)
    await creates(pacer, 10)
    pacer.observe("create", SUB, LOC, 201, {RESOURCE: f"{CREATE_3MIN};100"}, grant=first)
    assert tokens(pacer, CREATE_3MIN) == pytest.approx(90)


@pytest.mark.looptime
async def test_a_correction_keeps_the_margin_in_reserve() -> None:
    pacer = Pacer(PacerConfig(probe_first=False))  # margin 0.97: 6 of ARM's 200 writes stay unused
    pacer.observe("create", SUB, LOC, 201, {"x-ms-ratelimit-remaining-subscription-writes": "199"})  # sized: 200
    pacer.observe("create", SUB, LOC, 201, {"x-ms-ratelimit-remaining-subscription-writes": "50"})
    assert tokens(pacer, "ARM/subscription-writes") == pytest.approx(44)


@pytest.mark.looptime
async def test_a_corrected_bucket_paces_from_the_corrected_level() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    pacer.observe("create", SUB, LOC, 200, {RESOURCE: f"{CREATE_3MIN};239"})  # the first answer sizes it: 240
    pacer.observe("create", SUB, LOC, 200, {RESOURCE: f"{CREATE_3MIN};2"})
    times = sorted(g.granted_at for g in await creates(pacer, 4))
    assert times[:2] == [0.0, 0.0]
    assert times[2:] == pytest.approx([0.75, 1.5], abs=2e-3)


@pytest.mark.looptime
async def test_a_policy_azure_charges_to_another_kind_is_attached_to_it() -> None:
    pacer = Pacer(COMPUTE_ONLY)
    pacer.observe("delete", SUB, LOC, 200, {RESOURCE: f"{CREATE_3MIN};239"})
    assert tokens(pacer, CREATE_3MIN) == pytest.approx(239)
    await pacer.acquire("delete", SUB, LOC)
    assert tokens(pacer, CREATE_3MIN) == pytest.approx(238)


@pytest.mark.looptime
async def test_an_unknown_policy_is_learned_from_its_name_and_count() -> None:
    pacer = Pacer(PacerConfig(probe_first=False, margin=1.0))
    pacer.observe("delete", SUB, LOC, 200, {RESOURCE: "Microsoft.Compute/DeleteSnapshot3Min;1"})
    (learned,) = [b for b in pacer.snapshot().buckets if b.policy == "Microsoft.Compute/DeleteSnapshot3Min"]
    assert (learned.azure_capacity, learned.tokens) == (2, 1)
    first, second = await asyncio.gather(*(pacer.acquire("delete", SUB, LOC) for _ in range(2)))
    assert first.granted_at == 0.0
    assert second.granted_at == pytest.approx(90, abs=2e-3)  # 2 per 180 s
    pacer.observe("delete", SUB, LOC, 200, {RESOURCE: "Microsoft.Compute/DeleteSnapshot3Min;5"})
    (learned,) = [b for b in pacer.snapshot().buckets if b.policy == "Microsoft.Compute/DeleteSnapshot3Min"]
    assert learned.azure_capacity == 6


@pytest.mark.looptime
async def test_learning_can_be_switched_off() -> None:
    pacer = Pacer(PacerConfig(probe_first=False, learn_policies=False))
    pacer.observe("delete", SUB, LOC, 200, {RESOURCE: f"{CREATE_3MIN};0,Microsoft.Compute/X3Min;0"})
    assert (await pacer.acquire("delete", SUB, LOC)).granted_at == 0.0
    assert {b.policy for b in pacer.snapshot().buckets} == {
        "ARM/subscription-deletes",
        "Microsoft.Compute/DeleteDisks3Min",
        "Microsoft.Compute/DeleteDisks30Min",
    }


# -- ordering


async def exhaust(pacer: Pacer) -> None:
    """Take the only token, so everything after this waits."""
    await pacer.acquire("create", SUB, LOC)


async def grant_order(tasks: dict[str, asyncio.Task[Grant]]) -> list[str]:
    grants = {name: await task for name, task in tasks.items()}
    return sorted(grants, key=lambda name: grants[name].granted_at)


@pytest.mark.looptime
async def test_the_nearest_deadline_goes_first_and_no_deadline_last() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    deadlines = {"d500": 500.0, "d100": 100.0, "none": None, "d300": 300.0, "d200": 200.0}
    tasks = {
        name: asyncio.create_task(pacer.acquire("create", SUB, LOC, deadline=deadline, key=name))
        for name, deadline in deadlines.items()
    }
    assert await grant_order(tasks) == ["d100", "d200", "d300", "d500", "none"]


@pytest.mark.looptime
async def test_a_late_arrival_with_a_nearer_deadline_overtakes_the_queue() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    relaxed = [asyncio.create_task(pacer.acquire("create", SUB, LOC, deadline=1000.0)) for _ in range(3)]
    await asyncio.sleep(12)  # one of them went at t=10
    urgent = await pacer.acquire("create", SUB, LOC, deadline=50.0)
    assert urgent.granted_at == pytest.approx(20, abs=2e-3)
    later = sorted(g.granted_at for g in await asyncio.gather(*relaxed))
    assert later == pytest.approx([10, 30, 40], abs=2e-3)


@pytest.mark.looptime
async def test_equal_deadlines_take_turns_by_disk() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    tasks: dict[str, asyncio.Task[Grant]] = {}
    for disk, count in (("a", 5), ("b", 2), ("c", 1)):
        for i in range(count):
            tasks[f"{disk}{i}"] = asyncio.create_task(pacer.acquire("create", SUB, LOC, deadline=3600.0, key=disk))
    assert await grant_order(tasks) == ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]


@pytest.mark.looptime
async def test_a_disk_arriving_behind_a_busy_one_is_not_starved() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    busy = [asyncio.create_task(pacer.acquire("create", SUB, LOC, key="busy")) for _ in range(20)]
    await asyncio.sleep(55)  # five of the busy disk's calls went
    quiet = await pacer.acquire("create", SUB, LOC, key="quiet")
    assert quiet.granted_at == pytest.approx(60, abs=2e-3)
    await asyncio.gather(*busy)


@pytest.mark.looptime
async def test_deletes_yield_to_waiting_creates() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    create_tasks = [asyncio.create_task(pacer.acquire("create", SUB, LOC, key=f"d{i}")) for i in range(3)]
    delete = await pacer.acquire("delete", SUB, LOC)
    last_create = max(g.granted_at for g in await asyncio.gather(*create_tasks))
    assert last_create == pytest.approx(30, abs=2e-3)
    assert delete.granted_at == last_create


@pytest.mark.looptime
async def test_a_delete_without_a_region_yields_to_creates_in_any_region_of_its_subscription() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    create = asyncio.create_task(pacer.acquire("create", SUB, LOC))
    other_sub = await pacer.acquire("delete", "sub-2", "")
    delete = await pacer.acquire("delete", SUB, "")
    assert other_sub.granted_at == 0.0
    assert delete.granted_at == (await create).granted_at == pytest.approx(10, abs=2e-3)


@pytest.mark.looptime
async def test_deletes_do_not_yield_to_creates_elsewhere_or_when_told_not_to() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    waiting = asyncio.create_task(pacer.acquire("create", SUB, LOC))
    assert (await pacer.acquire("delete", SUB, "northeurope")).granted_at == 0.0
    await waiting
    free = Pacer(
        PacerConfig(
            probe_first=False, create=(SLOW,), delete=(SLOW_DELETE,), margin=1.0, deletes_yield_to_creates=False
        )
    )
    await exhaust(free)
    waiting = asyncio.create_task(free.acquire("create", SUB, LOC))
    assert (await free.acquire("delete", SUB, LOC)).waited_s == 0.0
    await waiting


@pytest.mark.looptime
async def test_a_delete_stops_yielding_after_its_longest_wait() -> None:
    config = PacerConfig(probe_first=False, create=(SLOW,), delete=(SLOW_DELETE,), margin=1.0, delete_max_yield_s=45)
    pacer = Pacer(config)
    await exhaust(pacer)
    flood = [asyncio.create_task(pacer.acquire("create", SUB, LOC, key=f"d{i}")) for i in range(20)]
    delete = await pacer.acquire("delete", SUB, LOC)
    assert delete.granted_at == pytest.approx(45, abs=2e-3)
    await asyncio.gather(*flood)


@pytest.mark.looptime
async def test_an_overdue_delete_sharing_the_create_bucket_is_served_in_deadline_order() -> None:
    shared = PacerConfig(probe_first=False, create=(SLOW,), delete=(SLOW,), margin=1.0, delete_max_yield_s=45)
    pacer = Pacer(shared)
    await exhaust(pacer)
    flood = [asyncio.create_task(pacer.acquire("create", SUB, LOC, deadline=3600.0)) for _ in range(20)]
    delete = await pacer.acquire("delete", SUB, LOC)
    assert delete.granted_at == pytest.approx(50, abs=2e-3)  # its effective deadline (45) beats the creates'
    await asyncio.gather(*flood)


@pytest.mark.looptime
async def test_a_cancelled_waiter_leaves_and_a_cancelled_grant_is_refunded() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    gone = asyncio.create_task(pacer.acquire("create", SUB, LOC, deadline=1.0))
    stays = asyncio.create_task(pacer.acquire("create", SUB, LOC, deadline=2.0))
    await asyncio.sleep(1)
    gone.cancel()
    assert (await stays).granted_at == pytest.approx(10, abs=2e-3)
    assert pacer.snapshot().waiting == 0
    await asyncio.sleep(10)
    late = asyncio.create_task(pacer.acquire("create", SUB, LOC))
    late.cancel()  # the grant happens before the task can resume: its token comes back
    with pytest.raises(asyncio.CancelledError):
        await late
    assert tokens(pacer, SLOW.policy) == pytest.approx(1)


@pytest.mark.looptime
async def test_the_snapshot_reports_waiters_per_bucket() -> None:
    pacer = Pacer(ORDERING)
    await exhaust(pacer)
    tasks = [asyncio.create_task(pacer.acquire("create", SUB, LOC)) for _ in range(3)]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    (state,) = pacer.snapshot().buckets
    assert (state.policy, state.waiters, state.capacity) == (SLOW.policy, 3, 1)
    assert pacer.snapshot().waiting == 3
    await asyncio.gather(*tasks)
    assert pacer.snapshot().waits == 3


def test_unknown_kinds_and_bad_margins_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        PacerConfig(probe_first=False).specs("resize")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="margin"):
        PacerConfig(probe_first=False, margin=0)
    with pytest.raises(ValueError, match="positive"):
        BucketSpec("x", 0, 10)


# -- the adapter hooks


@pytest.mark.looptime
async def test_hooks_pace_by_operation_and_feed_answers_back() -> None:
    pacer = Pacer(ORDERING)
    hooks = PacerHooks(pacer)
    with pacing(deadline=100.0, key="disk-1"):
        await hooks.before_request("snapshots.create", SUB, LOC)

        async def poll() -> None:  # an LRO poll runs in a task of its own (wait_for): it sees the grant too
            hooks.on_response("operations.get", 200, {RESOURCE: "Microsoft.Compute/LowCostGet3Min;10"})
            hooks.on_response("snapshots.create", 429, {"Retry-After": "40"})

        await asyncio.wait_for(poll(), timeout=None)
    assert tokens(pacer, "Microsoft.Compute/LowCostGet3Min") == 10  # the poll corrected its region's get budget
    await hooks.before_request("subscriptions.get", SUB, LOC)  # not paced
    await hooks.before_request("snapshots.create", SUB, LOC)
    assert asyncio.get_running_loop().time() == pytest.approx(40, abs=2e-3)
    assert pacer.snapshot().kinds["create"].grants == 2


# -- headers and arithmetic


def test_parse_remaining_reads_compute_and_arm_headers() -> None:
    headers = {
        "X-Ms-Ratelimit-Remaining-Resource": f"{CREATE_3MIN};239, {CREATE_30MIN};1919,garbage,x;y",
        "x-ms-ratelimit-remaining-subscription-writes": "1199",
        "x-ms-ratelimit-remaining-subscription-reads": "not a number",
        "content-type": "application/json",
    }
    assert parse_remaining(headers) == {CREATE_3MIN: 239, CREATE_30MIN: 1919, "ARM/subscription-writes": 1199}


def test_retry_after_forms() -> None:
    assert retry_after_seconds({"Retry-After": "17"}) == 17
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    assert retry_after_seconds({"x-ms-retry-after-ms": "250"}) == 0.25
    now = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 00:02:00 GMT"}, now) == 120
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 2026 00:02:00 GMT"}) is None  # no reference time
    assert retry_after_seconds({"Retry-After": "Wed, 31 Dec 2025 00:00:00 GMT"}, now) == 0
    assert retry_after_seconds({"Retry-After": "soon"}, now) is None
    assert retry_after_seconds({}) is None


def test_period_from_policy() -> None:
    assert period_from_policy(CREATE_3MIN) == 180
    assert period_from_policy(CREATE_30MIN) == 1800
    assert period_from_policy("Microsoft.Compute/Thing1Hour") == 3600
    assert period_from_policy("ARM/subscription-writes") is None


def test_capacity_report_for_three_thousand_hourly_disks() -> None:
    report = capacity_needed(3000, 3000, 10, PacerConfig(probe_first=False))
    use = {u.policy: u for u in report.buckets}
    assert use[CREATE_3MIN].utilisation == pytest.approx(3000 / 4800)
    assert use[CREATE_30MIN].utilisation == pytest.approx(3000 / 3840)
    assert use[HIGH_COST_GET_3MIN.policy].needed_per_hour == 10
    assert report.fits
    assert report.worst is not None and report.worst.policy == CREATE_30MIN


def test_capacity_report_warns_when_creates_do_not_fit() -> None:
    report = capacity_needed(
        3800, 0, 0, PacerConfig(probe_first=False)
    )  # under Azure's 3840, over the 97% the pacer uses
    assert not report.fits
    assert report.worst is not None and report.worst.utilisation == pytest.approx(3800 / 3840)
    assert capacity_needed(3800, 0, 0, PacerConfig(probe_first=False, margin=1.0)).fits


def test_capacity_report_sums_kinds_that_share_a_policy() -> None:
    report = capacity_needed(0, 0, 100, PacerConfig(probe_first=False), gets_per_hour=50)
    use = {u.policy: u for u in report.buckets}
    assert use["ARM/subscription-reads"].needed_per_hour == 150


def test_theoretical_best_lateness() -> None:
    assert theoretical_best_lateness(240, COMPUTE_ONLY) == [0.0] * 240
    assert theoretical_best_lateness(242, COMPUTE_ONLY)[-2:] == pytest.approx([0.75, 1.5])
    assert theoretical_best_lateness(201, PacerConfig(probe_first=False))[-1] == pytest.approx(
        0.1
    )  # ARM writes: 200, then 10/s
    # 3000 at once: the 3-minute bucket binds for the whole hour (the 30-minute one only after 6300 s).
    assert theoretical_best_lateness(3000, COMPUTE_ONLY)[-1] == pytest.approx((3000 - 240) * 0.75)
    assert theoretical_best_lateness(0, COMPUTE_ONLY) == []


# -- learning Azure's budgets, bounded backoff, hard deadlines

PROBING = PacerConfig(create=(SNAPSHOT_CREATE_3MIN, SNAPSHOT_CREATE_30MIN), margin=1.0)


def azure_size(pacer: Pacer, policy: str) -> float:
    (state,) = [b for b in pacer.snapshot().buckets if b.policy == policy]
    return state.azure_capacity


@pytest.mark.looptime
async def test_until_azure_answers_one_call_at_a_time_draws_on_a_bucket() -> None:
    pacer = Pacer(PROBING)
    first = await pacer.acquire("create", SUB, LOC)
    second = asyncio.ensure_future(pacer.acquire("create", SUB, LOC))
    await asyncio.sleep(5)
    assert not second.done()  # the configured 240 is a guess: no burst on it
    pacer.observe("create", SUB, LOC, 202, {RESOURCE: f"{CREATE_3MIN};11,{CREATE_30MIN};99"}, grant=first)
    assert (await second).granted_at == pytest.approx(5)
    assert azure_size(pacer, CREATE_3MIN) == 12 and azure_size(pacer, CREATE_30MIN) == 100


@pytest.mark.looptime
async def test_the_pacer_converges_on_a_smaller_budget_it_was_not_told() -> None:
    pacer = Pacer(PROBING)
    azure_left = 12.0  # Azure's real 3-minute budget, refilled at 12 per 180 s; the pacer assumes 240
    granted: list[float] = []

    async def call(i: int) -> None:
        nonlocal azure_left
        grant = await pacer.acquire("create", SUB, LOC, key=f"disk-{i}")
        azure_left -= 1
        assert azure_left >= 0, "Azure would have refused this call"
        granted.append(grant.granted_at)
        pacer.observe("create", SUB, LOC, 202, {RESOURCE: f"{CREATE_3MIN};{int(azure_left)}"}, grant=grant)

    async def refill() -> None:
        nonlocal azure_left
        while True:
            await asyncio.sleep(15)
            azure_left = min(12.0, azure_left + 1)

    refiller = asyncio.ensure_future(refill())
    await asyncio.gather(*(call(i) for i in range(30)))
    refiller.cancel()
    assert azure_size(pacer, CREATE_3MIN) == 12
    assert pacer.snapshot().throttled == 0


@pytest.mark.looptime
async def test_a_429_without_retry_after_is_a_bounded_doubling_backoff_for_that_budget() -> None:
    pacer = Pacer(PacerConfig(probe_first=False, margin=1.0, default_retry_after_s=30, max_backoff_s=100))
    waits = []
    for _ in range(4):
        pacer.observe("create", SUB, LOC, 429, {})  # Azure's SubscriptionRequestsThrottled: no header at all
        started = asyncio.get_running_loop().time()
        grant = await pacer.acquire("create", SUB, LOC)
        waits.append(round(grant.granted_at - started, 3))
    assert waits == [30, 60, 100, 100]
    assert pacer.snapshot().backoffs == 4 and pacer.snapshot().throttled == 4
    assert (await pacer.acquire("list", SUB, LOC)).waited_s == 0  # only the refused kind's budget is held
    pacer.observe("create", SUB, LOC, 202, {RESOURCE: f"{CREATE_3MIN};100"}, grant=grant)
    pacer.observe("create", SUB, LOC, 429, {})
    started = asyncio.get_running_loop().time()
    assert (await pacer.acquire("create", SUB, LOC)).granted_at - started == pytest.approx(30)  # streak reset


@pytest.mark.looptime
async def test_a_429_makes_the_bucket_window_safe_then_smaller() -> None:
    pacer = Pacer(PacerConfig(probe_first=False, create=(BucketSpec("Microsoft.Compute/C3Min", 100, 180),)))
    pacer.observe("create", SUB, LOC, 429, {"Retry-After": "10", RESOURCE: "Microsoft.Compute/C3Min;0"})
    (state,) = pacer.snapshot().buckets
    assert state.capacity == pytest.approx(100 * 0.97 / 2)  # half burst and half refill: never over a window of 100
    pacer.observe("create", SUB, LOC, 429, {"Retry-After": "10", RESOURCE: "Microsoft.Compute/C3Min;0"})
    (state,) = pacer.snapshot().buckets
    assert state.azure_capacity == pytest.approx(80)


@pytest.mark.looptime
async def test_a_create_is_never_granted_after_its_hard_deadline() -> None:
    pacer = Pacer(PacerConfig(probe_first=False, create=(SLOW,), margin=1.0))
    await pacer.acquire("create", SUB, LOC)  # the only token: the next one comes 10 s later
    with pytest.raises(SlotMissed) as info:
        await pacer.acquire("create", SUB, LOC, deadline=4.0, hard=True)
    assert asyncio.get_running_loop().time() == pytest.approx(4.0)
    assert info.value.policy == "test/Slow" and info.value.capacity == 1
    assert "over Azure's budget: test/Slow allows about 1 calls per 10 s in westeurope" in info.value.reason
    assert pacer.snapshot().missed == 1
    # A soft deadline only orders the queue: the same wait is granted late.
    assert (await pacer.acquire("create", SUB, LOC, deadline=12.0)).granted_at == pytest.approx(10)


@pytest.mark.looptime
async def test_a_call_without_deadline_is_refused_while_azure_blocks_its_budget_for_long() -> None:
    pacer = Pacer(PacerConfig(probe_first=False, max_blocked_wait_s=120))
    pacer.observe("list", SUB, LOC, 429, {"Retry-After": "1200"})
    with pytest.raises(Throttled) as info:
        await pacer.acquire("list", SUB, LOC)
    assert info.value.retry_after == pytest.approx(1200)
    assert asyncio.get_running_loop().time() == 0  # refused at once, not held for twenty minutes


@pytest.mark.looptime
async def test_operation_polls_learn_the_get_operation_budget_and_regions_stay_apart() -> None:
    pacer = Pacer(PacerConfig())
    hooks = PacerHooks(pacer)
    await hooks.before_request("operations.get", SUB, LOC)
    hooks.on_response("operations.get", 200, {RESOURCE: f"{GET_OPERATION_3MIN};49,{GET_OPERATION_30MIN};399"})
    assert azure_size(pacer, GET_OPERATION_3MIN) == 50 and azure_size(pacer, GET_OPERATION_30MIN) == 400
    await hooks.before_request("snapshots.list", SUB, LOC)
    hooks.on_response("snapshots.list", 429, {"Retry-After": "60"})
    other = await pacer.acquire("list", SUB, "northeurope")
    assert other.waited_s == 0  # a 429 in westeurope holds nothing in northeurope
    assert (await pacer.acquire("list", SUB, LOC)).granted_at == pytest.approx(60, abs=2e-3)
