from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import annotated_types
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from pydantic import BaseModel
from tests.support.crd import cel_errors, crd, openapi_schema, schema_errors, walk

from azsnap.domain import durations, models
from azsnap.domain.drill import RestoreDrillSpec
from azsnap.domain.models import (
    CopyTarget,
    DeletionPolicy,
    DiskRef,
    RetentionSpec,
    ScheduleSpec,
    SnapshotPolicySpec,
    SnapshotSku,
    SnapshotSpec,
)
from azsnap.domain.policy_status import Condition, LastSnapshot, SnapshotPolicyStatus
from azsnap.domain.volume_snapshots import VolumeSnapshotsSpec
from azsnap.handlers.startup import KOPF_STATUS

SPEC_MODELS: dict[str, type[BaseModel]] = {
    "spec": SnapshotPolicySpec,
    "spec.disk": DiskRef,
    "spec.schedule": ScheduleSpec,
    "spec.retention": RetentionSpec,
    "spec.snapshot": SnapshotSpec,
    "spec.copies[]": CopyTarget,
    "spec.copies[].retention": RetentionSpec,
    "status": SnapshotPolicyStatus,
    "status.conditions[]": Condition,
    "status.lastSnapshot": LastSnapshot,
    "spec.restoreDrill": RestoreDrillSpec,
    "spec.volumeSnapshots": VolumeSnapshotsSpec,
}
#: Fields kopf writes beside azsnap's own (its bookkeeping), per schema node.
FRAMEWORK_FIELDS: dict[str, set[str]] = {"status": {KOPF_STATUS.removeprefix("status.")}}


def node(path: str) -> Mapping[str, Any]:
    return dict(walk(openapi_schema()))[path]


