"""Restore drills against MemoryCloud: when they run, what they restore, record and delete, and how they fail."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.support.crd import cel_errors, openapi_schema, walk

from azsnap.clock import ManualClock
from azsnap.cloud.errors import Forbidden
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain import naming
from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.drill import RestoreDrillSpec
from azsnap.domain.health import with_drill
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.naming import TAG_DRILL, scratch_disk_name
from azsnap.domain.observed import Disk
from azsnap.domain.scope import ScopeGuard
from azsnap.reconciler.drill import Driller, DrillReport
from azsnap.reconciler.observe import Observer

SUB = "00000000-0000-0000-0000-000000000000"
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
REF = PolicyRef("team-a", "pg", "policy-uid-1")


class Rig:
    def __init__(self, disk_sku: str = "StandardSSD_LRS", **drill: Any) -> None:
        self.clock = ManualClock(T0)
        self.cloud = MemoryCloud(
            self.clock, copy_duration=timedelta(minutes=10), hydrate_duration=timedelta(minutes=20)
        )
        self.disk = self.cloud.add_disk(SUB, "rg-data", "pg-0", sku=disk_sku, size_gb=64)
        spec = {"disk": {"id": self.disk.id}, "schedule": {"every": "1h"}, "retention": {"keepLast": 5}}
        spec["restoreDrill"] = {"every": "1d", **drill}
        self.policy = Policy(REF, SnapshotPolicySpec.model_validate(spec))
        self.driller = Driller(self.cloud, self.clock, Observer(self.cloud, self.clock, freshness=timedelta(0)))
        self.status: dict[str, Any] = {}

    def snap(self, name: str, hours_ago: float) -> None:
        created = self.clock.now() - timedelta(hours=hours_ago)
        self.cloud.seed_snapshot(
            self.disk, name, tags=naming.ownership_tags(REF, self.disk, created), created_at=created
        )

    async def step(self) -> DrillReport:
        report = await self.driller.step(self.policy, self.status)
        self.status |= report.fields
        return report

    def scratch(self) -> list[Disk]:
        return [d for d in self.cloud.disks if d.tags.get(TAG_DRILL) == REF.uid]


async def test_a_drill_restores_the_newest_good_snapshot_records_it_and_deletes_the_scratch_disk() -> None:
    rig = Rig()
    rig.snap("old", 3)
    rig.snap("new", 1)
    first = await rig.step()
    assert first.finished == ("Succeeded", 0.0) and [e.reason for e in first.events] == ["RestoreVerified"]
    record = rig.status["lastVerifiedRestore"]
    assert (record["result"], record["snapshot"], record["durationSeconds"]) == ("Succeeded", "new", 0)
    assert rig.status["restoreDrill"] is None and rig.scratch() == []
    assert rig.cloud.calls["disks.create"] == 1 and rig.cloud.calls["disks.delete"] == 1
    rig.clock.advance(timedelta(hours=23))
    assert (await rig.step()).next_time == T0 + timedelta(days=1)  # not due yet: no Azure call
    assert rig.cloud.calls["disks.create"] == 1


async def test_a_premium_v2_drill_waits_for_hydration_and_times_the_wait() -> None:
    rig = Rig("PremiumV2_LRS", sku="PremiumV2_LRS")
    rig.snap("pv2", 1)  # an hour old: its own background copy is complete
    started = await rig.step()
    assert started.finished is None and rig.status["restoreDrill"]["snapshot"] == "pv2"
    (scratch,) = rig.scratch()
    seen = await rig.cloud.get_disk(scratch.id)
    assert scratch.name == scratch_disk_name("pg-0", REF.uid, T0) and seen is not None and seen.is_copying
    rig.clock.advance(timedelta(minutes=10))
    assert (await rig.step()).finished is None
    rig.clock.advance(timedelta(minutes=10))
    done = await rig.step()
    assert done.finished == ("Succeeded", 1200.0) and rig.status["lastVerifiedRestore"]["durationSeconds"] == 1200
    assert rig.scratch() == [] and rig.cloud.calls["disks.create"] == 1


async def test_a_drill_that_cannot_restore_fails_with_azures_words_and_turns_the_policy_not_ready() -> None:
    rig = Rig()
    rig.snap("s", 1)
    rig.cloud.fail_next("disks.create", Forbidden("no Microsoft.Compute/disks/write", code="AuthorizationFailed"))
    failed = await rig.step()
    assert failed.finished is not None and failed.finished[0] == "Failed"
    assert [e.reason for e in failed.events] == ["RestoreDrillFailed"]
    record = rig.status["lastVerifiedRestore"]
    assert record["result"] == "Failed" and "AuthorizationFailed" in record["message"]
    ready = Health(HealthState.READY, "Succeeded", "fine")
    turned = with_drill(ready, record)
    assert turned.state is HealthState.STALLED and turned.reason == "RestoreDrillFailed"
    assert with_drill(ready, {**record, "result": "Succeeded"}) == ready


async def test_a_drill_past_its_timeout_fails_and_still_deletes_its_disk() -> None:
    rig = Rig("PremiumV2_LRS", sku="PremiumV2_LRS", timeout="10m")
    rig.snap("pv2", 1)
    await rig.step()
    rig.clock.advance(timedelta(minutes=11))
    late = await rig.step()
    assert (
        late.finished is not None
        and late.finished[0] == "Failed"
        and "within 10m" in rig.status["lastVerifiedRestore"]["message"]
    )
    assert rig.scratch() == []


async def test_a_disk_of_the_scratch_name_not_made_by_the_drill_is_left_alone() -> None:
    rig = Rig()
    rig.snap("s", 1)
    theirs = rig.cloud.add_disk(SUB, "rg-data", scratch_disk_name("pg-0", REF.uid, T0))
    failed = await rig.step()
    assert failed.finished is not None and failed.finished[0] == "Failed"
    assert theirs in rig.cloud.disks and rig.cloud.calls["disks.delete"] == 0


async def test_no_good_snapshot_means_no_drill_yet() -> None:
    rig = Rig()
    report = await rig.step()
    assert report.finished is None and report.fields == {} and rig.cloud.calls["disks.create"] == 0


@pytest.mark.parametrize(("field", "value"), [("every", "30m"), ("every", "400d"), ("timeout", "1m"), ("sku", "Turbo")])
def test_the_spec_refuses_what_azsnap_cannot_do(field: str, value: str) -> None:
    with pytest.raises(ValueError):
        RestoreDrillSpec.model_validate({"every": "1d", field: value})


async def test_a_scratch_group_outside_the_namespaces_scope_fails_the_drill_without_an_azure_call() -> None:
    rig = Rig(resourceGroup="rg-prod")
    rig.snap("s", 1)
    rig.driller.scope = ScopeGuard.from_yaml(
        "- {namespaces: [team-a], subscriptions: ['*'], diskResourceGroups: [rg-data]}"
    )
    calls = sum(rig.cloud.calls.values())
    failed = await rig.step()
    assert failed.finished is not None and failed.finished[0] == "Failed"
    assert (
        "out of scope" in rig.status["lastVerifiedRestore"]["message"]
        and "rg-prod" in rig.status["lastVerifiedRestore"]["message"]
    )
    assert sum(rig.cloud.calls.values()) == calls


@pytest.mark.parametrize("target", [{"disk": {"id": "x"}}, {"volumeClaim": "data"}, {"volumeClaimSelector": {}}])
def test_the_crd_takes_a_drill_with_every_kind_of_target(target: dict[str, Any]) -> None:
    spec = {**target, "schedule": {"every": "1h"}, "retention": {"keepLast": 1}, "restoreDrill": {"every": "1d"}}
    assert cel_errors(node("spec"), spec, "spec") == []


def node(path: str) -> Any:
    return dict(walk(openapi_schema()))[path]
