"""A disk's lineage through the real azure-mgmt-compute client against the ARM emulator: recreate, then delete."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.status import fold_status

from azsnap.clock import ManualClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.domain import naming
from azsnap.domain.conditions import HealthState
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import Emulator, EmulatorConfig
from azsnap.reconciler import Reconciler
from azsnap.reconciler.report import StatusReport

pytestmark = pytest.mark.e2e

SUB = "00000000-0000-0000-0000-000000000000"
NOW = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Emulator, ManualClock, AzureCloud]]:
    clock = ManualClock(NOW)
    emulator = Emulator(clock, EmulatorConfig(lro_duration=timedelta(0), poll_retry_after_s=0))
    emulator.seed_disk(SUB, "rg-data", "pg-0", location="westeurope")
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        options = AzureOptions(
            base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=0.01, retry_total=0
        )
        cloud = AzureCloud(StaticTokenCredential(), options)
        try:
            yield emulator, clock, cloud
        finally:
            await cloud.close()


def fold(status: SnapshotPolicyStatus, report: StatusReport) -> SnapshotPolicyStatus:
    return fold_status(status, report, ready_at=NOW)


async def test_recreated_then_deleted_disk_keeps_one_lineage_under_the_policy(served: Any) -> None:
    emulator, clock, cloud = served
    disk = await cloud.get_disk(f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Compute/disks/pg-0")
    assert disk is not None
    body = {
        "disk": {"id": disk.id},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 2},
        "onSourceDiskDelete": "ApplyRetention",
    }
    policy = Policy(PolicyRef("default", "pg", "uid-pg", 1), SnapshotPolicySpec.model_validate(body))
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    report = await reconciler.reconcile(policy, status)
    for _ in range(2):  # three hourly slots of the first incarnation; the disk is read (and cached) at each
        assert report.health.state is HealthState.READY, report.health
        status = fold(status, report)
        clock.set(report.next_time)
        report = await reconciler.reconcile(policy, status)
    status = fold(status, report)
    old_uid = disk.unique_id

    # restored in place, inside the disk cache's freshness: an on-demand snapshot right away is the policy's
    emulator.recreate_disk(SUB, "rg-data", "pg-0")
    clock.advance(timedelta(minutes=1))
    report = await reconciler.reconcile(policy, status, on_demand_token="after-restore")
    [made] = report.created
    status = fold(status, report)
    clock.advance(timedelta(minutes=1))
    report = await reconciler.reconcile(policy, status)
    status = fold(status, report)
    assert "NewDiskIncarnation" in [e.reason for e in report.events]
    snaps = await cloud.list_snapshots(SUB, None)
    mine = [s for s in snaps if naming.owns(s, policy.ref, disk.id)]
    on_demand = next(s for s in mine if s.name == made)
    assert on_demand.source_unique_id not in {None, old_uid}  # Azure copied the new disk ...
    assert naming.tag(on_demand.tags, naming.TAG_DISK_UID) == old_uid  # ... while the cache named the old one
    # keepLast 2 over one set: the on-demand one and the newest of the first incarnation, kept as its last copy
    assert report.status["snapshotCount"] == len(mine) == 2
    assert report.status["earlierIncarnations"] == 1

    # the disk goes: the policy stalls, says what it holds, and ApplyRetention keeps the newest of each incarnation
    emulator.delete_disk(SUB, "rg-data", "pg-0")
    clock.advance(timedelta(minutes=11))  # past the disk cache's freshness: the snapshot list stands for the disk
    report = await reconciler.reconcile(policy, status)
    assert report.health.reason == "Succeeded"
    clock.set(report.next_time)  # the next slot: Azure answers the create NotFound, and the disk is read at once
    report = await reconciler.reconcile(policy, status)
    assert report.health.reason == "DiskNotFound"
    assert "azsnap holds 2 snapshot(s) of it; onSourceDiskDelete is ApplyRetention" in report.health.message
    assert [e.reason for e in report.events] == ["DiskNotFound"]
    assert report.status["nextSnapshotTime"] is None
    assert report.status["snapshotCount"] == report.status["earlierIncarnations"] == 2
