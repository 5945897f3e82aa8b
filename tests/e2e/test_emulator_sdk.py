"""The real async azure-mgmt-compute client against the emulator, over HTTPS."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, Snapshot, SnapshotProperties

from azsnap.clock import ManualClock
from azsnap.emulator import (
    DEMO_RESOURCE_GROUP as RG,
)
from azsnap.emulator import (
    DEMO_SUBSCRIPTION as SUB,
)
from azsnap.emulator import (
    BucketSize,
    Emulator,
    EmulatorConfig,
    FaultRule,
)

pytestmark = pytest.mark.e2e

START = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
#: Operations finish at once and polls carry no Retry-After, so the SDK polls without waiting.
FAST = EmulatorConfig(lro_duration=timedelta(0), poll_retry_after_s=0)


class FixedCredential:
    """A credential that hands out a fixed token and never contacts Entra ID."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("test-token", 4_102_444_800)

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo("test-token", 4_102_444_800)

    async def close(self) -> None:
        return None


class SteppingClock(ManualClock):
    """Moves forward by `step` every time it is read, so emulated operations progress while the SDK polls."""

    def __init__(self, start: datetime, step: timedelta) -> None:
        super().__init__(start)
        self.step = step

    def now(self) -> datetime:
        self.advance(self.step)
        return super().now()


@dataclass
class Env:
    emu: Emulator
    clock: ManualClock
    client: ComputeManagementClient
    disk: dict[str, Any]

    async def create(self, name: str, disk: dict[str, Any] | None = None, *, incremental: bool = True) -> Any:
        source = disk or self.disk
        body = Snapshot(
            location=source["location"],
            tags={"managed-by": "azsnap"},
            properties=SnapshotProperties(
                creation_data=CreationData(create_option="Copy", source_resource_id=source["id"]),
                incremental=incremental,
            ),
        )
        poller = await self.client.snapshots.begin_create_or_update(RG, name, body)
        return await poller.result()

    def statuses(self, operation: str) -> list[int]:
        return [r.status for r in self.emu.requests if r.operation == operation]


@contextlib.asynccontextmanager
async def environment(
    config: EmulatorConfig = FAST, clock: ManualClock | None = None, **client_kwargs: Any
) -> AsyncIterator[Env]:
    clock = clock or ManualClock(START)
    emu = Emulator(clock, config)
    disk = emu.seed_disk(SUB, RG, "disk-0")
    async with emu.serve() as server:
        kwargs: dict[str, Any] = {
            "base_url": server.base_url,
            "connection_verify": server.ca_bundle,
            "credential_scopes": ["https://management.azure.com/.default"],
            "polling_interval": 0,
            "retry_total": 3,
            "retry_backoff_factor": 0.01,
            **client_kwargs,
        }
        async with ComputeManagementClient(FixedCredential(), SUB, **kwargs) as client:
            yield Env(emu, clock, client, disk)


async def test_create_get_and_the_fields_azsnap_reads() -> None:
    async with environment() as env:
        created = await env.create("snap-1")
        got = await env.client.snapshots.get(RG, "snap-1")
        disk = await env.client.disks.get(RG, "disk-0")
    assert created.provisioning_state == got.provisioning_state == "Succeeded"
    assert got.id == f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.Compute/snapshots/snap-1"
    assert got.type == "Microsoft.Compute/snapshots"
    assert got.location == "westeurope"
    assert got.tags == {"managed-by": "azsnap"}
    assert got.sku.name == "Standard_LRS"
    assert got.incremental is True
    assert got.creation_data.create_option == "Copy"
    assert got.creation_data.source_resource_id == disk.id
    assert got.creation_data.source_unique_id == disk.unique_id
    assert got.disk_size_bytes == 128 * 1024**3
    assert got.incremental_snapshot_family_id
    assert got.unique_id and got.unique_id != disk.unique_id
    assert got.time_created == START
    assert env.statuses("snapshots.put") == [202]


