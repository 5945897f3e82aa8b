"""The SnapshotRestore CRD: the chart's copy, what a real API server accepts, its CEL rules, and the models' fields."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kmock
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from pydantic import BaseModel

from azsnap.domain import restore
from azsnap.domain.models import API_GROUP, API_VERSION
from azsnap.domain.restore import (
    ClaimSpec,
    RestoreSource,
    RestoreTarget,
    SnapshotRestoreSpec,
    VolumeSpec,
)
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.emulator.kubernetes.crd_rules import crd_causes, crd_warnings
from azsnap.handlers.startup import KOPF_STATUS

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "crds" / f"{restore.PLURAL}.{API_GROUP}.yaml"
SNAPSHOT = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-data"
    "/providers/Microsoft.Compute/snapshots/pg-0-snap"
)


def crd() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SOURCE.read_text())
    return loaded


def schema() -> dict[str, Any]:
    node: dict[str, Any] = crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return node


def test_the_chart_ships_a_byte_identical_copy() -> None:
    copy_ = ROOT / "helm" / "azsnap" / "crds" / SOURCE.name
    assert copy_.read_bytes() == SOURCE.read_bytes(), "helm/azsnap/crds/ differs from crds/: copy it over"


def test_names_and_a_valid_object_the_server_takes_without_warnings() -> None:
    doc = crd()
    assert doc["metadata"]["name"] == f"{restore.PLURAL}.{API_GROUP}"
    assert doc["spec"]["names"]["kind"] == restore.KIND and doc["spec"]["scope"] == "Namespaced"
    (version,) = doc["spec"]["versions"]
    assert (version["name"], version["subresources"]) == (API_VERSION, {"status": {}})
    kubernetes_validate.validate(doc, kv_utils.latest_version(), strict=True)
    assert crd_causes(doc) == [] and crd_warnings(doc) == []


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("spec", SnapshotRestoreSpec),
        ("spec.source", RestoreSource),
        ("spec.target", RestoreTarget),
        ("spec.persistentVolume", VolumeSpec),
        ("spec.persistentVolumeClaim", ClaimSpec),
        ("status", restore.SnapshotRestoreStatus),
    ],
)
def test_the_schema_and_the_models_name_the_same_fields(path: str, model: type[BaseModel]) -> None:
    node = schema()
    for key in path.split("."):
        node = node["properties"][key]
    framework = {KOPF_STATUS.removeprefix("status.")} if path == "status" else set()  # kopf's bookkeeping
    assert set(node["properties"]) == {f.alias or n for n, f in model.model_fields.items()} | framework


def test_the_patterns_are_the_models() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    assert spec["source"]["properties"]["snapshotId"]["pattern"] == restore.SNAPSHOT_ID_PATTERN
    assert spec["target"]["properties"]["name"]["pattern"] == restore.DISK_NAME_PATTERN
    assert spec["target"]["properties"]["sku"]["enum"] == [s.value for s in restore.DiskSku]


def manifest(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": restore.KIND,
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    }


TARGET = {"name": "pg-restored", "resourceGroup": "rg-restore"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"source": {"policy": "pg", "snapshotId": SNAPSHOT}, "target": TARGET},
            "exactly one of policy and snapshotId",
        ),
        ({"source": {}, "target": TARGET}, "exactly one of policy and snapshotId"),
        ({"source": {"snapshotId": SNAPSHOT, "atOrBefore": "2026-03-01T00:00:00Z"}, "target": TARGET}, "set policy"),
        (
            {"source": {"policy": "pg"}, "target": TARGET, "persistentVolumeClaim": {"name": "data"}},
            "set persistentVolume too",
        ),
        ({"source": {"policy": "pg"}, "target": {**TARGET, "sizeGB": 0}}, "sizeGB"),
        ({"source": {"policy": "pg"}, "target": {**TARGET, "sku": "Turbo"}}, "sku"),
    ],
)
async def test_the_api_refuses_what_the_schema_and_its_rules_say(spec: dict[str, Any], message: str) -> None:
    async with KubeEmulator.serve() as kube:
        kube.install_crd(crd())
        with pytest.raises(Exception, match=message):
            kube.apply(manifest("bad", spec))
        with pytest.raises(ValueError):  # the model refuses the same
            SnapshotRestoreSpec.model_validate(spec)


async def test_a_valid_restore_is_stored_with_its_defaults() -> None:
    async with KubeEmulator.serve() as kube:
        kube.install_crd(crd())
        made = kube.apply(manifest("ok", {"source": {"policy": "pg"}, "target": dict(TARGET)}))
        assert made["spec"]["target"]["sku"] == "StandardSSD_LRS" and made["spec"]["deletionPolicy"] == "Retain"
        assert SnapshotRestoreSpec.model_validate(made["spec"]).target.sku == "StandardSSD_LRS"


async def test_the_target_may_change_until_the_disk_is_made_and_never_after() -> None:
    async with KubeEmulator.serve() as kube:
        kube.install_crd(crd())
        kube.apply(manifest("pg", {"source": {"policy": "pg"}, "target": dict(TARGET)}))
        where = (API_GROUP, API_VERSION, restore.PLURAL, "default", "pg")
        moved = kube.patch(*where, {"spec": {"target": {"name": "pg-restored-2"}}})  # no disk yet: a new name is fine
        assert moved["spec"]["target"]["name"] == "pg-restored-2"
        disk = {"id": f"{SNAPSHOT.split('/providers/')[0]}/providers/Microsoft.Compute/disks/pg-restored-2",
                "name": "pg-restored-2"}  # fmt: skip
        kube.patch(*where, {"status": {"disk": disk}}, subresource="status")
        with pytest.raises(kmock.KubernetesError, match=r"spec\.target cannot change once the restore") as caught:
            kube.patch(*where, {"spec": {"target": {"name": "pg-restored-3"}}})
        assert caught.value.details["causes"] == [
            {"reason": "FieldValueForbidden", "field": "spec.target",
             "message": "Forbidden: spec.target cannot change once the restore has made its disk (status.disk); "
                        "create a new SnapshotRestore for another disk"}
        ]  # fmt: skip
        kept = kube.patch(*where, {"spec": {"deletionPolicy": "Delete"}})  # the rest of the spec may still change
        assert kept["spec"]["target"]["name"] == "pg-restored-2" and kept["spec"]["deletionPolicy"] == "Delete"
