"""Pacing end to end: the reconciler, the real SDK and the pacer against the throttling emulator, on looptime."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from azsnap.clock import LoopClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.buckets import ARM_WRITES, SNAPSHOT_CREATE_30MIN, BucketSpec, PacerConfig
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.mapping import disk_from_azure
from azsnap.cloud.pacer import Pacer, PacerHooks
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import BucketSize, Emulator, EmulatorConfig, FaultRule
from azsnap.emulator.config import DEFAULT_BUCKETS
from azsnap.reconciler import Reconciler, StatusReport

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

SUB = "00000000-0000-0000-0000-0000000000e2"
LOCATION = "westeurope"
EPOCH = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # every hourly slot is due the moment the test starts
CREATE_3MIN = "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min"
DISKS = 30


@dataclass
class Rig:
    emulator: Emulator
    clock: LoopClock
    base_url: str
    ca_bundle: str

    def cloud(self, pacer: Pacer | None) -> AzureCloud:
        options = AzureOptions(base_url=self.base_url, ca_bundle=self.ca_bundle, polling_interval=0.5, retry_total=0)
        if pacer is None:
            return AzureCloud(StaticTokenCredential(), options)
        hooks = PacerHooks(pacer)
        return AzureCloud(
            StaticTokenCredential(), options, before_request=hooks.before_request, on_response=hooks.on_response
        )

    def answers(self, status: int) -> int:
        return sum(1 for r in self.emulator.requests if r.status == status)


@asynccontextmanager
async def running_rig() -> AsyncIterator[Rig]:
    """Made inside the test, so that the clock starts on the looptime loop's emulated time."""
    # Azure's budgets, with the 3-minute create bucket shrunk from 240 to 20: 30 creates at once overrun it.
    buckets = {**DEFAULT_BUCKETS, CREATE_3MIN: BucketSize(20, timedelta(minutes=3))}
    clock = LoopClock(EPOCH)
    emulator = Emulator(clock, EmulatorConfig(throttling=True, buckets=buckets, lro_duration=timedelta(seconds=1)))
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        yield Rig(emulator, clock, server.base_url, server.ca_bundle)