async def test_lro_is_polled_until_it_succeeds() -> None:
    clock = SteppingClock(START, timedelta(seconds=1))
    config = EmulatorConfig(lro_duration=timedelta(seconds=5), poll_retry_after_s=0)
    async with environment(config, clock) as env:
        poller = await env.client.snapshots.begin_create_or_update(
            RG,
            "snap-1",
            Snapshot(
                location="westeurope",
                properties=SnapshotProperties(
                    creation_data=CreationData(create_option="Copy", source_resource_id=env.disk["id"]),
                    incremental=True,
                ),
            ),
        )
        result = await poller.result()
    assert result.provisioning_state == "Succeeded"
    assert len(env.statuses("operations.get")) >= 2  # InProgress at least once, then Succeeded


async def test_put_of_an_existing_name_updates_it_as_azure_does() -> None:
    async with environment() as env:
        first = await env.create("snap-1")
        env.clock.advance(timedelta(hours=1))
        body = Snapshot(
            location=env.disk["location"],
            tags={"managed-by": "azsnap", "hold": "yes"},
            properties=SnapshotProperties(
                creation_data=CreationData(create_option="Copy", source_resource_id=env.disk["id"]),
                incremental=True,
            ),
        )
        poller = await env.client.snapshots.begin_create_or_update(RG, "snap-1", body)
        second = await poller.result()
        with pytest.raises(HttpResponseError) as refused:  # what a snapshot was made from cannot change
            body.properties.incremental = False
            await env.client.snapshots.begin_create_or_update(RG, "snap-1", body)
    assert second.unique_id == first.unique_id
    assert second.time_created == first.time_created
    assert second.tags == {"managed-by": "azsnap", "hold": "yes"}  # the change is applied, as Azure does
    assert env.statuses("snapshots.put") == [202, 202, 409]
    assert refused.value.error is not None and refused.value.error.code == "PropertyChangeNotAllowed"
    assert len(env.emu.snapshots()) == 1


async def test_list_by_resource_group_pages_through_every_snapshot() -> None:
    async with environment(EmulatorConfig(lro_duration=timedelta(0), poll_retry_after_s=0, page_size=2)) as env:
        for i in range(5):
            await env.create(f"snap-{i}")
        names = [s.name async for s in env.client.snapshots.list_by_resource_group(RG)]
    assert names == [f"snap-{i}" for i in range(5)]
    assert env.statuses("snapshots.list") == [200, 200, 200]  # three pages of 2, 2 and 1


async def test_list_by_subscription_spans_resource_groups() -> None:
    async with environment() as env:
        other = env.emu.seed_disk(SUB, "rg-other", "disk-x")
        await env.create("snap-a")
        poller = await env.client.snapshots.begin_create_or_update(
            "rg-other",
            "snap-b",
            Snapshot(
                location="westeurope",
                properties=SnapshotProperties(
                    creation_data=CreationData(create_option="Copy", source_resource_id=other["id"]),
                    incremental=True,
                ),
            ),
        )
        await poller.result()
        every = sorted([s.name async for s in env.client.snapshots.list()])
        in_rg = [s.name async for s in env.client.snapshots.list_by_resource_group("rg-other")]
    assert every == ["snap-a", "snap-b"]
    assert in_rg == ["snap-b"]


async def test_delete_and_delete_of_a_missing_snapshot() -> None:
    async with environment() as env:
        await env.create("snap-1")
        await (await env.client.snapshots.begin_delete(RG, "snap-1")).result()
        await (await env.client.snapshots.begin_delete(RG, "snap-1")).result()
        with pytest.raises(HttpResponseError) as missing:
            await env.client.snapshots.get(RG, "snap-1")
    assert env.statuses("snapshots.delete") == [202, 204]
    assert missing.value.status_code == 404
    assert missing.value.error is not None and missing.value.error.code == "ResourceNotFound"
    assert env.emu.snapshots() == []


async def test_seven_incremental_snapshots_per_disk_in_five_minutes() -> None:
    async with environment() as env:
        for i in range(7):
            await env.create(f"snap-{i}")
            env.clock.advance(timedelta(seconds=30))
        with pytest.raises(HttpResponseError) as refused:
            await env.create("snap-7")
        assert refused.value.status_code == 409
        assert refused.value.error is not None and refused.value.error.code == "OperationNotAllowed"
        assert "5 minutes" in refused.value.error.message
        assert len(env.emu.violations) == 1
        env.clock.advance(timedelta(seconds=91))  # the first create leaves the window
        created = await env.create("snap-7")
    assert created.provisioning_state == "Succeeded"
    assert len(env.emu.violations) == 1


