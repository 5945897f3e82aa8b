"""Publishing as VolumeSnapshots, the pure part: names, manifests, and what to create or remove."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from azsnap.domain.models import PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Snapshot
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
