"""The operator end to end: kopf in process against the Kubernetes emulator, the real SDK against the Azure
emulator over HTTPS, and emulated time (looptime) so days of schedule pass in seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import kopf
import pytest
from tests.support import kstatus
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, condition, eventually, install_project_crd, policy_manifest

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.domain import naming
from azsnap.emulator import DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, EmulatorConfig, FaultRule
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.offline.sandbox import Sandbox, azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]


def spec(disk: str = "disk-0", **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "disk": {"id": disk_id(disk)},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 3},
    }
    base.update(extra)
    return base


@asynccontextmanager
async def operator(
    kube: KubeEmulator, *, config: EmulatorConfig | None = None, **sandbox: Any
) -> AsyncIterator[Sandbox]:
    """The Azure sandbox on the loop's clock, with the real handlers running against `kube`."""
    install_project_crd(kube)
    clock = LoopClock(EPOCH)
    CLOCKS.append(clock)
    async with (
        azure_sandbox(clock, config=config, **sandbox) as box,
        run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})),
    ):
        yield box


def get(kube: KubeEmulator, name: str = "p1") -> dict[str, Any] | None:
    return kube.get(*SNAPSHOT_POLICY, "default", name)


def is_true(kube: KubeEmulator, kind: str, name: str = "p1") -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        obj = get(kube, name)
        cond = condition(obj, kind)
        return obj if cond and cond.get("status") == "True" else None

    return check


def snapshots(box: Sandbox, disk: str = "disk-0") -> list[dict[str, Any]]:
    source = disk_id(disk).lower()
    return [
        s
        for s in box.emulator.snapshots(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP)
        if s["properties"]["creationData"]["sourceResourceId"].lower() == source
    ]


def slot_tags(box: Sandbox, disk: str = "disk-0") -> list[str]:
    return sorted(s["tags"][naming.TAG_SLOT] for s in snapshots(box, disk) if naming.TAG_SLOT in (s.get("tags") or {}))


async def until(when_hours: float) -> None:
    """Sleep in loop time until `when_hours` emulated hours after EPOCH (the loop clock started at EPOCH)."""
    box_clock = CLOCKS[-1]
    target = EPOCH + timedelta(hours=when_hours)
    delta = (target - box_clock.now()).total_seconds()
    if delta > 0:
        await asyncio.sleep(delta)


CLOCKS: list[LoopClock] = []


def patch(kube: KubeEmulator, body: dict[str, Any], name: str = "p1") -> dict[str, Any]:
    return kube.patch(*SNAPSHOT_POLICY, "default", name, body)


class Recorder:
    """Samples a policy's conditions in loop time, to see transient states (Reconciling=True)."""

    def __init__(self, kube: KubeEmulator, name: str = "p1") -> None:
        self.kube, self.name = kube, name
        self.seen: list[tuple[str, str, str]] = []
        self.kstatus: list[kstatus.KStatus] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            obj = get(self.kube, self.name)
            for kind in ("Ready", "Reconciling", "Stalled"):
                cond = condition(obj, kind)
                if cond:
                    self.seen.append((kind, cond["status"], cond.get("reason", "")))
            if obj is not None:
                self.kstatus.append(kstatus.compute(obj).status)
            await asyncio.sleep(5)

    def stop(self) -> None:
        self.task.cancel()


async def test_create_takes_the_first_snapshot_and_reports_ready_with_every_status_field(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec()))
        obj = await eventually(is_true(kube, "Ready"))
        status = obj["status"]
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert status["snapshotCount"] == 1
        assert status["diskSnapshotCount"] == 1
        assert status["diskSnapshotLimit"] == 500
        assert status["missedSlots"] == 0
        assert status["pendingDeletions"] == 0
        assert status["lastSnapshot"]["state"] == "Succeeded"
        assert status["lastSuccessfulSnapshotTime"]
        assert status["nextSnapshotTime"] == "2026-01-05T01:00:00Z"
        assert status["diskName"] == "disk-0"
        (only,) = snapshots(box)
        point = {"name": only["name"], "time": status["lastSnapshot"]["createdTime"]}
        assert status["restorePoints"] == {"count": 1, "newest": point, "oldest": point}
        assert point["time"].startswith("2026-01-05T00:00:")
        assert {c["type"]: c["status"] for c in status["conditions"]} == {
            "Ready": "True",
            "Reconciling": "False",
            "Stalled": "False",
        }
        assert kstatus.compute(obj).status is kstatus.KStatus.CURRENT
        assert slot_tags(box) == ["2026-01-05T00:00:00Z"]
        reasons = [e["reason"] for e in kube.events("default")]
        assert "SnapshotCreated" in reasons
        metrics = box.runtime.metrics.exposition()[0].decode()
        assert 'azsnap_snapshots_created_total{namespace="default"} 1.0' in metrics
        assert 'azsnap_snapshots_held{namespace="default"} 1.0' in metrics
        assert 'azsnap_policy_ready{namespace="default",policy="p1"} 1.0' in metrics
        assert 'azsnap_azure_calls_total{operation="snapshots.create",outcome="ok"} 1.0' in metrics


