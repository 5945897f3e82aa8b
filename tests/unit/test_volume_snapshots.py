"""Publishing as VolumeSnapshots, the pure part: names, manifests, and what to create or remove."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from azsnap.domain.models import PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Snapshot
from azsnap.domain.volume_snapshot_readiness import NOT_READY_AFTER, NotReady, readiness
from azsnap.domain.volume_snapshots import (
    VolumeSnapshotsSpec,
    Wanted,
    content_manifest,
    object_name,
    owner_selector,
    plan_objects,
    snapshot_manifest,
)

SUB = "00000000-0000-0000-0000-000000000000"
POLICY = PolicyRef("team-a", "pg", "uid-1")
WHEN = datetime(2026, 3, 29, 23, 2, tzinfo=UTC)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _snapshot(name: str, group: str = "rg-snaps") -> Snapshot:
    arm = f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/snapshots/{name}"
    return Snapshot(arm, name, group, "westeurope", None, None, WHEN, "Succeeded")


def _wanted(name: str) -> Wanted:
    snap = _snapshot(name)
    return Wanted(object_name(snap), snap.id, "disk", "data-0", WHEN)


def _object(item: Wanted) -> dict[str, Any]:
    return snapshot_manifest(POLICY, VolumeSnapshotsSpec(enabled=True), item)


def test_names_are_dns_labels_fixed_by_the_snapshot_and_apart_for_two_groups() -> None:
    plain = object_name(_snapshot("pvc-data-0-83eda7bb-20260329T2300Z"))
    assert plain.startswith("pvc-data-0-83eda7bb-20260329t2300z-") and DNS_LABEL.match(plain)
    assert plain == object_name(_snapshot("pvc-data-0-83eda7bb-20260329T2300Z"))
    assert plain != object_name(_snapshot("pvc-data-0-83eda7bb-20260329T2300Z", group="rg-other"))
    odd = object_name(_snapshot("_Disk.Snap_" + "x" * 70 + "_"))
    assert DNS_LABEL.match(odd) and len(odd) <= 63


def test_the_content_is_pre_provisioned_retained_and_bound_to_the_snapshot_of_its_name() -> None:
    item = _wanted("s1")
    content = content_manifest(POLICY, VolumeSnapshotsSpec(enabled=True, volume_snapshot_class_name="vsc"), item)
    assert content["spec"] == {
        "deletionPolicy": "Retain",
        "driver": "disk.csi.azure.com",
        "source": {"snapshotHandle": item.snapshot_id},
        "volumeSnapshotRef": {"name": item.name, "namespace": "team-a"},
        "volumeSnapshotClassName": "vsc",
    }
    snap = _object(item)
    assert snap["metadata"]["namespace"] == "team-a"
    assert snap["spec"] == {"source": {"volumeSnapshotContentName": item.name}}
    labels = snap["metadata"]["labels"]
    assert labels == {
        "app.kubernetes.io/managed-by": "azsnap",
        "azsnap.io/policy-uid": "uid-1",
        "azsnap.io/policy": "pg",
        "azsnap.io/claim": "data-0",
    }
    assert owner_selector(POLICY) == "app.kubernetes.io/managed-by=azsnap,azsnap.io/policy-uid=uid-1"


def test_a_name_too_long_for_a_label_is_kept_in_the_annotations_only() -> None:
    long_policy = PolicyRef("team-a", "p" * 100, "uid-1")
    meta = snapshot_manifest(long_policy, VolumeSnapshotsSpec(enabled=True), _wanted("s1"))["metadata"]
    assert "azsnap.io/policy" not in meta["labels"]
    assert meta["annotations"]["azsnap.io/policy"] == f"team-a/{'p' * 100}"


def test_the_plan_creates_what_is_missing_and_removes_only_what_azure_no_longer_lists() -> None:
    kept, new, gone, elsewhere = _wanted("kept"), _wanted("new"), _wanted("gone"), _wanted("elsewhere")
    existing = [_object(kept), _object(gone), _object(elsewhere)]
    contents = [_object(kept), _object(gone)]  # `elsewhere`'s content went missing (a crash between two creates)
    in_azure = {kept.snapshot_id.lower(), new.snapshot_id.lower(), elsewhere.snapshot_id.lower()}
    plan = plan_objects([kept, new], existing, contents, in_azure)
    assert [w.name for w in plan.create_contents] == [new.name]
    assert [w.name for w in plan.create_snapshots] == [new.name]
    assert plan.delete_snapshots == (gone.name,) and plan.delete_contents == (gone.name,)
    assert plan_objects([kept], [_object(kept)], [_object(kept)], in_azure).empty


def test_no_listing_of_azure_means_everything_of_the_policy_goes_and_nothing_is_made() -> None:
    item = _wanted("a")
    plan = plan_objects([item], [_object(item)], [_object(item)], None)
    assert plan.create_contents == () and plan.delete_snapshots == (item.name,) and plan.delete_contents == (item.name,)


BASE: dict[str, Any] = {"schedule": {"every": "1h"}, "retention": {"keepLast": 2}}


def test_the_model_takes_the_field_with_claim_targets_only() -> None:
    spec = SnapshotPolicySpec.model_validate({**BASE, "volumeClaim": "data", "volumeSnapshots": {"enabled": True}})
    assert spec.volume_snapshots == VolumeSnapshotsSpec(enabled=True)
    disk = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d"
    with pytest.raises(ValidationError, match="volumeSnapshots needs volumeClaim"):
        SnapshotPolicySpec.model_validate({**BASE, "disk": {"id": disk}, "volumeSnapshots": {"enabled": True}})
    with pytest.raises(ValidationError):
        VolumeSnapshotsSpec.model_validate({"enabled": "yes"})


def _at(name: str, hour: int) -> Wanted:
    snap = _snapshot(name)
    return Wanted(object_name(snap), snap.id, "disk", "data-0", WHEN.replace(hour=hour))


def test_a_plan_creates_at_most_its_limit_newest_first_and_leaves_the_rest_pending() -> None:
    items = [_at(f"s{h:02d}", h) for h in range(6)]
    in_azure = {w.snapshot_id.lower() for w in items}
    half = _at("s05", 5)  # its content was made, its VolumeSnapshot not (a crash between two creates)
    plan = plan_objects(items, [], [_object(half)], in_azure, limit=3)
    newest = {items[5].name, items[4].name, items[3].name}
    assert {w.name for w in plan.create_snapshots} == newest
    assert {w.name for w in plan.create_contents} == newest - {half.name}
    assert plan.pending == (items[2].name, items[1].name, items[0].name)
    done = [_object(w) for w in items[3:]]
    rest = plan_objects(items, done, done, in_azure, limit=3)
    assert {w.name for w in rest.create_snapshots} == {w.name for w in items[:3]} and rest.pending == ()
    assert len(plan_objects(items, [], [], in_azure).create_snapshots) == 6  # the default limit is larger


def test_readiness_counts_ready_ones_and_names_those_that_stay_not_ready_with_an_error() -> None:
    def vs(name: str, created: datetime, status: dict[str, Any] | None) -> dict[str, Any]:
        meta = {"name": name, "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return {"metadata": meta, **({"status": status} if status is not None else {})}

    now = WHEN + NOT_READY_AFTER + timedelta(minutes=1)
    error = {"readyToUse": False, "error": {"message": "can not find snapshot", "time": "2026-03-29T23:03:00Z"}}
    objects = [
        vs("ok", WHEN, {"readyToUse": True, "boundVolumeSnapshotContentName": "ok"}),
        vs("lost", WHEN, error),
        vs("young", now - timedelta(minutes=1), error),  # the controller still retries: not reported yet
        vs("waiting", WHEN, {"readyToUse": False}),  # not ready, no error: the snapshot is still being made
        vs("fresh", WHEN, None),
        vs("theirs", WHEN, error),  # not published by azsnap: not counted
    ]
    found = readiness(objects, {"ok", "lost", "young", "waiting", "fresh"}, now)
    assert found.ready == 1 and found.unreported == 1
    assert found.not_ready == (NotReady("lost", "can not find snapshot"),)
    assert readiness([], {"just-made"}, now).unreported == 1  # made after the listing: nobody saw it yet
