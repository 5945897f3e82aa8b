"""Slot accounting through the reconciler on the in-memory cloud: no hole hidden, no slot invented."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.status import fold_status as fold

from azsnap.clock import ManualClock
from azsnap.cloud.errors import TransientError
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming, schedule
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler import Reconciler, core

SUB = "00000000-0000-0000-0000-000000000000"
RG = "rg-demo"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


def make_policy(disk: Disk, **spec: Any) -> Policy:
    body: dict[str, Any] = {"disk": {"id": disk.id}, "schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 10}}
    body.update(spec)
    return Policy(PolicyRef("default", "p1", "uid-1", 1), SnapshotPolicySpec.model_validate(body))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def cloud(clock: ManualClock) -> MemoryCloud:
    return MemoryCloud(clock)


@pytest.fixture
def disk(cloud: MemoryCloud) -> Disk:
    return cloud.add_disk(SUB, RG, "disk-0")


async def test_with_jitter_an_earlier_on_demand_snapshot_never_outlives_the_scheduled_one(clock, cloud) -> None:
    jitter = {"every": "2h", "jitter": "1h"}
    # a disk whose stable offset leaves room for an on-demand request between the slot and its due time
    disk = next(
        d
        for d in (cloud.add_disk(SUB, RG, f"disk-{i}") for i in range(50))
        if schedule.slot_offset(make_policy(d, schedule=jitter).spec.schedule, d.id) > timedelta(minutes=10)
    )
    policy = make_policy(disk, schedule=jitter, retention={"keepLast": 1})
    offset = schedule.slot_offset(policy.spec.schedule, disk.id)
    slot = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    reconciler = Reconciler(cloud, clock)
    clock.set(slot + offset / 2)
    first = await reconciler.reconcile(policy, SnapshotPolicyStatus(), on_demand_token="t1")
    [on_demand] = first.created
    clock.set(slot + offset + timedelta(seconds=10))
    report = await reconciler.reconcile(policy, fold(SnapshotPolicyStatus(), first), on_demand_token="t1")
    [scheduled] = report.created
    assert scheduled == naming.snapshot_name(disk.name, "uid-1", slot)
    assert report.deleted == (on_demand,), "the older copy goes, not the one just taken"
    assert [s.name for s in cloud.snapshots if s.is_of_disk(disk)] == [scheduled]


async def test_a_second_on_demand_token_in_the_same_minute_gives_a_second_snapshot(clock, cloud, disk) -> None:
    policy = make_policy(disk)
    reconciler = Reconciler(cloud, clock)
    status = fold(
        SnapshotPolicyStatus(), await reconciler.reconcile(policy, SnapshotPolicyStatus(), on_demand_token="a")
    )
    clock.set(START + timedelta(seconds=15))  # same UTC minute
    report = await reconciler.reconcile(policy, status, on_demand_token="b")
    assert report.created == ()
    assert report.status["lastOnDemandToken"] == "a", "not reported as served"
    assert "OnDemandWait" in report.blocked
    assert report.next_time == datetime(2026, 3, 2, 9, 1, tzinfo=UTC)
    status = fold(status, report)
    clock.set(report.next_time)
    served = await reconciler.reconcile(policy, status, on_demand_token="b")
    assert len(served.created) == 1
    assert served.status["lastOnDemandToken"] == "b"
    on_demand = [s for s in cloud.snapshots if naming.is_on_demand(s)]
    assert len(on_demand) == 2


async def test_a_slot_whose_snapshot_ends_failed_is_retried_within_its_deadline(clock, disk) -> None:
    cloud = MemoryCloud(clock, creating_for=timedelta(minutes=2))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    policy = make_policy(disk)
    reconciler = Reconciler(cloud, clock)
    first = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    [name] = first.created
    assert first.status["slotsAccountedUntil"] == "2026-03-02T08:59:59Z", "open while the snapshot is Creating"
    status = fold(SnapshotPolicyStatus(), first)
    cloud.mark_failed(SUB, RG, name)
    clock.advance(timedelta(minutes=1))
    retry = await reconciler.reconcile(policy, status)
    assert retry.created == (f"{name}-r2",)
    status = fold(status, retry)
    clock.advance(timedelta(minutes=3))
    settled = await reconciler.reconcile(policy, status)
    assert settled.status["slotsAccountedUntil"] == "2026-03-02T09:00:00Z"
    assert settled.status["missedSlots"] == 0


async def test_a_slot_whose_snapshots_all_fail_is_counted_missed(clock) -> None:
    cloud = MemoryCloud(clock, creating_for=timedelta(minutes=2))
    disk = cloud.add_disk(SUB, RG, "disk-0")
    policy = make_policy(disk)
    reconciler = Reconciler(cloud, clock)
    status = SnapshotPolicyStatus()
    nine, end = datetime(2026, 3, 2, 9, 0, tzinfo=UTC), datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
    missed: list[datetime] = []
    created: list[str] = []
    while clock.now() < end:
        report = await reconciler.reconcile(policy, status)
        status = fold(status, report)
        missed.extend(report.missed_slots)
        created.extend(report.created)
        for s in cloud.snapshots:  # every attempt for the 09:00 slot breaks in Azure
            if naming.slot_of(s) == nine:
                cloud.mark_failed(SUB, RG, s.name)
        clock.set(min(report.next_time, end))
    assert len([s for s in cloud.snapshots if naming.slot_of(s) == nine]) == naming.MAX_ATTEMPTS
    assert missed == [nine]
    assert status.missed_slots == 1
    assert naming.snapshot_name(disk.name, "uid-1", nine + timedelta(hours=1)) in created


async def test_a_schedule_edit_starts_accounting_afresh(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    daily = make_policy(disk, schedule={"cron": "0 2 * * *"})
    clock.set(datetime(2026, 3, 2, 2, 0, 30, tzinfo=UTC))
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(daily, SnapshotPolicyStatus()))
    hourly = make_policy(disk, schedule={"cron": "0 * * * *"})
    clock.set(datetime(2026, 3, 2, 14, 10, tzinfo=UTC))
    report = await reconciler.reconcile(hourly, status)
    assert report.status["missedSlots"] == 0, "03:00-13:00 never existed for the daily schedule"
    assert len(report.created) == 1
    status = fold(status, report)
    clock.set(datetime(2026, 3, 2, 17, 5, tzinfo=UTC))  # 15:00 and 16:00 pass unattended
    later = await reconciler.reconcile(hourly, status)
    assert later.status["missedSlots"] == 2


async def test_a_schedule_edit_met_by_an_azure_error_still_starts_afresh(clock, cloud, disk) -> None:
    reconciler = Reconciler(cloud, clock)
    clock.set(datetime(2026, 3, 2, 2, 0, 30, tzinfo=UTC))
    daily = make_policy(disk, schedule={"cron": "0 2 * * *"})
    status = fold(SnapshotPolicyStatus(), await reconciler.reconcile(daily, SnapshotPolicyStatus()))
    hourly = make_policy(disk, schedule={"cron": "0 * * * *"})
    clock.set(datetime(2026, 3, 2, 14, 10, tzinfo=UTC))
    reconciler.observer.forget_disk(disk.id)
    cloud.fail_next("disks.get", TransientError("busy", retry_after=30))
    status = fold(status, await reconciler.reconcile(hourly, status))
    assert status.slots_accounted_until is None
    clock.advance(timedelta(seconds=30))
    report = await reconciler.reconcile(hourly, status)
    assert report.status["missedSlots"] == 0


async def test_an_outage_after_a_failed_first_create_is_counted(clock, cloud, disk) -> None:
    policy = make_policy(disk)
    reconciler = Reconciler(cloud, clock)
    cloud.fail_next("snapshots.create", TransientError("Azure is having a bad day", retry_after=60))
    first = await reconciler.reconcile(policy, SnapshotPolicyStatus())
    assert first.created == ()
    assert first.status["slotsAccountedUntil"] == "2026-03-02T08:59:59Z"
    clock.set(datetime(2026, 3, 2, 12, 30, tzinfo=UTC))  # the operator was down since
    report = await reconciler.reconcile(policy, fold(SnapshotPolicyStatus(), first))
    assert report.status["missedSlots"] == 3  # 09:00, 10:00, 11:00
    assert len(report.created) == 1  # 12:00


async def test_last_successful_snapshot_time_is_the_slot_time(clock, cloud, disk) -> None:
    clock.set(START + timedelta(minutes=7))
    report = await Reconciler(cloud, clock).reconcile(make_policy(disk), SnapshotPolicyStatus())
    assert report.status["lastSuccessfulSnapshotTime"] == "2026-03-02T09:00:00Z"
    assert report.status["lastSnapshot"]["createdTime"] == "2026-03-02T09:07:30Z"


async def test_one_plan_per_reconcile(clock, cloud, disk, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[datetime] = []
    real = core.plan

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(clock.now())
        return real(*args, **kwargs)

    monkeypatch.setattr(core, "plan", counted)
    reconciler = Reconciler(cloud, clock)
    policy = make_policy(disk, retention={"keepLast": 1})
    status, reconciles = SnapshotPolicyStatus(), 0
    cloud.fail_next("snapshots.create", TransientError("busy", retry_after=30))
    while clock.now() < START + timedelta(hours=3):
        report = await reconciler.reconcile(policy, status, on_demand_token="t1")
        reconciles += 1
        status = fold(status, report)
        clock.set(report.next_time)
    assert len(calls) == reconciles
    assert reconciles >= 4  # a refused create, the retry, the on-demand one and the hourly slots
    # the look-ahead deleted what each new snapshot made unnecessary, in the same reconcile
    assert len([s for s in cloud.snapshots if s.is_of_disk(disk)]) == 1
