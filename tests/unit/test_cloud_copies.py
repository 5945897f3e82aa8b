"""Copies through the cloud door: `start_copy` on the in-memory twin (Azure's restrictions, progress, failure), the
refusal vocabulary, and the copy fields read from Azure's JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.copies import CopyRequest, refusal_of, start_copy
from azsnap.cloud.errors import NotFound, PermanentError, TransientError
from azsnap.cloud.interface import SnapshotRequest
from azsnap.cloud.mapping import snapshot_from_azure
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.observed import Disk, Snapshot, SnapshotState

SUB = "00000000-0000-0000-0000-000000000000"
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


async def source(cloud: MemoryCloud, disk: Disk, name: str) -> Snapshot:
    return await cloud.create_snapshot(
        SnapshotRequest(SUB, "rg", name, disk.location, disk.id, {"k": "v"}, incremental=True)
    )


def copy_request(src: Snapshot, name: str, region: str = "northeurope") -> CopyRequest:
    return CopyRequest(SUB, "rg-dr", name, region, src.id, {"azsnap-role": "copy"})


async def refused(cloud: MemoryCloud, src: Snapshot, name: str) -> TransientError | PermanentError:
    with pytest.raises((TransientError, PermanentError)) as caught:
        await start_copy(cloud, copy_request(src, name))
    assert isinstance(caught.value, TransientError | PermanentError)
    return caught.value


async def test_a_copy_runs_then_completes_and_a_second_start_is_the_same_copy() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, "rg", "d0")
    src = await source(cloud, disk, "s1")
    copy = await start_copy(cloud, copy_request(src, "c1"))
    assert (copy.create_option, copy.state, copy.location) == ("CopyStart", SnapshotState.COPYING, "northeurope")
    assert copy.source_resource_id == src.id and copy.tags["azsnap-role"] == "copy"
    assert (await start_copy(cloud, copy_request(src, "c1"))).time_created == copy.time_created
    clock.advance(timedelta(minutes=10))
    (done,) = [s for s in await cloud.list_snapshots(SUB, "rg-dr")]
    assert done.state is SnapshotState.SUCCEEDED and done.completion_percent == 100.0


async def test_the_four_restrictions() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock, parallel_copies=2)
    d0, d1, d2 = (cloud.add_disk(SUB, "rg", f"d{i}") for i in range(3))
    a1 = await source(cloud, d0, "a1")
    clock.advance(timedelta(minutes=1))
    a2 = await source(cloud, d0, "a2")
    await start_copy(cloud, copy_request(a1, "ca1"))
    assert refusal_of(await refused(cloud, a2, "ca2")) == "DiskBusy"
    await start_copy(cloud, copy_request(await source(cloud, d1, "b1"), "cb1"))
    assert refusal_of(await refused(cloud, await source(cloud, d2, "e1"), "ce1")) == "RegionBusy"
    clock.advance(timedelta(minutes=10))
    await start_copy(cloud, copy_request(a2, "ca2"))
    clock.advance(timedelta(minutes=10))
    assert refusal_of(await refused(cloud, a1, "ca1-again")) == "OutOfOrder"
    with pytest.raises(NotFound) as gone:
        await start_copy(cloud, CopyRequest(SUB, "rg-dr", "x", "northeurope", a1.id.replace("a1", "zz"), {}))
    assert refusal_of(gone.value) == "SourceGone"


async def test_a_failed_copy_and_a_source_deleted_mid_copy() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    disk = cloud.add_disk(SUB, "rg", "d0")
    s1 = await source(cloud, disk, "s1")
    cloud.failing_copies = 1
    await start_copy(cloud, copy_request(s1, "c1"))
    clock.advance(timedelta(minutes=6))
    (failed,) = await cloud.list_snapshots(SUB, "rg-dr")
    assert failed.copy_error == "CopyFailed" and failed.state is SnapshotState.FAILED
    await start_copy(cloud, copy_request(s1, "c1-r2"))
    await cloud.delete_snapshot(SUB, "rg", "s1")
    lost = next(s for s in await cloud.list_snapshots(SUB, "rg-dr") if s.name == "c1-r2")
    assert lost.copy_error == "CopySourceNotFound" and cloud.violations == [
        "s1: source deleted while its copy c1-r2 ran"
    ]


def test_copy_fields_are_read_from_azures_json() -> None:
    raw = {
        "id": f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Compute/snapshots/c1",
        "location": "northeurope",
        "properties": {
            "creationData": {"createOption": "CopyStart", "sourceResourceId": "/x/s1"},
            "provisioningState": "Succeeded",
            "completionPercent": 40.0,
            "copyCompletionError": {"errorCode": "CopySourceNotFound", "errorMessage": "gone"},
        },
    }
    snapshot = snapshot_from_azure(raw)
    assert (snapshot.create_option, snapshot.copy_error, snapshot.state) == (
        "CopyStart",
        "CopySourceNotFound",
        SnapshotState.FAILED,
    )
    del raw["properties"]["copyCompletionError"]  # type: ignore[attr-defined]
    assert snapshot_from_azure(raw).state is SnapshotState.COPYING