def aliases(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_names_and_version() -> None:
    spec = crd()["spec"]
    assert crd()["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd()["metadata"]["name"] == f"{models.PLURAL}.{models.API_GROUP}"
    assert spec["group"] == models.API_GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": models.KIND,
        "listKind": "SnapshotPolicyList",
        "plural": models.PLURAL,
        "singular": "snapshotpolicy",
        "shortNames": ["snappol"],
        "categories": ["azsnap"],
    }
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (models.API_VERSION, True, True)
    assert version["subresources"] == {"status": {}}


def test_the_crd_is_a_valid_kubernetes_object() -> None:
    kubernetes_validate.validate(crd(), kv_utils.latest_version(), strict=True)


def test_schema_is_structural_and_described() -> None:
    for path, schema in walk(openapi_schema()):
        assert "type" in schema, f"{path or '(root)'} has no type"
        if path == "metadata":
            # The API server owns the root metadata: a CRD may only constrain name and generateName, and a
            # description (or anything else) on the node itself is refused.
            assert schema == {"type": "object"}, "root metadata must be exactly {type: object}"
            continue
        assert schema.get("description"), f"{path or '(root)'} has no description: kubectl explain needs one"
        if schema["type"] == "object":
            has_props = "properties" in schema
            has_map = "additionalProperties" in schema
            assert has_props != has_map, f"{path}: an object has either properties or additionalProperties"
        for rule in schema.get("x-kubernetes-validations", []):
            assert rule.get("message"), f"{path}: a CEL rule needs a message naming the fields"
        for key in schema.get("required", []):
            assert key in schema["properties"], f"{path}: required {key} is not a property"
        if schema["type"] == "string" and path.startswith("spec") and "enum" not in schema:
            assert "maxLength" in schema, f"{path}: a free string needs a maxLength"


@pytest.mark.parametrize("prefix", sorted(SPEC_MODELS))
def test_schema_properties_are_the_model_fields(prefix: str) -> None:
    assert set(node(prefix)["properties"]) == aliases(SPEC_MODELS[prefix]) | FRAMEWORK_FIELDS.get(prefix, set())


def test_required_fields_match_the_models() -> None:
    for prefix, model in SPEC_MODELS.items():
        required = {f.alias or n for n, f in model.model_fields.items() if f.is_required()}
        assert set(node(prefix).get("required", [])) == required, prefix


def test_defaults_match_the_models() -> None:
    minimal = SnapshotPolicySpec.model_validate(
        {
            "disk": {"id": DISK},
            "schedule": {"every": "1h"},
            "retention": {"keepLast": 1},
            "restoreDrill": {"every": "1d"},
        }
    ).model_dump(by_alias=True, mode="json")
    defaults = {path: schema["default"] for path, schema in walk(openapi_schema()) if "default" in schema}
    assert defaults == {
        "spec.schedule.timeZone": "UTC",
        "spec.schedule.startingDeadline": "1h",
        "spec.retention.minKeep": 1,
        "spec.snapshot.incremental": True,
        "spec.suspend": False,
        "spec.deletionPolicy": "Retain",
        "spec.onSourceDiskDelete": "Keep",
        "spec.restoreDrill.sku": "StandardSSD_LRS",
        "spec.restoreDrill.timeout": "6h",
    }
    for path, default in defaults.items():
        value: Any = {"spec": minimal}
        for part in path.split("."):
            value = value[part]
        assert value == default, path


def test_patterns_are_the_ones_the_models_use() -> None:
    assert node("spec.disk.id")["pattern"] == models.DISK_ID_PATTERN
    assert node("spec.snapshot.resourceGroup")["pattern"] == models.RESOURCE_GROUP_PATTERN
    assert node("spec.schedule.timeZone")["pattern"] == models.TIME_ZONE_PATTERN
    assert node("spec.schedule.cron")["pattern"] == models.CRON_PATTERN
    for field in ("every", "startingDeadline", "jitter"):
        assert node(f"spec.schedule.{field}")["pattern"] == durations.DURATION_PATTERN
        assert node(f"spec.schedule.{field}")["maxLength"] == models.MAX_DURATION_TEXT
    assert node("spec.retention.maxAge")["pattern"] == durations.DURATION_PATTERN
    for path, schema in walk(openapi_schema()):
        if "pattern" in schema:
            # Go's RE2 must read the pattern as Python does: no look-around, no back-references, no \w.
            assert not re.search(r"\(\?[=!<]|\\[0-9]|\\w|\\d", schema["pattern"]), path
            re.compile(schema["pattern"])


def _bounds(model: type[BaseModel], name: str) -> tuple[int | None, int | None]:
    low = high = None
    for item in model.model_fields[name].metadata:
        if isinstance(item, annotated_types.Ge):
            low = int(item.ge)  # type: ignore[call-overload]
        if isinstance(item, annotated_types.Le):
            high = int(item.le)  # type: ignore[call-overload]
    return low, high


@pytest.mark.parametrize("field", ["keepLast", "hourly", "daily", "weekly", "monthly", "yearly", "minKeep"])
def test_integer_bounds_match_the_models(field: str) -> None:
    schema = node(f"spec.retention.{field}")
    name = next(n for n, f in RetentionSpec.model_fields.items() if f.alias == field)
    assert schema["type"] == "integer"
    assert (schema["minimum"], schema["maximum"]) == _bounds(RetentionSpec, name)


def test_string_limits_match_the_models() -> None:
    assert node("spec.disk.id")["maxLength"] == models.MAX_DISK_ID
    assert node("spec.schedule.cron")["maxLength"] == models.MAX_CRON
    assert node("spec.schedule.timeZone")["maxLength"] == models.MAX_TIME_ZONE
    assert node("spec.snapshot.tags")["maxProperties"] == models.MAX_USER_TAGS
    assert node("spec.snapshot.tags{}")["maxLength"] == 256
    assert node("spec.snapshot.resourceGroup")["maxLength"] == 90


def test_enums_match_the_models() -> None:
    assert node("spec.snapshot.sku")["enum"] == [s.value for s in SnapshotSku]
    assert node("spec.deletionPolicy")["enum"] == [d.value for d in DeletionPolicy]
    assert node("status.conditions[].type")["enum"] == list(typing.get_args(Condition.model_fields["type"].annotation))
    assert node("status.conditions[].status")["enum"] == list(
        typing.get_args(Condition.model_fields["status"].annotation)
    )
    assert node("status.lastSnapshot.state")["enum"] == list(
        typing.get_args(LastSnapshot.model_fields["state"].annotation)
    )


def test_conditions_are_a_map_keyed_by_type() -> None:
    conditions = node("status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_printer_columns_point_at_fields_that_exist() -> None:
    (version,) = crd()["spec"]["versions"]
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Disk": ("string", ".status.diskName"),
        "Disks": ("string", ".status.disksReady"),
        "Schedule": ("string", ".status.schedule"),
        "Ready": ("string", '.status.conditions[?(@.type=="Ready")].status'),
        "Last snapshot": ("date", ".status.lastSnapshot.createdTime"),
        "Next snapshot": ("string", ".status.nextSnapshotTime"),
        "Count": ("integer", ".status.snapshotCount"),
        "Age": ("date", ".metadata.creationTimestamp"),
    }
    # A `date` column renders the age of a time and `<invalid>` for a future one: only past times may use it.
    future = {".status.nextSnapshotTime"}
    assert not [name for name, (kind, path) in columns.items() if kind == "date" and path in future]
    paths = dict(walk(openapi_schema()))
    for _, path in columns.values():
        plain = re.sub(r"\[\?\(.*?\)\]", "[]", path).lstrip(".")
        if not plain.startswith("metadata"):
            assert plain in paths, path


DISK = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo/providers/Microsoft.Compute/disks/disk-0"


def policy(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": spec,
    }
    if status is not None:
        doc["status"] = status
    return doc


def test_a_status_the_models_write_is_valid() -> None:
    when = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    status = SnapshotPolicyStatus(
        observed_generation=3,
        conditions=[
            Condition(
                type="Ready", status="True", reason="Succeeded", last_transition_time=when, observed_generation=3
            ),
            Condition(type="Stalled", status="False", reason="Succeeded", last_transition_time=when),
        ],
        last_snapshot=LastSnapshot(name="disk-0-ab12cd34-20260329T0100Z", scheduled_time=when, state="Copying"),
        last_successful_snapshot_time=when,
        next_snapshot_time=when,
        snapshot_count=4,
        disk_snapshot_count=6,
        disk_snapshot_limit=500,
        missed_slots=0,
        pending_deletions=1,
        last_on_demand_token="t-1",
        slots_accounted_until=when,
        disk_name="disk-0",
        schedule="every 1h",
    )
    dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True)
    spec = {"disk": {"id": DISK}, "schedule": {"every": "1h"}, "retention": {"keepLast": 1}}
    assert schema_errors(policy(spec, dumped)) == []
    assert SnapshotPolicyStatus.model_validate(dumped) == status
    dumped["lastSnapshot"]["state"] = "Exploded"
    assert [e.path for e in schema_errors(policy(spec, dumped))] == ["status.lastSnapshot.state"]


