from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from azsnap.domain.models import ScheduleSpec, SnapshotPolicySpec, SnapshotSpec, parse_disk_id
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.validation import FieldError, format_errors, validate_manifest, validate_spec

DISK = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo/providers/Microsoft.Compute/disks/disk-0"


def spec(**parts: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"disk": {"id": DISK}, "schedule": {"every": "1h"}, "retention": {"keepLast": 3}}
    base.update(parts)
    return base


def manifest(body: Any, **top: Any) -> dict[str, Any]:
    return {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "p"},
        "spec": body,
        **top,
    }


def paths(doc: Any) -> list[str]:
    _, errors = validate_manifest(doc)
    return [e.path for e in errors]


def test_parse_disk_id_splits_and_keeps_case_of_names() -> None:
    odd = DISK.replace("/subscriptions/", "/SUBSCRIPTIONS/").replace(
        "Microsoft.Compute/disks", "microsoft.compute/DISKS"
    )
    coords = parse_disk_id(odd.replace("rg-demo", "RG-Demo"))
    assert (coords.subscription_id, coords.resource_group, coords.name) == (
        "00000000-0000-0000-0000-000000000000",
        "RG-Demo",
        "disk-0",
    )


@pytest.mark.parametrize(
    "disk_id",
    [
        DISK.replace("disks/disk-0", "snapshots/disk-0"),
        DISK.replace("Microsoft.Compute", "Microsoft.Storage"),
        DISK + "/extra",
        DISK + "\n",
        DISK.replace("disk-0", "disk-\u212a"),  # Kelvin sign: matches `k` case-insensitively, Azure refuses it
        DISK.replace("00000000-0000", "0000000-00000"),
        DISK.replace("rg-demo", "rg."),
        DISK.replace("disk-0", "-disk"),
        DISK.replace("disk-0", "d" * 81),
    ],
)
def test_parse_disk_id_refuses_what_is_not_a_managed_disk(disk_id: str) -> None:
    with pytest.raises(ValueError, match="not the ARM ID of a managed disk"):
        parse_disk_id(disk_id)


def test_valid_spec_round_trips_through_its_aliases() -> None:
    raw = spec(
        schedule={"cron": "30 2 * * *", "timeZone": "Europe/Berlin", "startingDeadline": "3h", "jitter": "10m"},
        retention={"hourly": 24, "daily": 7, "weekly": 4, "monthly": 12, "yearly": 2, "maxAge": "10d", "minKeep": 2},
        snapshot={"incremental": False, "resourceGroup": "rg(snaps)_1", "sku": "Premium_LRS", "tags": {"a": "b"}},
        suspend=True,
        deletionPolicy="Delete",
        onSourceDiskDelete="ApplyRetention",
    )
    parsed, errors = validate_spec(raw)
    assert errors == [] and parsed is not None
    assert parsed.model_dump(by_alias=True, mode="json", exclude_none=True) == raw


@pytest.mark.parametrize(
    ("every", "ok"),
    [
        *[("1h", True), ("60m", True), ("12h", True), ("1d", True), ("1w", True), ("366d", True)],
        *[("59m", False), ("5h", False), ("90m", False), ("25h", False), ("367d", False), ("0h", False)],
    ],
)
def test_every_must_fit_the_day(every: str, ok: bool) -> None:
    assert (paths(manifest(spec(schedule={"every": every}))) == []) is ok


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("startingDeadline", "1m", True),
        ("startingDeadline", "7d", True),
        ("startingDeadline", "0s", False),
        ("startingDeadline", "8d", False),
        ("jitter", "0s", True),
        ("jitter", "1d", True),
        ("jitter", "1d1s", False),
    ],
)
def test_schedule_duration_bounds(field: str, value: str, ok: bool) -> None:
    found = paths(manifest(spec(schedule={"cron": "0 0 * * *", field: value})))
    assert (found == []) is ok or (not ok and found == [f"spec.schedule.{field}"])


def test_durations_are_text_without_padding_or_huge_values() -> None:
    assert paths(manifest(spec(schedule={"every": " 4h"}))) == ["spec.schedule.every"]
    assert paths(manifest(spec(retention={"maxAge": "999999w" * 5}))) == ["spec.retention.maxAge"]
    assert paths(manifest(spec(retention={"maxAge": "-7d"}))) == ["spec.retention.maxAge"]
    assert paths(manifest(spec(retention={"maxAge": 7}))) == ["spec.retention.maxAge"]


def test_counts_are_strict_integers_within_bounds() -> None:
    assert paths(manifest(spec(retention={"keepLast": "3"}))) == ["spec.retention.keepLast"]
    assert paths(manifest(spec(retention={"keepLast": 3.0}))) == ["spec.retention.keepLast"]
    assert paths(manifest(spec(retention={"keepLast": True}))) == ["spec.retention.keepLast"]
    assert paths(manifest(spec(retention={"daily": 501}))) == ["spec.retention.daily"]
    assert paths(manifest(spec(retention={"yearly": 101}))) == ["spec.retention.yearly"]
    assert paths(manifest(spec(retention={"yearly": 100, "minKeep": 0}))) == ["spec.retention.minKeep"]
    assert paths(manifest(spec(suspend="true"))) == ["spec.suspend"]


def test_time_zones_must_be_iana_names() -> None:
    for zone in ("Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5", "UTC", "Australia/Lord_Howe"):
        assert ScheduleSpec.model_validate({"every": "1h", "timeZone": zone}).zone.key == zone
    for zone in ("Mars/Olympus", "europe/berlin", "../../etc/passwd", "", "Europe/Berlin ", "Europe/Berlín", "+01:00"):
        assert paths(manifest(spec(schedule={"every": "1h", "timeZone": zone}))) == ["spec.schedule.timeZone"], zone


