"""Unexpected Azure answers, through the real SDK against the emulator: azsnap never deletes on doubt, and says why.

Each case lets a policy build up snapshots, then changes the emulator's stored snapshot behind azsnap's back
(as a person with portal access, or a strange Azure answer, would) and reconciles past the point where retention
would delete it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.clock import ManualClock
from azsnap.domain import naming
from azsnap.domain.conditions import HealthState
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import EmulatorConfig
from azsnap.emulator.state import SnapshotRecord
from azsnap.offline.sandbox import Sandbox, azure_sandbox, disk_id
from azsnap.reconciler import StatusReport

pytestmark = pytest.mark.e2e

START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


def make_policy(uid: str, disk: str = "disk-0") -> Policy:
    body = {"disk": {"id": disk_id(disk)}, "schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 2}}
    return Policy(PolicyRef("default", uid, uid, 1), SnapshotPolicySpec.model_validate(body))


@dataclass
class Run:
    """Two hourly keepLast-2 policies on disk-0, reconciled hour by hour as the operator would."""

    box: Sandbox
    clock: ManualClock
    policies: list[Policy] = field(default_factory=lambda: [make_policy("uid-a"), make_policy("uid-b")])
    statuses: dict[str, SnapshotPolicyStatus] = field(default_factory=dict)
    reports: dict[str, list[StatusReport]] = field(default_factory=dict)

    async def hours(self, count: int) -> None:
        for _ in range(count):
            for policy in self.policies:
                uid = policy.ref.uid
                status = self.statuses.get(uid, SnapshotPolicyStatus())
                report = await self.box.reconciler.reconcile(policy, status)
                merged = {**status.model_dump(by_alias=True, exclude_none=True, mode="json"), **report.status}
                self.statuses[uid] = SnapshotPolicyStatus.model_validate(
                    {k: v for k, v in merged.items() if v is not None}
                )
                self.reports.setdefault(uid, []).append(report)
            self.clock.set(self.clock.now().replace(minute=0, second=5) + timedelta(hours=1))

    def records(self, uid: str) -> list[SnapshotRecord]:
        store = self.box.emulator.store
        return sorted(
            (r for r in store.snapshots.values() if r.body["tags"].get(naming.TAG_POLICY_UID) == uid),
            key=lambda r: r.name,
        )

    def exists(self, name: str) -> bool:
        return any(s["name"] == name for s in self.box.emulator.snapshots())

    def deleted(self) -> set[str]:
        return {name for reports in self.reports.values() for r in reports for name in r.deleted}

    def last(self, uid: str) -> StatusReport:
        return self.reports[uid][-1]


@pytest.fixture
async def run() -> AsyncIterator[Run]:
    clock = ManualClock(START)
    # A hand-moved clock does not move while the SDK polls: operations must end at once (the "instant" timing).
    async with azure_sandbox(clock, config=EmulatorConfig.named("instant"), disks=2) as box:
        hostile = Run(box, clock)
        await hostile.hours(3)  # each policy holds its 10:00 and 11:00 snapshots
        yield hostile
        assert box.emulator.violations == []


def patch_oldest(run: Run, uid: str = "uid-a") -> SnapshotRecord:
    oldest = run.records(uid)[0]
    assert oldest.state == "Succeeded"
    return oldest


async def test_an_unknown_provisioning_state_is_kept_and_named_in_the_ready_message(run: Run) -> None:
    oldest = patch_oldest(run)
    oldest.state = "Migrating"  # type: ignore[assignment]  # a state Azure might add one day
    await run.hours(3)
    assert run.exists(oldest.name), "retention would have deleted it, but its state is unknown"
    report = run.last("uid-a")
    assert report.health.state is HealthState.READY
    assert f"{oldest.name} (Migrating)" in report.health.message
    assert "does not know" in report.health.message
    # the other snapshots still follow retention
    assert len(run.records("uid-a")) == 3


async def test_a_policy_uid_tag_removed_by_hand_makes_it_nobodys_and_keeps_it(run: Run) -> None:
    oldest = patch_oldest(run)
    oldest.body["tags"] = {k: v for k, v in oldest.body["tags"].items() if k != naming.TAG_POLICY_UID}
    await run.hours(3)
    assert run.exists(oldest.name)
    assert oldest.name not in run.deleted()
    assert run.last("uid-a").status["snapshotCount"] == 2, "no longer counted as the policy's"


async def test_a_policy_uid_tag_changed_to_another_policy_is_not_proof_enough_to_delete(run: Run) -> None:
    oldest = patch_oldest(run)
    oldest.body["tags"] = {**oldest.body["tags"], naming.TAG_POLICY_UID: "uid-b"}
    await run.hours(3)
    assert run.exists(oldest.name), "policy B's retention must not delete a snapshot named for policy A"
    assert oldest.name not in run.deleted()
    message = run.last("uid-b").health.message
    assert oldest.name in message and "changed by hand" in message
    # B keeps following its own retention and takes every slot
    assert run.last("uid-b").health.state is HealthState.READY
    assert all(len(r.created) == 1 for r in run.reports["uid-b"][-3:])


async def test_a_snapshot_with_our_name_but_another_disk_as_source_is_not_ours(run: Run) -> None:
    oldest = patch_oldest(run)
    other = next(d for d in run.box.emulator.disks() if d["name"] == "disk-1")
    creation = oldest.body["properties"]["creationData"]
    creation["sourceResourceId"] = other["id"]
    creation["sourceUniqueId"] = other["properties"]["uniqueId"]
    await run.hours(3)
    assert run.exists(oldest.name)
    assert oldest.name not in run.deleted()
    assert run.last("uid-a").health.state is HealthState.READY


async def test_missing_source_fields_make_a_snapshot_unprovable_and_kept(run: Run) -> None:
    oldest = patch_oldest(run)
    props: dict[str, Any] = oldest.body["properties"]
    props["creationData"] = {"createOption": "Copy"}  # no sourceResourceId, no sourceUniqueId
    del props["timeCreated"]
    await run.hours(3)
    assert run.exists(oldest.name)
    assert oldest.name not in run.deleted()
    assert run.last("uid-a").health.state is HealthState.READY


async def test_a_missing_creation_time_alone_is_no_doubt_the_slot_tag_dates_it(run: Run) -> None:
    oldest = patch_oldest(run)
    del oldest.body["properties"]["timeCreated"]
    await run.hours(1)
    assert not run.exists(oldest.name), "still provably ours and past keepLast: retention deletes it"
    assert oldest.name in run.deleted()


async def test_no_slot_is_taken_twice_whatever_was_changed(run: Run) -> None:
    first, second = run.records("uid-a")[:2]
    first.body["tags"] = {k: v for k, v in first.body["tags"].items() if k != naming.TAG_POLICY_UID}
    second.state = "Migrating"  # type: ignore[assignment]
    await run.hours(2)
    names = [s["name"] for s in run.box.emulator.snapshots()]
    assert len(names) == len(set(names))
    creates = [r for r in run.box.emulator.requests if r.operation == "snapshots.put" and r.status in (200, 201, 202)]
    assert len({r.path.lower() for r in creates}) == len(creates), "every create asked for a new name"