async def test_per_disk_cap() -> None:
    config = EmulatorConfig(lro_duration=timedelta(0), poll_retry_after_s=0, per_disk_cap=3, window_creates=100)
    async with environment(config) as env:
        for i in range(3):
            await env.create(f"snap-{i}")
        with pytest.raises(HttpResponseError) as refused:
            await env.create("snap-3")
        assert refused.value.error is not None and refused.value.error.code == "SnapshotsLimitReached"
        await (await env.client.snapshots.begin_delete(RG, "snap-0")).result()
        await env.create("snap-3")
    assert len(env.emu.violations) == 1


async def test_injected_429_is_retried_after_retry_after() -> None:
    seen: list[tuple[int, str | None]] = []

    def hook(response: Any) -> None:
        seen.append((response.http_response.status_code, response.http_response.headers.get("Retry-After")))

    async with environment(raw_response_hook=hook) as env:
        env.emu.add_fault(FaultRule(operation="disks.get", kind="429", count=1, retry_after_s=1))
        disk = await env.client.disks.get(RG, "disk-0")
    assert disk.name == "disk-0"
    assert env.statuses("disks.get") == [429, 200]
    assert seen[0] == (429, "1")


async def test_throttling_bucket_answers_429_and_refills_on_the_emulated_clock() -> None:
    buckets = {"Microsoft.Compute/LowCostGet3Min": BucketSize(2, timedelta(minutes=3))}
    config = EmulatorConfig(lro_duration=timedelta(0), poll_retry_after_s=0, buckets=buckets)
    headers: list[str | None] = []

    def hook(response: Any) -> None:
        headers.append(response.http_response.headers.get("x-ms-ratelimit-remaining-resource"))

    async with environment(config, retry_total=0, raw_response_hook=hook) as env:
        await env.client.disks.get(RG, "disk-0")
        await env.client.disks.get(RG, "disk-0")
        with pytest.raises(HttpResponseError) as throttled:
            await env.client.disks.get(RG, "disk-0")
        env.clock.advance(timedelta(seconds=90))  # one token back: 2 per 180 s
        await env.client.disks.get(RG, "disk-0")
    error = throttled.value
    assert error.status_code == 429
    assert error.error is not None and error.error.code == "OperationNotAllowed"
    assert error.error.details[0].code == "TooManyRequests"
    assert error.response is not None and error.response.headers["Retry-After"] == "90"
    assert headers[:2] == ["Microsoft.Compute/LowCostGet3Min;1", "Microsoft.Compute/LowCostGet3Min;0"]


async def test_a_recreated_disk_has_a_new_unique_id_and_snapshot_family() -> None:
    async with environment() as env:
        before = await env.create("snap-1")
        env.emu.recreate_disk(SUB, RG, "disk-0")
        disk = await env.client.disks.get(RG, "disk-0")
        after = await env.create("snap-2")
    assert disk.unique_id != before.creation_data.source_unique_id
    assert after.creation_data.source_unique_id == disk.unique_id
    assert after.incremental_snapshot_family_id != before.incremental_snapshot_family_id


async def test_premium_v2_snapshots_copy_in_the_background() -> None:
    config = EmulatorConfig(lro_duration=timedelta(0), poll_retry_after_s=0, copy_rate_percent_per_minute=10.0)
    async with environment(config) as env:
        pv2 = env.emu.seed_disk(SUB, RG, "pv2-disk-0", sku="PremiumV2_LRS", size_gb=256)
        first = await env.create("pv2-0", pv2)
        env.clock.advance(timedelta(minutes=4))
        halfway = await env.client.snapshots.get(RG, "pv2-0")
        await env.create("pv2-1", pv2)
        await env.create("pv2-2", pv2)
        with pytest.raises(HttpResponseError) as busy:
            await env.create("pv2-3", pv2)  # three copies pending
        env.clock.advance(timedelta(minutes=6))
        done = await env.client.snapshots.get(RG, "pv2-0")
        await env.create("pv2-3", pv2)
    assert first.provisioning_state == "Succeeded" and first.completion_percent == 0
    assert halfway.completion_percent == 40
    assert halfway.snapshot_access_state == "Pending"
    assert done.completion_percent == 100 and done.snapshot_access_state == "Available"
    assert busy.value.status_code == 409
    assert env.emu.violations and "pending" in env.emu.violations[0]


