"""Cross-region copies through the real azure-mgmt-compute client against the ARM emulator, which refuses what Azure
refuses (the order, one copy per disk, 100 per subscription and region) and records a source deleted mid-copy."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.status import fold_status as fold

from azsnap.clock import ManualClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.domain.conditions import HealthState
from azsnap.domain.copies import TAG_COPY_OF
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Limits
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import Emulator, EmulatorConfig, FaultRule
from azsnap.reconciler import Reconciler, StatusReport
from azsnap.reconciler.core import ReconcilerConfig

pytestmark = pytest.mark.e2e

SUB = "00000000-0000-0000-0000-000000000000"
NOW = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
TARGET = {"region": "northeurope", "resourceGroup": "rg-dr"}


@dataclass
class Rig:
    emulator: Emulator
    clock: ManualClock
    cloud: AzureCloud

    def copies(self) -> list[dict[str, Any]]:
        return sorted(self.emulator.snapshots(SUB, "rg-dr"), key=lambda s: s["properties"]["timeCreated"])

    def running(self) -> list[dict[str, Any]]:
        return [c for c in self.copies() if c["properties"].get("completionPercent", 100.0) < 100.0 and not failed(c)]

    def copy_puts(self) -> list[str]:
        return [r.path.rsplit("/", 1)[-1] for r in self.emulator.requests if r.method == "PUT" and "rg-dr" in r.path]

    def refusals(self) -> int:
        return sum(1 for r in self.emulator.requests if r.status == 409)


def failed(copy: dict[str, Any]) -> bool:
    return "copyCompletionError" in copy["properties"]


def make_config(**overrides: Any) -> EmulatorConfig:
    # Operations end at once; a copy waits 30 s in the target region's queue, then takes 5 minutes (20 %/min).
    return EmulatorConfig(**{"lro_duration": timedelta(0), "poll_retry_after_s": 0, **overrides})


@asynccontextmanager
async def make_rig(config: EmulatorConfig, disks: int) -> AsyncIterator[Rig]:
    clock = ManualClock(NOW)
    emulator = Emulator(clock, config)
    for i in range(disks):
        emulator.seed_disk(SUB, "rg-data", f"disk-{i}", location="westeurope")
    emulator.add_resource_group(SUB, "rg-dr", "northeurope")
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        options = AzureOptions(
            base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=0.01, retry_total=0
        )
        cloud = AzureCloud(StaticTokenCredential(), options)
        try:
            yield Rig(emulator, clock, cloud)
        finally:
            await cloud.close()


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    async with make_rig(make_config(), 1) as made:
        yield made


def make_policy(disk: int, **spec: Any) -> Policy:
    body: dict[str, Any] = {
        "disk": {"id": f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Compute/disks/disk-{disk}"},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 1},
        "copies": [{**TARGET, "retention": {"keepLast": 2}}],
        **spec,
    }
    return Policy(PolicyRef("default", f"p{disk}", f"uid-{disk}", 1), SnapshotPolicySpec.model_validate(body))


async def run(
    reconciler: Reconciler,
    policies: list[Policy],
    rig: Rig,
    end: datetime,
    statuses: dict[str, SnapshotPolicyStatus] | None = None,
    check: Callable[[], None] | None = None,
) -> dict[str, SnapshotPolicyStatus]:
    statuses = statuses if statuses is not None else {p.ref.uid: SnapshotPolicyStatus() for p in policies}
    wake = {p.ref.uid: rig.clock.now() for p in policies}
    reports: dict[str, StatusReport] = {}
    while rig.clock.now() < end:
        for p in policies:
            if wake[p.ref.uid] <= rig.clock.now():
                reports[p.ref.uid] = report = await reconciler.reconcile(p, statuses[p.ref.uid])
                statuses[p.ref.uid] = fold(statuses[p.ref.uid], report)
                wake[p.ref.uid] = report.next_time
        if check is not None:
            check()
        rig.clock.set(min(min(wake.values()), end))
    return statuses


async def test_copies_in_order_one_at_a_time_sources_kept_retention_applied_and_a_restart(rig: Rig) -> None:
    policy = make_policy(0)

    def check() -> None:
        assert len(rig.running()) <= 1

    statuses = await run(
        Reconciler(rig.cloud, rig.clock), [policy], rig, NOW + timedelta(hours=2, minutes=3), None, check
    )
    assert len(rig.running()) == 1  # the 11:00 snapshot's copy runs: azsnap restarts now
    end = NOW + timedelta(hours=5, minutes=59)  # before the 15:00 slot, whose copy would start with its snapshot
    statuses = await run(Reconciler(rig.cloud, rig.clock), [policy], rig, end, statuses, check)

    copies = rig.copies()
    sources = [c["tags"][TAG_COPY_OF] for c in copies]
    assert sources == sorted(sources) and len(copies) == 2  # the target's keepLast 2
    assert all(c["properties"]["completionPercent"] == 100.0 for c in copies)
    puts = rig.copy_puts()
    assert len(puts) == len(set(puts)) == 6  # one PUT per hourly snapshot: none twice, not after the restart either
    assert rig.refusals() == 0  # never out of order, never two copies of the disk at once
    assert rig.emulator.violations == []  # no source deleted while its copy ran (source keepLast is 1)
    assert len(rig.emulator.snapshots(SUB, "rg-data")) <= 2  # the source's retention went on
    (entry,) = statuses[policy.ref.uid].copies or []
    assert (entry["copiesHeld"], entry["copiesMissed"]) == (2, 0)
    assert entry["newestCopiedSlot"] == "2026-03-02T14:00:00Z"
    assert 5 * 60 <= entry["lagP50Seconds"] <= entry["lagMaxSeconds"] <= 15 * 60


async def test_a_failed_copy_is_retried_then_counted_and_ready_returns(rig: Rig) -> None:
    policy = make_policy(0, copies=[{**TARGET, "copyDeadline": "40m"}], retention={"keepLast": 3})
    rig.emulator.add_fault(FaultRule(operation="snapshots.put", kind="copy_failed"))
    reconciler = Reconciler(rig.cloud, rig.clock)
    statuses = await run(reconciler, [policy], rig, NOW + timedelta(minutes=50))
    (entry,) = statuses[policy.ref.uid].copies or []
    assert entry["copiesMissed"] == 1
    puts = rig.copy_puts()
    assert len(puts) == 3 and puts[1].endswith("r2") and puts[2].endswith("r3")  # three attempts, then missed
    report = await reconciler.reconcile(policy, statuses[policy.ref.uid])
    assert (report.health.state, report.health.reason) == (HealthState.STALLED, "CopyOverdue")
    rig.emulator.clear_faults()
    statuses = await run(reconciler, [policy], rig, NOW + timedelta(hours=2, minutes=30), statuses)
    final = await reconciler.reconcile(policy, statuses[policy.ref.uid])
    assert final.health.state is HealthState.READY, final.health.message
    assert (statuses[policy.ref.uid].copies or [{}])[0]["copiesMissed"] == 1


async def test_the_region_cap_holds_with_150_disks() -> None:
    # A copy takes 25 minutes here, so the hour's 150 copies cannot all run at once.
    config = make_config(copy_rate_percent_per_minute=4.0)
    async with make_rig(config, 150) as rig:
        policies = [make_policy(i) for i in range(150)]
        reconciler = Reconciler(rig.cloud, rig.clock, ReconcilerConfig(limits=Limits(max_parallel_copies=100)))
        most = 0

        def check() -> None:
            nonlocal most
            most = max(most, len(rig.running()))
            assert most <= 100

        statuses = await run(reconciler, policies, rig, NOW + timedelta(minutes=58), None, check)
        assert most == 100  # the cap is used, never passed
        assert rig.refusals() == 0  # azsnap counted the region's copies itself
        assert all((s.copies or [{}])[0].get("copiesHeld") == 1 for s in statuses.values())
        assert rig.emulator.violations == []
        # (this rig has no pacer: the first round's 150 disk reads meet Azure's read budget, the copies do not)
        assert not [r for r in rig.emulator.requests if r.status == 429 and r.method == "PUT"]
