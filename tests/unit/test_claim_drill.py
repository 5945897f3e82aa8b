"""Restore drills of a policy over PersistentVolumeClaims, against MemoryCloud: one claim's disk a round, in turn,
a disk with nothing to restore passed over, a failed disk drilled again, and the records naming claim and disk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from azsnap.clock import ManualClock
from azsnap.cloud.errors import Forbidden
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.drill import drill_rotation
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.reconciler.claims import ClaimStore
from azsnap.reconciler.drill import Driller, DrillReport
from azsnap.reconciler.observe import Observer

SUB = "00000000-0000-0000-0000-000000000000"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
REF = PolicyRef("shop", "pg", "policy-uid-1")


def test_the_rotation_starts_after_the_claim_drilled_last_and_wraps_round() -> None:
    disks = [("c", "d3"), ("a", "d1"), ("b", "d2")]
    assert [c for c, _ in drill_rotation(disks, None)] == ["a", "b", "c"]
    assert [c for c, _ in drill_rotation(disks, "a")] == ["b", "c", "a"]
    assert [c for c, _ in drill_rotation(disks, "c")] == ["a", "b", "c"]
    assert [c for c, _ in drill_rotation(disks, "b", again=True)] == ["b", "c", "a"]
    assert [c for c, _ in drill_rotation(disks, "gone")] == ["a", "b", "c"]  # a claim no longer there


class Rig:
    def __init__(self, claims: int = 2) -> None:
        self.clock = ManualClock(T0)
        self.cloud = MemoryCloud(self.clock)
        self.store = ClaimStore()
        self.disks: dict[str, Disk] = {}
        for i in range(claims):
            name = f"data-pg-{i}"
            disk = self.disks[name] = self.cloud.add_disk(SUB, "rg-data", f"disk-{i}", size_gb=64)
            self.store.put_claim({"metadata": {"name": name, "namespace": "shop", "uid": f"uid-{name}",
                                               "labels": {"app": "pg"}},
                                  "spec": {"volumeName": f"pv-{name}"}, "status": {"phase": "Bound"}})  # fmt: skip
            self.store.put_volume({"metadata": {"name": f"pv-{name}"},
                                   "spec": {"claimRef": {"namespace": "shop", "name": name, "uid": f"uid-{name}"},
                                            "csi": {"driver": "disk.csi.azure.com", "volumeHandle": disk.id}}})  # fmt: skip
        spec = {"volumeClaimSelector": {"matchLabels": {"app": "pg"}}, "schedule": {"every": "1h"},
                "retention": {"keepLast": 5}, "restoreDrill": {"every": "1d"}}  # fmt: skip
        self.policy = Policy(REF, SnapshotPolicySpec.model_validate(spec))
        self.driller = Driller(self.cloud, self.clock, Observer(self.cloud, self.clock, freshness=timedelta(0)))
        self.status: dict[str, Any] = {}

    def snap(self, claim: str, name: str) -> None:
        disk, created = self.disks[claim], self.clock.now() - timedelta(hours=1)
        self.cloud.seed_snapshot(disk, name, tags=naming.ownership_tags(REF, disk, created), created_at=created)

    async def step(self) -> DrillReport:
        report = await self.driller.step(self.policy, self.status, claims=self.store)
        self.status |= report.fields
        return report

    async def round(self) -> dict[str, Any]:
        """The next drill, a day after the last one, to its end."""
        self.clock.advance(timedelta(days=1))
        report = await self.step()
        assert report.finished is not None
        return dict(self.status["lastVerifiedRestore"])


async def test_each_round_drills_one_claims_disk_and_the_claims_take_turns() -> None:
    rig = Rig(claims=3)
    for claim in rig.disks:
        rig.snap(claim, f"{claim}-snap")
    records = [await rig.round() for _ in range(4)]
    assert [(r["claim"], r["disk"], r["snapshot"], r["result"]) for r in records] == [
        ("data-pg-0", "disk-0", "data-pg-0-snap", "Succeeded"),
        ("data-pg-1", "disk-1", "data-pg-1-snap", "Succeeded"),
        ("data-pg-2", "disk-2", "data-pg-2-snap", "Succeeded"),
        ("data-pg-0", "disk-0", "data-pg-0-snap", "Succeeded"),
    ]
    assert rig.cloud.calls["disks.create"] == 4 and rig.cloud.calls["disks.delete"] == 4
    assert [d for d in rig.cloud.disks if naming.TAG_DRILL in d.tags] == []


async def test_a_disk_without_a_usable_snapshot_is_passed_over_and_none_at_all_waits() -> None:
    rig = Rig()
    rig.clock.advance(timedelta(days=1))
    idle = await rig.step()
    assert idle.finished is None and idle.fields == {} and rig.cloud.calls["disks.create"] == 0
    assert idle.next_time == rig.clock.now() + timedelta(hours=1)
    rig.snap("data-pg-1", "only-1")
    record = await rig.round()
    assert (record["claim"], record["snapshot"]) == ("data-pg-1", "only-1")


async def test_a_failed_drill_goes_again_on_the_same_claim_and_the_event_names_it() -> None:
    rig = Rig()
    for claim in rig.disks:
        rig.snap(claim, f"{claim}-snap")
    rig.cloud.fail_next("disks.create", Forbidden("no access to the snapshot", code="LinkedAuthorizationFailed"))
    rig.clock.advance(timedelta(days=1))
    failed = await rig.step()
    assert failed.finished is not None and failed.finished[0] == "Failed"
    assert "(claim data-pg-0, disk disk-0) failed" in failed.events[0].message
    again = await rig.round()
    assert (again["claim"], again["result"]) == ("data-pg-0", "Succeeded")
    assert (await rig.round())["claim"] == "data-pg-1"