def policies(rig: Rig) -> list[Policy]:
    found = []
    for i in range(DISKS):
        disk = disk_from_azure(rig.emulator.seed_disk(SUB, f"rg-{i % 3}", f"disk-{i:02d}", location=LOCATION))
        spec = SnapshotPolicySpec.model_validate(
            {"disk": {"id": disk.id}, "schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 2}}
        )
        found.append(Policy(PolicyRef("e2e", f"p-{i:02d}", f"uid-{i:02d}"), spec))
    return found


async def reconcile_all(reconciler: Reconciler, load: list[Policy]) -> list[StatusReport]:
    return list(await asyncio.gather(*(reconciler.reconcile(p, SnapshotPolicyStatus()) for p in load)))


def paced_config() -> PacerConfig:
    return PacerConfig(create=(BucketSpec(CREATE_3MIN, 20, 180), SNAPSHOT_CREATE_30MIN, ARM_WRITES))


async def test_a_paced_burst_gets_no_429_and_takes_every_slot() -> None:
    async with running_rig() as rig:
        pacer = Pacer(paced_config(), clock=rig.clock)
        async with rig.cloud(pacer) as cloud:
            reports = await reconcile_all(Reconciler(cloud, rig.clock), policies(rig))
    assert rig.answers(429) == 0
    assert all(len(report.created) == 1 for report in reports)
    assert len(rig.emulator.snapshots(SUB)) == DISKS
    puts = sorted(r.time for r in rig.emulator.requests if r.operation == "snapshots.put")
    assert len(puts) == DISKS  # no create was refused and sent again
    # 19 at once (the 3% margin leaves 0.6 of the 20), the rest at the paced refill of 20 × 0.97 per 180 s.
    assert puts[18] == EPOCH
    assert (puts[-1] - EPOCH).total_seconds() == pytest.approx((DISKS - 19.4) / (20 * 0.97 / 180), abs=2)
    snap = pacer.snapshot()
    assert snap.throttled == 0
    assert snap.kinds["create"].waits == DISKS - 19
    # One list of the subscription, shared by its thirty policies in three groups, however long their creates waited.
    assert sum(1 for r in rig.emulator.requests if r.operation == "snapshots.list") == 1


async def test_the_same_burst_unpaced_meets_429s() -> None:
    async with running_rig() as rig, rig.cloud(None) as cloud:
        reports = await reconcile_all(Reconciler(cloud, rig.clock), policies(rig))
    assert rig.answers(429) == DISKS - 20
    throttled = [r for r in reports if r.health.reason == "Throttled"]
    assert len(throttled) == DISKS - 20
    assert len(rig.emulator.snapshots(SUB)) == 20


# -- Azure as hard as it gets: fixed windows, Retry-After up to 1,200 s, budgets the pacer is not told


@asynccontextmanager
async def windowed_rig(sizes: dict[str, BucketSize], retry_after_s: int | None = None) -> AsyncIterator[Rig]:
    clock = LoopClock(EPOCH)
    config = EmulatorConfig(
        throttling=True,
        buckets={**DEFAULT_BUCKETS, **sizes},
        lro_duration=timedelta(seconds=1),
        throttle_mode="window",
        throttle_retry_after_s=retry_after_s,
        ratelimit_header_lines=True,
    )
    emulator = Emulator(clock, config)
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        yield Rig(emulator, clock, server.base_url, server.ca_bundle)


def policies_with(rig: Rig, count: int, deadline: str, location: str = LOCATION, prefix: str = "") -> list[Policy]:
    found = []
    for i in range(count):
        raw = rig.emulator.seed_disk(SUB, f"rg-{prefix}{i % 2}", f"disk-{prefix}{i:02d}", location=location)
        disk = disk_from_azure(raw)
        spec = SnapshotPolicySpec.model_validate(
            {
                "disk": {"id": disk.id},
                "schedule": {"cron": "0 * * * *", "startingDeadline": deadline},
                "retention": {"keepLast": 2},
            }
        )
        found.append(Policy(PolicyRef("e2e", f"p-{prefix}{i:02d}", f"uid-{prefix}{i:02d}"), spec))
    return found


async def test_a_1200s_retry_after_never_holds_a_call_past_its_deadline() -> None:
    # Azure allows 6 creates per 3-minute window and answers a 429 with Retry-After: 1200; the pacer assumes 240.
    async with windowed_rig({CREATE_3MIN: BucketSize(6, timedelta(minutes=3))}, retry_after_s=1200) as rig:
        load = policies_with(rig, 12, "10m")
        pacer = Pacer(PacerConfig(), clock=rig.clock)
        async with rig.cloud(pacer) as cloud:
            reports = await reconcile_all(Reconciler(cloud, rig.clock), load)
            longest = cloud.stats.longest_call_s
    deadline = EPOCH + timedelta(minutes=10)
    puts = [r for r in rig.emulator.requests if r.operation == "snapshots.put"]
    assert puts and all(r.time < deadline for r in puts)  # nothing was sent after the slot's deadline
    assert rig.clock.now() <= deadline + timedelta(seconds=5)  # no reconcile was held for the 1,200 s
    assert longest <= AzureOptions().call_timeout
    assert rig.answers(429) <= 2
    missed = [r for r in reports if r.missed_slots]
    taken = [r for r in reports if r.created]
    refused = [r for r in reports if r.health.reason == "Throttled"]  # their 429 came back at once
    assert len(refused) == rig.answers(429)
    assert len(missed) + len(taken) + len(refused) == 12 and missed
    assert all("over Azure's budget" in r.over_budget and CREATE_3MIN in r.over_budget for r in missed)
    assert all(r.status["missedSlots"] == 1 for r in missed)


async def test_the_pacer_converges_on_a_window_budget_it_was_not_told() -> None:
    # 12 creates per 3-minute window, fixed windows; the pacer assumes 240 and 1,920 and learns from the headers.
    async with windowed_rig({CREATE_3MIN: BucketSize(12, timedelta(minutes=3))}) as rig:
        load = policies_with(rig, 40, "1h")
        pacer = Pacer(PacerConfig(), clock=rig.clock)
        async with rig.cloud(pacer) as cloud:
            reconciler = Reconciler(cloud, rig.clock)
            reports = await reconcile_all(reconciler, load)
            # A policy whose create met the 429 comes back after its Retry-After, as the operator would.
            again = [p for p, r in zip(load, reports, strict=True) if r.health.reason == "Throttled"]
            comeback = [r.next_time for r in reports if r.health.reason == "Throttled"]
            await asyncio.sleep(max([0.0, *((when - rig.clock.now()).total_seconds() for when in comeback)]))
            retried = await reconcile_all(reconciler, again)
    assert rig.answers(429) <= 1  # at most the one that shows the windows are fixed
    assert sum(len(r.created) for r in (*reports, *retried)) == 40  # every slot taken...
    puts = [r.time for r in rig.emulator.requests if r.operation == "snapshots.put" and r.status == 202]
    assert max(puts) < EPOCH + timedelta(hours=1)  # ...in time
    (create_3min,) = [b for b in pacer.snapshot().buckets if b.policy == CREATE_3MIN]
    assert create_3min.azure_capacity == 12 and create_3min.location == LOCATION


async def test_two_regions_throttle_apart() -> None:
    # Two creates per window in each region: a 429 in one region must not hold the other's calls.
    async with windowed_rig({CREATE_3MIN: BucketSize(2, timedelta(minutes=3))}, retry_after_s=1200) as rig:
        west = policies_with(rig, 4, "30m", LOCATION, "w")
        north = policies_with(rig, 2, "30m", "northeurope", "n")
        pacer = Pacer(PacerConfig(), clock=rig.clock)
        async with rig.cloud(pacer) as cloud:
            reconciler = Reconciler(cloud, rig.clock)
            await reconcile_all(reconciler, west)  # spends westeurope's window (and maybe meets its 429)
            north_reports = await reconcile_all(reconciler, north)
    assert all(len(report.created) == 1 for report in north_reports)
    north_puts = [r for r in rig.emulator.requests if r.operation == "snapshots.put" and "rg-n" in r.path]
    assert all(r.status == 202 for r in north_puts)
    buckets = {(b.policy, b.location) for b in pacer.snapshot().buckets}
    assert (CREATE_3MIN, LOCATION) in buckets and (CREATE_3MIN, "northeurope") in buckets


async def test_a_429_without_retry_after_is_held_by_the_pacer_and_polls_size_get_operation() -> None:
    async with running_rig() as rig:
        load = policies(rig)[:2]
        # Azure's front door refuses the first PUT as recorded: no Retry-After, no rate-limit header.
        rig.emulator.add_fault(FaultRule(operation="snapshots.put", kind="subscription_throttled", count=1))
        pacer = Pacer(PacerConfig(), clock=rig.clock)
        async with rig.cloud(pacer) as cloud:
            reconciler = Reconciler(cloud, rig.clock)
            first = await reconciler.reconcile(load[0], SnapshotPolicyStatus())
            second = await reconciler.reconcile(load[1], SnapshotPolicyStatus())
    assert first.health.reason == "Throttled" and not first.created
    assert second.created
    puts = [r for r in rig.emulator.requests if r.operation == "snapshots.put"]
    assert [r.status for r in puts] == [429, 202]
    # The next create waited out the pacer's backoff (30 s), not a hot loop and not an unbounded sleep.
    assert (puts[1].time - puts[0].time).total_seconds() == pytest.approx(30, abs=1)
    snap = pacer.snapshot()
    assert snap.backoffs == 1 and snap.throttled == 1
    sizes = {b.policy: b.azure_capacity for b in snap.buckets}
    assert sizes["Microsoft.Compute/GetOperation3Min"] == 50000  # learned from the polls' answers