async def test_three_days_of_hourly_gfs_leave_exactly_the_expected_set(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(retention={"hourly": 24, "daily": 3})))
        await until(72.5)
        # hourly 24: Jan 7 01:00 .. Jan 8 00:00; daily 3 (days with a snapshot): Jan 8, 7 (already kept) and Jan 6.
        expected = ["2026-01-06T23:00:00Z"] + [
            (EPOCH + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ") for h in range(49, 73)
        ]
        assert slot_tags(box) == sorted(expected)
        obj = get(kube)
        assert obj is not None
        assert obj["status"]["snapshotCount"] == 25
        assert obj["status"]["missedSlots"] == 0
        points = obj["status"]["restorePoints"]
        by_slot = {s["tags"][naming.TAG_SLOT]: s["name"] for s in snapshots(box)}
        assert points["count"] == 25
        assert points["newest"]["name"] == by_slot["2026-01-08T00:00:00Z"]
        assert points["oldest"]["name"] == by_slot["2026-01-06T23:00:00Z"]
        assert points["oldest"]["time"].startswith("2026-01-06T23:00:")
        assert box.emulator.violations == []
        creates = [r for r in box.emulator.requests if r.operation == "snapshots.put" and r.status in (200, 202)]
        assert len(creates) == 73


async def test_two_policies_on_one_disk_share_the_rate_window(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        # Six snapshots of disk-0 made by someone else a minute ago: the 7-in-5-minutes window has one place.
        for i in range(6):
            await box.cloud.create_snapshot(foreign_request(f"manual-{i}"))
        await asyncio.sleep(60)
        kube.apply(policy_manifest("p1", spec()))
        kube.apply(policy_manifest("p2", spec()))
        await eventually(is_true(kube, "Ready", "p1"))
        await eventually(is_true(kube, "Ready", "p2"))
        ours = [s for s in snapshots(box) if naming.TAG_SLOT in (s.get("tags") or {})]
        assert len(ours) == 2
        assert box.emulator.violations == []
        assert "RateLimited" in [e["reason"] for e in kube.events("default")]


def foreign_request(name: str) -> Any:
    from azsnap.cloud.interface import SnapshotRequest

    return SnapshotRequest(
        subscription_id=DEMO_SUBSCRIPTION,
        resource_group=DEMO_RESOURCE_GROUP,
        name=name,
        location="westeurope",
        source_disk_id=disk_id("disk-0"),
        tags={"owner": "someone-else"},
    )


async def test_killed_in_the_middle_of_a_create_and_restarted_takes_no_second_snapshot(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    clock = LoopClock(EPOCH)
    CLOCKS.append(clock)
    async with azure_sandbox(clock) as box:
        box.emulator.add_fault(FaultRule(operation="snapshots.put", kind="latency", latency_s=20, count=1))
        async with run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})) as op:
            kube.apply(policy_manifest("p1", spec()))
            await asyncio.sleep(10)  # the create is in flight
            await op.kill()
        runtime = box.restart()
        async with run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: runtime})):
            await eventually(is_true(kube, "Ready"))
            await until(0.5)
        assert slot_tags(box) == ["2026-01-05T00:00:00Z"]
        # Resume and the timer's first tick both fire at start-up: the policy is reconciled once, not twice.
        reconciles = [
            line
            for line in runtime.metrics.exposition()[0].decode().splitlines()
            if line.startswith("azsnap_reconcile_duration_seconds_count")
        ]
        assert reconciles == ['azsnap_reconcile_duration_seconds_count{outcome="Ready"} 1.0']
        assert box.emulator.violations == []


async def test_throttling_and_server_errors_are_retried_and_nothing_is_deleted_wrongly(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec()))
        await eventually(is_true(kube, "Ready"))
        recorder = Recorder(kube)
        box.emulator.add_fault(FaultRule(operation="snapshots.put", kind="429", count=6, retry_after_s=30))
        box.emulator.add_fault(FaultRule(operation="snapshots.list", kind="503", count=5))
        await until(6.5)
        recorder.stop()
        assert ("Reconciling", "True", "ProgressingWithRetry") in recorder.seen
        # What Flux's kstatus makes of the status the operator actually wrote: in progress while retrying.
        assert kstatus.KStatus.IN_PROGRESS in recorder.kstatus
        assert kstatus.KStatus.FAILED not in recorder.kstatus
        obj = await eventually(is_true(kube, "Ready"))
        assert kstatus.compute(obj).status is kstatus.KStatus.CURRENT
        # keepLast 3 after slots 00:00..06:00: exactly the three newest, and every slot accounted for.
        assert slot_tags(box) == ["2026-01-05T04:00:00Z", "2026-01-05T05:00:00Z", "2026-01-05T06:00:00Z"]
        deleted = [
            r for r in box.emulator.requests if r.operation == "snapshots.delete" and r.status in (200, 202, 204)
        ]
        assert len(deleted) == 4
        assert obj["status"]["missedSlots"] == 0


