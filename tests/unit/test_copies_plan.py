"""The pure copy planner: creation order, one at a time, the region's room, retries then missed, lost sources,
what source retention must keep, the target's own retention, and idempotence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from azsnap.domain import naming
from azsnap.domain.copies import (
    MAX_COPY_ATTEMPTS,
    TAG_COPY_OF,
    CopyPlan,
    TargetState,
    copy_name,
    copy_tags,
    is_copy_of_policy,
    plan_copies,
    status_of,
    target_key,
)
from azsnap.domain.models import CopyTarget, Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk, Limits, Snapshot

SUB = "00000000-0000-0000-0000-000000000001"
DISK_ID = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/data"
REF = PolicyRef(namespace="prod", name="db", uid="policy-uid-1")
DISK = Disk(
    id=DISK_ID, name="data", subscription_id=SUB, resource_group="rg", location="westeurope", unique_id="disk-u1"
)
T0 = datetime(2026, 6, 15, 0, 0, tzinfo=UTC)
LIMITS = Limits()


def policy(copies: list[dict[str, Any]] | None = None, retention: dict[str, Any] | None = None) -> Policy:
    body = {
        "disk": {"id": DISK_ID},
        "schedule": {"cron": "0 * * * *"},
        "retention": retention or {"keepLast": 3},
        "copies": copies if copies is not None else [{"region": "northeurope", "resourceGroup": "rg-dr"}],
    }
    return Policy(ref=REF, spec=SnapshotPolicySpec.model_validate(body))


def source(hour: int, state: str = "Succeeded") -> Snapshot:
    slot = T0 + timedelta(hours=hour)
    return Snapshot(
        id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/s{hour}",
        name=naming.snapshot_name("data", REF.uid, slot),
        resource_group="rg",
        location="westeurope",
        source_resource_id=DISK_ID,
        source_unique_id=DISK.unique_id,
        time_created=slot + timedelta(seconds=5),
        provisioning_state=state,
        tags=naming.ownership_tags(REF, DISK, slot),
    )


def copy_of(src: Snapshot, percent: float = 100.0, *, attempt: int = 1, error: str | None = None) -> Snapshot:
    key = target_key((policy().spec.copies or [])[0], SUB)
    name = copy_name(src.name, key, attempt)
    assert src.time_created is not None
    return Snapshot(
        id=f"/subscriptions/{SUB}/resourceGroups/rg-dr/providers/Microsoft.Compute/snapshots/{name}",
        name=name,
        resource_group="rg-dr",
        location="northeurope",
        source_resource_id=src.id,
        source_unique_id="src-unique",
        time_created=src.time_created + timedelta(minutes=1),
        provisioning_state="Succeeded",
        tags=copy_tags(src, DISK_ID),
        completion_percent=percent,
        create_option="CopyStart",
        copy_error=error,
    )


def run(
    sources: list[Snapshot],
    copies: list[Snapshot],
    now: datetime,
    state: TargetState | None = None,
    *,
    room: int = 100,
    disk_busy: bool = False,
    the_policy: Policy | None = None,
) -> CopyPlan:
    p = the_policy or policy()
    return plan_copies(
        p,
        DISK_ID,
        (p.spec.copies or [])[0],
        sources,
        copies,
        state or TargetState(),
        now,
        LIMITS,
        room=room,
        disk_busy=disk_busy,
        default_subscription=SUB,
    )


def test_the_oldest_uncopied_snapshot_is_copied_first_and_alone() -> None:
    s0, s1, s2 = source(0), source(1), source(2)
    plan = run([s2, s0, s1], [], T0 + timedelta(hours=2, minutes=1))
    assert plan.start is not None and plan.start.source is s0 and plan.start.attempt == 1
    assert plan.start.name == copy_name(s0.name, target_key((policy().spec.copies or [])[0], SUB))
    assert {s0.name, s1.name, s2.name} <= plan.protected  # all still waiting for their copies
    again = run([s2, s0, s1], [], T0 + timedelta(hours=2, minutes=1))
    assert again.start == plan.start  # the same observation asks for the same name


def test_a_running_copy_blocks_the_next_and_protects_its_source() -> None:
    s0, s1 = source(0), source(1)
    plan = run([s0, s1], [copy_of(s0, 40.0)], T0 + timedelta(hours=1, minutes=5))
    assert plan.start is None and plan.running is not None and s0.name in plan.protected
    assert status_of((policy().spec.copies or [])[0], plan, SUB)["copiesRunning"] == 1


def test_a_completed_copy_passes_the_watermark_with_a_lag_sample_once() -> None:
    s0, s1 = source(0), source(1)
    now = T0 + timedelta(hours=1, minutes=10)
    plan = run([s0, s1], [copy_of(s0)], now)
    assert plan.state.accounted_until == s0.time_created and plan.state.lags == (70 * 60.0,)
    assert plan.start is not None and plan.start.source is s1
    assert plan.newest_copied is not None and s0.name in plan.protected  # the newest copied stays
    later = run([s0, s1], [copy_of(s0)], now + timedelta(minutes=1), plan.state)
    assert later.state.lags == plan.state.lags  # not counted twice


def test_no_start_while_the_disk_copies_to_another_target_or_the_region_is_full() -> None:
    s0 = source(0)
    assert run([s0], [], T0 + timedelta(minutes=5), disk_busy=True).blocked == "DiskBusy"
    full = run([s0], [], T0 + timedelta(minutes=5), room=0)
    assert full.start is None and full.blocked == "RegionBusy" and s0.name in full.protected


def test_a_failed_copy_is_retried_under_a_new_name_then_counted_missed_at_the_deadline() -> None:
    s0, s1 = source(0), source(1)
    failed = copy_of(s0, 50.0, error="CopyFailed")
    retry = run([s0, s1], [failed], T0 + timedelta(hours=1))
    assert retry.start is not None and retry.start.attempt == 2 and retry.start.name.endswith("r2")
    assert retry.deletes == ()  # the failed attempt stays until its source is accounted for
    past = run([s0, s1], [failed], T0 + timedelta(hours=6, minutes=1))
    assert past.missed == ((s0.name, "deadline"),) and past.state.missed == 1
    assert past.start is not None and past.start.source is s1  # moves on in creation order
    assert [d.snapshot.name for d in past.deletes] == [failed.name]


def test_attempts_are_bounded() -> None:
    s0 = source(0)
    attempts = [copy_of(s0, 10.0, attempt=a, error="CopyFailed") for a in range(1, MAX_COPY_ATTEMPTS + 1)]
    plan = run([s0], attempts, T0 + timedelta(hours=1))
    assert plan.start is None and plan.missed == ((s0.name, "deadline"),)


def test_a_source_deleted_mid_copy_is_counted_and_reported_once() -> None:
    s0, s1 = source(0), source(1)
    lost = copy_of(s0, 30.0, error="CopySourceNotFound")
    plan = run([s1], [lost], T0 + timedelta(hours=1, minutes=5))
    assert plan.missed == ((s0.name, "sourceDeleted"),) and plan.state.missed == 1
    assert plan.start is not None and plan.start.source is s1
    again = run([s1], [lost], T0 + timedelta(hours=1, minutes=6), plan.state)
    assert again.missed == () and again.state.missed == 1


def test_a_source_not_yet_succeeded_holds_the_order() -> None:
    s0, s1 = source(0, "Creating"), source(1)
    plan = run([s0, s1], [], T0 + timedelta(hours=1, minutes=1))
    assert plan.start is None and plan.state.accounted_until is None


def test_a_failed_source_is_passed_without_a_copy() -> None:
    s0, s1 = source(0, "Failed"), source(1)
    plan = run([s0, s1], [], T0 + timedelta(hours=1, minutes=1))
    assert plan.start is not None and plan.start.source is s1 and plan.missed == ()


def test_the_targets_own_retention_applies_to_completed_copies() -> None:
    target = {"region": "northeurope", "resourceGroup": "rg-dr", "retention": {"keepLast": 2}}
    the_policy = policy([target], retention={"keepLast": 10})
    sources = [source(h) for h in range(4)]
    copies = [copy_of(s) for s in sources]
    plan = run(sources, copies, T0 + timedelta(hours=4), the_policy=the_policy)
    deleted = {d.snapshot.name for d in plan.deletes}
    assert deleted == {copies[0].name, copies[1].name} and plan.held == 4


def test_retention_defaults_to_the_policys() -> None:
    sources = [source(h) for h in range(5)]
    copies = [copy_of(s) for s in sources]
    plan = run(sources, copies, T0 + timedelta(hours=5))
    assert len(plan.deletes) == 2  # keepLast 3


def test_ownership_needs_the_policy_the_role_and_the_disk() -> None:
    s0 = source(0)
    mine = copy_of(s0)
    assert is_copy_of_policy(mine, REF.uid, DISK_ID)
    assert not is_copy_of_policy(mine, "other-policy", DISK_ID)
    assert not is_copy_of_policy(mine, REF.uid, DISK_ID.replace("data", "logs"))
    untagged = Snapshot(**{**mine.__dict__, "tags": {k: v for k, v in mine.tags.items() if k != "azsnap-role"}})
    assert not is_copy_of_policy(untagged, REF.uid, DISK_ID)
    plan = run([s0], [untagged], T0 + timedelta(minutes=5))
    assert plan.deletes == () and plan.start is not None  # someone else's look-alike is neither ours nor a copy


def test_copy_names_stay_within_azures_rules() -> None:
    key = target_key((policy().spec.copies or [])[0], SUB)
    long_source = naming.snapshot_name("d" * 90, REF.uid, T0, attempt=3)
    name = copy_name(long_source, key, MAX_COPY_ATTEMPTS)
    assert len(name) <= 80 and name[0].isalnum() and name[-1].isalnum()
    assert naming.policy_hash(REF.uid) in name and name != copy_name(long_source, key, 2)
    other = target_key(CopyTarget.model_validate({"region": "westus2", "resourceGroup": "rg-dr"}), SUB)
    assert copy_name(long_source, key) != copy_name(long_source, other)
    with pytest.raises(ValueError):
        copy_name(long_source, key, MAX_COPY_ATTEMPTS + 1)


def test_tags_name_the_source() -> None:
    s0 = source(0)
    tags = copy_tags(s0, DISK_ID)
    assert tags[TAG_COPY_OF] == s0.name and tags[naming.TAG_POLICY_UID] == REF.uid and tags["azsnap-role"] == "copy"


def test_status_round_trips_through_target_state() -> None:
    s0, s1 = source(0), source(1)
    plan = run([s0, s1], [copy_of(s0), copy_of(s1, 20.0)], T0 + timedelta(hours=1, minutes=30))
    entry = status_of((policy().spec.copies or [])[0], plan, SUB)
    assert entry["copiesHeld"] == 1 and entry["lagP50Seconds"] == 90 * 60
    assert entry["newestCopiedSlot"] == naming.format_slot(T0)
    assert TargetState.from_status(entry) == plan.state


def test_bad_targets_are_refused() -> None:
    with pytest.raises(ValueError, match="region"):
        policy([{"region": "North Europe", "resourceGroup": "rg-dr"}])
    with pytest.raises(ValueError, match="subscription"):
        policy([{"region": "northeurope", "resourceGroup": "rg-dr", "subscriptionId": "nope"}])
    with pytest.raises(ValueError):
        policy([{"region": "northeurope", "resourceGroup": "rg-dr"}] * 4)


def test_a_target_is_overdue_while_a_snapshot_past_its_deadline_has_no_copy_at_or_after_it() -> None:
    s0, s1 = source(0), source(1)
    assert run([s0, s1], [], T0 + timedelta(hours=5)).overdue is None  # within the 6h deadline
    late = run([s0, s1], [], T0 + timedelta(hours=7, minutes=1))
    assert late.overdue is s1
    assert run([s0, s1], [copy_of(s1)], T0 + timedelta(hours=7, minutes=1)).overdue is None


@pytest.mark.parametrize(
    "target", [{"volumeClaim": "data"}, {"volumeClaimSelector": {"matchLabels": {"app": "pg"}}}], ids=str
)
def test_copies_of_a_claim_policy_are_valid_for_the_model_and_the_crd(target: dict[str, Any]) -> None:
    from tests.support.crd import schema_errors

    from azsnap.domain.validation import validate_manifest

    doc = {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "p", "namespace": "shop"},
        "spec": {
            **target,
            "schedule": {"cron": "0 * * * *"},
            "retention": {"keepLast": 3},
            "copies": [{"region": "northeurope", "resourceGroup": "rg-dr"}],
        },
    }
    spec, errors = validate_manifest(doc)
    assert errors == [] and spec is not None and spec.copies is not None
    assert schema_errors(doc) == []


def test_without_a_status_entry_the_walk_goes_on_from_the_newest_completed_copy() -> None:
    # A claim's disk that status.disks leaves out has no copy accounting kept: its past is not counted again.
    s0, s1, s2, s3 = source(0), source(1), source(2), source(3)
    now = T0 + timedelta(hours=9)  # s0 (never copied) is past its 6h deadline
    known = run([s0, s1, s2, s3], [copy_of(s1), copy_of(s2)], now, TargetState())
    assert [name for name, _ in known.missed] == [s0.name] and len(known.state.lags) == 2
    unknown = run([s0, s1, s2, s3], [copy_of(s1), copy_of(s2)], now, TargetState.from_status(None))
    assert unknown.missed == () and unknown.state.lags == () and unknown.state.accounted_until == s2.time_created
    assert unknown.start is not None and unknown.start.source is s3