async def test_lro_failed_after_the_limit_leaves_a_failed_snapshot() -> None:
    async with environment() as env:
        env.emu.add_fault(FaultRule(operation="snapshots.put", kind="failed_after_limit", count=1))
        with pytest.raises(HttpResponseError) as failed:
            await env.create("snap-1")
        left = await env.client.snapshots.get(RG, "snap-1")
    assert "SnapshotsLimitReached" in str(failed.value)
    assert left.provisioning_state == "Failed"


async def test_lro_failed_leaves_nothing() -> None:
    async with environment() as env:
        env.emu.add_fault(FaultRule(operation="snapshots.put", kind="lro_failed", count=1))
        with pytest.raises(HttpResponseError, match="InternalOperationError"):
            await env.create("snap-1")
    assert env.emu.snapshots() == []


@pytest.mark.parametrize("kind", ["500", "503", "drop"])
async def test_transient_faults_are_retried_by_the_sdk(kind: str) -> None:
    async with environment() as env:
        env.emu.add_fault(FaultRule(operation="snapshots.list", kind=kind, count=1, retry_after_s=0))
        names = [s.name async for s in env.client.snapshots.list_by_resource_group(RG)]
    assert names == []
    expected_first = 0 if kind == "drop" else int(kind)
    assert env.statuses("snapshots.list") == [expected_first, 200]


async def test_azures_recorded_429_and_503_shapes_reach_the_sdk_as_recorded() -> None:
    seen: list[tuple[int, str | None, str | None]] = []

    def hook(response: Any) -> None:
        http = response.http_response
        seen.append(
            (http.status_code, http.headers.get("Retry-After"), http.headers.get("x-ms-ratelimit-remaining-resource"))
        )

    async with environment(raw_response_hook=hook) as env:
        env.emu.add_fault(FaultRule(operation="snapshots.put", kind="subscription_throttled", count=1, retry_after_s=6))
        env.emu.add_fault(FaultRule(operation="operations.get", kind="503", count=1))
        created = await env.create("snap-1")
    assert created.provisioning_state == "Succeeded"  # azure-core retried both with its own backoff
    assert env.statuses("snapshots.put") == [429, 202]
    assert env.statuses("operations.get")[0] == 503
    throttled = next(s for s in seen if s[0] == 429)
    timed_out = next(s for s in seen if s[0] == 503)
    assert throttled == (429, None, None) and timed_out == (503, None, None)  # no Retry-After, no budgets


async def test_the_default_timing_through_the_sdk_creating_then_succeeded() -> None:
    answers: list[Any] = []
    clock = SteppingClock(START, timedelta(seconds=1))
    async with environment(EmulatorConfig(), clock, raw_response_hook=lambda r: answers.append(r.http_response)) as env:
        poller = await env.client.snapshots.begin_create_or_update(
            RG,
            "snap-1",
            Snapshot(
                location="westeurope",
                properties=SnapshotProperties(
                    creation_data=CreationData(create_option="Copy", source_resource_id=env.disk["id"]),
                    incremental=True,
                ),
            ),
        )
        during = await env.client.snapshots.get(RG, "snap-1")
        result = await poller.result()
    first = answers[0]  # the 202 as Azure sends it
    assert first.status_code == 202 and "Retry-After" not in first.headers
    assert "/DiskOperations/" in first.headers["Azure-AsyncOperation"]
    assert first.json()["properties"] == {
        "creationData": {"createOption": "Copy", "sourceResourceId": env.disk["id"]},
        "incremental": True,
        "provisioningState": "Updating",
    }
    assert during.provisioning_state == "Creating" and during.disk_size_gb is None
    assert result.provisioning_state == "Succeeded" and result.disk_size_gb == 128