async def test_a_deleted_disk_stalls_the_policy_with_a_clear_message(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(disk="disk-1")))
        await eventually(is_true(kube, "Ready"))
        box.emulator.delete_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-1")
        obj = await eventually(is_true(kube, "Stalled"), within=4 * 3600)
        stalled = condition(obj, "Stalled")
        assert stalled is not None
        assert stalled["reason"] == "DiskNotFound"
        assert "spec.disk.id" in stalled["message"]
        assert condition(obj, "Ready")["status"] == "False"  # type: ignore[index]
        assert kstatus.compute(obj).status is kstatus.KStatus.FAILED
        assert len(snapshots(box, "disk-1")) == 1, "the snapshot already taken is kept"
        # the disk is gone, its snapshot is the one way back: still a restore point in status
        assert obj["status"]["restorePoints"]["count"] == 1
        assert obj["status"]["restorePoints"]["newest"]["name"] == snapshots(box, "disk-1")[0]["name"]


async def test_an_edited_policy_is_observed_and_its_new_retention_applies(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(retention={"keepLast": 5})))
        await until(4.5)
        assert len(slot_tags(box)) == 5
        patch(kube, {"spec": {"retention": {"keepLast": 2}}})

        def observed() -> dict[str, Any] | None:
            obj = get(kube)
            return obj if obj and obj["status"].get("observedGeneration") == obj["metadata"]["generation"] else None

        obj = await eventually(observed)
        assert obj["metadata"]["generation"] == 2
        assert slot_tags(box) == ["2026-01-05T03:00:00Z", "2026-01-05T04:00:00Z"]
        assert obj["status"]["snapshotCount"] == 2


async def test_suspend_stops_creating_and_deleting(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(suspend=True)))
        obj = await eventually(is_true(kube, "Ready"))
        assert condition(obj, "Ready")["reason"] == "Suspended"  # type: ignore[index]
        await until(3.5)
        assert snapshots(box) == []
        assert "Suspended" in [e["reason"] for e in kube.events("default")]
        patch(kube, {"spec": {"suspend": False}})
        # Slots that passed while suspended were skipped on purpose, not missed: the next slot is the first.
        await eventually(lambda: slot_tags(box) == ["2026-01-05T04:00:00Z"], within=3600)
        assert get(kube)["status"]["missedSlots"] == 0  # type: ignore[index]


async def test_the_on_demand_annotation_takes_one_snapshot_per_token(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(retention={"keepLast": 10})))
        await eventually(is_true(kube, "Ready"))
        await asyncio.sleep(600)
        patch(kube, {"metadata": {"annotations": {"azsnap.io/snapshot-now": "t1"}}})
        obj = await eventually(lambda: (o := get(kube)) and o["status"].get("lastOnDemandToken") == "t1" and o)
        assert obj["status"]["snapshotCount"] == 2
        await asyncio.sleep(600)
        patch(kube, {"metadata": {"labels": {"touched": "yes"}}})  # a change that keeps the token
        await asyncio.sleep(600)
        assert len(snapshots(box)) == 2
        patch(kube, {"metadata": {"annotations": {"azsnap.io/snapshot-now": "t2"}}})
        await eventually(lambda: len(snapshots(box)) == 3)


@pytest.mark.parametrize(("policy", "left"), [("Retain", 3), ("Delete", 0)])
async def test_deletion_retains_or_deletes_the_policys_snapshots(kube: KubeEmulator, policy: str, left: int) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(deletionPolicy=policy)))
        await until(2.5)
        await box.cloud.create_snapshot(foreign_request("manual-backup"))
        kube.delete(*SNAPSHOT_POLICY, "default", "p1")
        await eventually(lambda: get(kube) is None)
        assert len(slot_tags(box)) == left
        assert "manual-backup" in [s["name"] for s in snapshots(box)], "a snapshot azsnap did not make stays"


async def test_a_bad_policy_the_schema_cannot_catch_stalls_with_no_azure_call(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        before = len(box.emulator.requests)
        kube.apply(policy_manifest("p1", spec(schedule={"cron": "*/5 * * * *"})))
        obj = await eventually(is_true(kube, "Stalled"))
        stalled = condition(obj, "Stalled")
        assert stalled is not None and stalled["reason"] == "InvalidSpec"
        assert "spec.schedule.cron" in stalled["message"]
        await asyncio.sleep(3600)
        assert len(box.emulator.requests) == before