@pytest.mark.parametrize(
    ("schedule", "ok"),
    [
        ({"cron": "0 * * * *"}, True),
        ({"every": "4h"}, True),
        ({"cron": "0 * * * *", "every": "4h"}, False),
        ({"timeZone": "UTC"}, False),
    ],
)
def test_cel_exactly_one_of_cron_and_every(schedule: dict[str, Any], ok: bool) -> None:
    errors = cel_errors(node("spec.schedule"), schedule, "spec.schedule")
    assert (errors == []) is ok
    assert all("cron" in e.message and "every" in e.message for e in errors)


@pytest.mark.parametrize("rule", ["keepLast", "maxAge", "hourly", "daily", "weekly", "monthly", "yearly"])
def test_cel_any_retention_rule_is_enough(rule: str) -> None:
    value: Any = "7d" if rule == "maxAge" else 3
    assert cel_errors(node("spec.retention"), {rule: value}, "spec.retention") == []
    (error,) = cel_errors(node("spec.retention"), {"minKeep": 3}, "spec.retention")
    assert error.path == "spec.retention" and rule in error.message


def test_every_crd_declares_kopfs_bookkeeping_in_its_status_the_same_way() -> None:
    # kopf's storages are set for the whole operator: a CRD without the block would have the server prune them.
    blocks = []
    for path in sorted((Path(__file__).resolve().parents[2] / "crds").glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        status = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        blocks.append(status["properties"][KOPF_STATUS.removeprefix("status.")])
    assert len(blocks) >= 2
    assert all(block == blocks[0] for block in blocks)
    assert set(blocks[0]["properties"]) == {"last-handled-configuration", "progress", "dummy"}
