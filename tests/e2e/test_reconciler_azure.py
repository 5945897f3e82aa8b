"""The reconciler through the real azure-mgmt-compute client against the ARM emulator: one disk, three groups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.domain import naming
from azsnap.domain.conditions import HealthState
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import Emulator, EmulatorConfig
from azsnap.reconciler import Reconciler

pytestmark = pytest.mark.e2e

SUB = "00000000-0000-0000-0000-000000000000"
LOCATION = "westeurope"
NOW = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


@dataclass
class Rig:
    emulator: Emulator
    clock: ManualClock
    cloud: AzureCloud
    disk: Disk


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    clock = ManualClock(NOW)
    emulator = Emulator(clock, EmulatorConfig(lro_duration=timedelta(0), poll_retry_after_s=0))
    raw = emulator.seed_disk(SUB, "rg-data", "pg-0", location=LOCATION)
    for group in ("rg-other", "rg-backups"):  # the groups exist (each holds some other disk)
        emulator.seed_disk(SUB, group, f"elsewhere-{group}", location=LOCATION)
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        options = AzureOptions(
            base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=0.01, retry_total=0
        )
        cloud = AzureCloud(StaticTokenCredential(), options)
        try:
            disk = await cloud.get_disk(raw["id"])
            assert disk is not None
            yield Rig(emulator, clock, cloud, disk)
        finally:
            await cloud.close()


def seed(rig: Rig, group: str, name: str, created: datetime, tags: dict[str, str] | None = None) -> None:
    body: dict[str, Any] = {
        "location": LOCATION,
        "tags": tags or {"owner": "another-tool"},
        "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": rig.disk.id}, "incremental": True},
    }
    rig.emulator.store.create_snapshot(created, SUB, group, name, body)
    rig.emulator.store.settle(created)


def make_policy(rig: Rig, **spec: Any) -> Policy:
    body: dict[str, Any] = {"disk": {"id": rig.disk.id}, "schedule": {"cron": "0 * * * *"}, **spec}
    return Policy(PolicyRef("default", "pg", "uid-pg", 1), SnapshotPolicySpec.model_validate(body))


def list_pages(rig: Rig) -> tuple[int, int]:
    """Pages of snapshot lists asked for: (of the whole subscription, of one resource group)."""
    wide = f"/subscriptions/{SUB}/providers/Microsoft.Compute/snapshots".lower()
    lists = [r.path.lower().rstrip("/") for r in rig.emulator.requests if r.operation == "snapshots.list"]
    return sum(1 for p in lists if p == wide), sum(1 for p in lists if p != wide)


async def test_a_disk_full_across_three_groups_deletes_before_it_creates(rig: Rig) -> None:
    policy = make_policy(rig, retention={"maxAge": "3h"}, snapshot={"resourceGroup": "rg-backups"})
    long_ago = NOW - timedelta(days=2)
    for i in range(497):  # one a minute: Azure's window holds for the other tool too
        group, tool = ("rg-data", "a") if i < 300 else ("rg-other", "b")
        seed(rig, group, f"tool-{tool}-{i:03d}", long_ago + timedelta(minutes=i))
    for hours in (3, 2, 1):
        slot = NOW.replace(second=0) - timedelta(hours=hours)
        name = naming.snapshot_name(rig.disk.name, policy.ref.uid, slot)
        seed(rig, "rg-backups", name, slot, dict(naming.snapshot_tags(policy, rig.disk, slot)))

    report = await Reconciler(rig.cloud, rig.clock).reconcile(policy, SnapshotPolicyStatus())

    assert report.health.state is HealthState.READY, report.health
    assert report.deleted == (
        naming.snapshot_name(rig.disk.name, policy.ref.uid, datetime(2026, 3, 2, 6, 0, tzinfo=UTC)),
    )
    assert len(report.created) == 1
    assert report.status["diskSnapshotCount"] == 500
    # one list of the subscription (its pages), no list per group
    assert list_pages(rig) == (-(-500 // rig.emulator.config.page_size), 0)
    assert not rig.emulator.violations
    assert len(rig.emulator.store.list_snapshots(SUB, None)) == 500


async def test_foreign_creates_in_another_group_hold_the_create_back(rig: Rig) -> None:
    for i in range(7):
        seed(rig, "rg-other", f"burst-{i}", NOW - timedelta(minutes=1))
    report = await Reconciler(rig.cloud, rig.clock).reconcile(
        make_policy(rig, retention={"keepLast": 3}), SnapshotPolicyStatus()
    )
    assert report.health.reason == "RateLimited"
    assert not [r for r in rig.emulator.requests if r.method == "PUT"], "no create that Azure would refuse"