def test_tags_follow_azure_rules_and_leave_room_for_ours() -> None:
    assert SnapshotSpec.model_validate({"tags": {f"k{i}": "v" for i in range(40)}}).tags["k39"] == "v"
    assert SnapshotSpec.model_validate({"tags": {"ä-Schlüssel": "wert ✓", "k" * 512: "v" * 256}})
    for tags, word in [
        ({f"k{i}": "v" for i in range(41)}, "at most 40"),
        ({"a<b": "v"}, "a<b"),
        ({"50%": "v"}, "50%"),
        ({"a/b": "v"}, "a/b"),
        ({"k" * 513: "v"}, "1-512"),
        ({"": "v"}, "1-512"),
        ({"azsnap-hold": "x"}, "reserved"),
        ({"AzSnap-Policy": "x"}, "reserved"),
    ]:
        _, errors = validate_manifest(manifest(spec(snapshot={"tags": tags})))
        assert [e.path for e in errors] == ["spec.snapshot.tags"], tags
        assert word in errors[0].message
    _, errors = validate_manifest(manifest(spec(snapshot={"tags": {"k": "v" * 257}})))
    assert [e.path for e in errors] == ["spec.snapshot.tags.k"]


def test_resource_group_names() -> None:
    assert SnapshotSpec.model_validate({"resourceGroup": "rg_(1)-a.b"}).resource_group == "rg_(1)-a.b"
    for group in ("rg.", "", "r" * 91, "rg/x", "rg demo", "grüppe"):
        assert paths(manifest(spec(snapshot={"resourceGroup": group}))) == ["spec.snapshot.resourceGroup"], group


def test_model_rules_name_the_object_they_span() -> None:
    assert paths(manifest(spec(schedule={"every": "1h", "cron": "@daily"}))) == ["spec.schedule"]
    assert paths(manifest(spec(schedule={"timeZone": "UTC"}))) == ["spec.schedule"]
    _, errors = validate_manifest(manifest(spec(retention={"minKeep": 2})))
    assert [e.path for e in errors] == ["spec.retention"]
    assert "keepLast" in errors[0].message


def test_schedule_problems_are_reported_with_their_field() -> None:
    doc = manifest(spec(schedule={"cron": "* * * * *"}))
    parsed, errors = validate_manifest(doc)
    assert parsed is None
    assert [e.path for e in errors] == ["spec.schedule.cron"]
    assert "more than once an hour" in errors[0].message


def test_unknown_and_missing_fields() -> None:
    _, errors = validate_manifest(manifest(spec(schedule={"evry": "1h"})))
    assert {str(e) for e in errors} >= {
        "spec.schedule.evry: unknown field; the fields here are cron, every, jitter, startingDeadline, timeZone"
    }
    body = spec()
    del body["disk"]
    _, errors = validate_manifest(manifest(body))
    assert [e.path for e in errors] == ["spec"]
    assert errors[0].message.startswith("set exactly one of disk (an ARM ID), volumeClaim (a PersistentVolumeClaim")
    _, errors = validate_manifest(manifest(spec(snapshot={"tags": {"a": 1}})))
    assert [e.path for e in errors] == ["spec.snapshot.tags.a"]
    _, errors = validate_manifest(manifest(spec(snapshot={"tags": {"a b": 1}})))
    assert [e.path for e in errors] == ["spec.snapshot.tags['a b']"]


def test_manifest_envelope() -> None:
    good = manifest(spec())
    parsed, errors = validate_manifest(good)
    assert errors == [] and isinstance(parsed, SnapshotPolicySpec)
    assert validate_manifest({k: v for k, v in good.items() if k != "metadata"})[1] == []
    assert paths({**good, "apiVersion": "azsnap.io/v1"}) == ["apiVersion"]
    assert paths({**good, "kind": "VolumeSnapshot"}) == ["kind"]
    assert paths({**good, "metadata": {"name": "Not_Valid"}}) == ["metadata.name"]
    assert paths({**good, "metadata": "x"}) == ["metadata"]
    assert paths({k: v for k, v in good.items() if k != "spec"}) == ["spec"]
    assert paths({**good, "spec": ["disk"]}) == ["spec"]
    assert paths(["not", "a", "mapping"]) == ["(document)"]
    assert validate_manifest({**good, "kind": "X"})[0] is None, "no spec is handed out while anything is wrong"


def test_format_errors() -> None:
    errors = [FieldError("spec.schedule.every", "must be at least 1h"), FieldError("kind", "must be 'SnapshotPolicy'")]
    assert format_errors(errors) == "spec.schedule.every: must be at least 1h; kind: must be 'SnapshotPolicy'"
    assert format_errors(errors, sep="\n").splitlines()[1] == "kind: must be 'SnapshotPolicy'"
    assert format_errors([]) == ""


def test_status_has_the_printer_column_fields() -> None:
    status = SnapshotPolicyStatus.model_validate({"diskName": "disk-0", "schedule": "every 4h", "snapshotCount": 3})
    assert (status.disk_name, status.schedule, status.snapshot_count) == ("disk-0", "every 4h", 3)
    assert status.model_dump(by_alias=True, exclude_none=True) == {
        "diskName": "disk-0",
        "schedule": "every 4h",
        "snapshotCount": 3,
        "conditions": [],
    }


def test_spec_is_frozen() -> None:
    parsed = SnapshotPolicySpec.model_validate(spec())
    with pytest.raises(ValidationError):
        parsed.suspend = True  # type: ignore[misc]
    assert parsed.schedule.every == timedelta(hours=1)
