"""Disk creates paced end to end: restored disks and drill scratch disks wait for the budget Azure charges disk
writes to (`CreateUpdateDisks3Min/30Min`), as snapshot creates wait for theirs, instead of meeting 429s.

The real SDK and the pacer against the throttling emulator, on looptime; the emulator's 3-minute disk-write budget is
shrunk to 4 so that a burst of restores overruns it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from azsnap.clock import LoopClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.buckets import ARM_WRITES, CREATE_UPDATE_DISKS_30MIN, BucketSpec, PacerConfig
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.errors import Throttled
from azsnap.cloud.interface import DiskRequest, SnapshotRequest
from azsnap.cloud.pacer import Pacer, PacerHooks
from azsnap.emulator import BucketSize, Emulator, EmulatorConfig
from azsnap.emulator.config import DEFAULT_BUCKETS

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

SUB = "00000000-0000-0000-0000-0000000000d1"
RG = "rg-restores"
LOCATION = "westeurope"
EPOCH = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DISK_WRITES_3MIN = "Microsoft.Compute/CreateUpdateDisks3Min"
RESTORES = 10
BUDGET = 4


@asynccontextmanager
async def restores(paced: bool) -> AsyncIterator[tuple[Emulator, AzureCloud, Pacer, list[DiskRequest]]]:
    """A snapshot to restore from, and `RESTORES` disk requests for it, through a cloud paced or not."""
    clock = LoopClock(EPOCH)
    buckets = {**DEFAULT_BUCKETS, DISK_WRITES_3MIN: BucketSize(BUDGET, timedelta(minutes=3))}
    emulator = Emulator(clock, EmulatorConfig(throttling=True, buckets=buckets, lro_duration=timedelta(seconds=1)))
    pacer = Pacer(PacerConfig(disk=(BucketSpec(DISK_WRITES_3MIN, BUDGET, 180), CREATE_UPDATE_DISKS_30MIN, ARM_WRITES)))
    hooks = PacerHooks(pacer)
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        options = AzureOptions(
            base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=0.5, retry_total=0
        )
        paced_hooks = {"before_request": hooks.before_request, "on_response": hooks.on_response} if paced else {}
        async with AzureCloud(StaticTokenCredential(), options, **paced_hooks) as cloud:
            source = emulator.seed_disk(SUB, RG, "pg-0", location=LOCATION)
            snapshot = await cloud.create_snapshot(
                SnapshotRequest(SUB, RG, "pg-0-snap", LOCATION, str(source["id"]), tags={})
            )
            await asyncio.sleep(5)  # the snapshot's operation ends
            requests = [
                DiskRequest(SUB, RG, f"pg-0-restored-{i}", LOCATION, snapshot.id, "StandardSSD_LRS", {"azsnap": "t"})
                for i in range(RESTORES)
            ]
            yield emulator, cloud, pacer, requests


def _disk_puts(emulator: Emulator) -> list[int]:
    return [r.status for r in emulator.requests if r.operation == "disks.put"]


async def test_a_burst_of_restores_waits_for_the_disk_write_budget_and_meets_no_429() -> None:
    async with restores(paced=True) as (emulator, cloud, pacer, requests):
        made = await asyncio.gather(*(cloud.create_disk(r) for r in requests))
    assert len(made) == RESTORES and set(_disk_puts(emulator)) == {202}
    puts = sorted(r.time for r in emulator.requests if r.operation == "disks.put")
    assert puts[-1] - puts[0] >= timedelta(seconds=60)  # the budget's refill spread them out
    assert pacer.snapshot().kinds["disk"].waits >= RESTORES - BUDGET


async def test_the_same_burst_unpaced_meets_429s() -> None:
    async with restores(paced=False) as (emulator, cloud, _, requests):
        made = await asyncio.gather(*(cloud.create_disk(r) for r in requests), return_exceptions=True)
    assert sum(isinstance(m, Throttled) for m in made) == RESTORES - BUDGET
    assert _disk_puts(emulator).count(429) == RESTORES - BUDGET
