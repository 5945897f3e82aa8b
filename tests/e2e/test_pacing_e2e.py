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
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec, SnapshotPolicyStatus
from azsnap.emulator import BucketSize, Emulator, EmulatorConfig
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
