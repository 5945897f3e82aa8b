"""SnapshotRestore end to end: the restore handlers in kopf against the Kubernetes emulator, the real SDK against the
Azure emulator over HTTPS, emulated time. Snapshots are made with a policy's ownership tags, as its reconcile would."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from tests.support.kube import EPOCH, condition, eventually, install_project_crd, policy_manifest

from azsnap.clock import LoopClock
from azsnap.cloud.interface import SnapshotRequest
from azsnap.domain import naming
from azsnap.domain.models import API_GROUP, API_VERSION, PolicyRef
from azsnap.domain.observed import Disk
from azsnap.domain.restore import PLURAL, TAG_RESTORE_UID
from azsnap.domain.restore_volumes import LABEL_RESTORE_UID
from azsnap.domain.scope import ScopeGuard
from azsnap.emulator import DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers import restore
from azsnap.handlers.restore_volumes import KubeVolumes
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.handlers.startup import configure_kopf
from azsnap.offline.sandbox import Sandbox, azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

DOC = Path(__file__).resolve().parents[2] / "docs" / "restore.md"
RESTORE_CRD = Path(__file__).resolve().parents[2] / "crds" / f"{PLURAL}.{API_GROUP}.yaml"
SNAPSHOT_RESTORE = (API_GROUP, API_VERSION, PLURAL)
TARGET_RG = "rg-restores"


@asynccontextmanager
async def operator(kube: KubeEmulator, namespace: str = "default", **sandbox: Any) -> AsyncIterator[Sandbox]:
    """The Azure sandbox on the loop's clock, with the restore handlers (only) running against `kube`."""
    install_project_crd(kube)
    kube.install_crd(yaml.safe_load(RESTORE_CRD.read_text()))
    registry = kopf.OperatorRegistry()
    restore.register(registry)
    async with azure_sandbox(LoopClock(EPOCH), **sandbox) as box:
        box.emulator.seed_disk(DEMO_SUBSCRIPTION, TARGET_RG, "placeholder", location=DEMO_LOCATION)  # the group exists
        async with run_operator(
            registry,
            kube=kube,
            namespaces=[namespace],
            memo=kopf.Memo({MEMO_KEY: box.runtime}),
            configure=lambda settings: configure_kopf(settings, box.runtime.settings),
        ):
            yield box


async def policy_with_snapshots(
    kube: KubeEmulator, box: Sandbox, disk: str, hours: int, *, name: str = "pg", namespace: str = "default"
) -> tuple[list[str], Disk]:
    """A SnapshotPolicy object (its handlers are not running) and `hours` hourly snapshots with its tags."""
    spec = {"disk": {"id": disk_id(disk)}, "schedule": {"every": "1h"}, "retention": {"keepLast": 24}}
    made = kube.apply(policy_manifest(name, spec, namespace=namespace))
    ref = PolicyRef(namespace, name, made["metadata"]["uid"])
    source = await box.runtime.cloud.get_disk(disk_id(disk))
    assert source is not None
    ids = []
    for hour in range(hours):
        slot = box.clock.now()
        request = SnapshotRequest(
            DEMO_SUBSCRIPTION,
            DEMO_RESOURCE_GROUP,
            naming.snapshot_name(disk, ref.uid, slot),
            DEMO_LOCATION,
            source.id,
            tags=naming.ownership_tags(ref, source, slot),
        )
        ids.append((await box.runtime.cloud.create_snapshot(request)).id)
        if hour < hours - 1:
            await asyncio.sleep(3600)
    return ids, source


def restore_manifest(name: str, source: dict[str, Any], **target: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "SnapshotRestore",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"source": source, "target": {"name": f"{name}-disk", "resourceGroup": TARGET_RG, **target}},
    }


def get(kube: KubeEmulator, name: str) -> dict[str, Any] | None:
    return kube.get(*SNAPSHOT_RESTORE, "default", name)


def has(kube: KubeEmulator, name: str, kind: str, status: str = "True", reason: str | None = None) -> Callable[[], Any]:
    def check() -> dict[str, Any] | None:
        obj = get(kube, name)
        cond = condition(obj, kind)
        if cond and cond.get("status") == status and (reason is None or cond.get("reason") == reason):
            return obj
        return None

    return check


def disk_of(box: Sandbox, name: str) -> dict[str, Any] | None:
    return next((d for d in box.emulator.disks(DEMO_SUBSCRIPTION, TARGET_RG) if d["name"] == name), None)


async def test_the_newest_snapshot_of_a_policy_is_restored_to_a_new_disk(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        ids, _ = await policy_with_snapshots(kube, box, "disk-0", 3)
        made = kube.apply(restore_manifest("newest", {"policy": "pg"}, sizeGB=256))
        obj = await eventually(has(kube, "newest", "Ready"))
        status = obj["status"]
        assert status["sourceSnapshot"]["id"] == ids[-1] and status["phase"] == "Ready"
        assert status["disk"]["sizeGB"] == 256 and status["observedGeneration"] == 1
        disk = disk_of(box, "newest-disk")
        assert disk is not None and disk["tags"][TAG_RESTORE_UID] == made["metadata"]["uid"]
        assert disk["properties"]["creationData"]["sourceResourceId"] == ids[-1]
        reasons = [e["reason"] for e in kube.events("default") if e["involvedObject"]["name"] == "newest"]
        assert reasons[:2] == ["DiskCreating", "Restored"]
        kube.delete(*SNAPSHOT_RESTORE, "default", "newest")
        await eventually(lambda: get(kube, "newest") is None or None)
        assert disk_of(box, "newest-disk") is not None  # deletionPolicy Retain: the disk stays


async def test_at_or_before_a_time_restores_the_snapshot_of_that_time(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        ids, _ = await policy_with_snapshots(kube, box, "disk-0", 4)
        at = (EPOCH + timedelta(hours=1, minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
        kube.apply(restore_manifest("then", {"policy": "pg", "atOrBefore": at}))
        obj = await eventually(has(kube, "then", "Ready"))
        assert obj["status"]["sourceSnapshot"]["id"] == ids[1]


async def test_a_premium_v2_restore_is_not_ready_until_hydrated(kube: KubeEmulator) -> None:
    async with operator(kube, premium_v2_disks=1) as box:
        ids, _ = await policy_with_snapshots(kube, box, "pv2-disk-0", 1)
        await asyncio.sleep(3600)  # the snapshot's own background copy completes
        kube.apply(restore_manifest("pv2", {"snapshotId": ids[0]}, sku="PremiumV2_LRS", zone="1"))
        hydrating = await eventually(has(kube, "pv2", "Ready", status="False", reason="Hydrating"))
        assert condition(hydrating, "Reconciling")["status"] == "True"  # type: ignore[index]
        assert hydrating["status"]["phase"] == "Hydrating" and hydrating["status"]["disk"]["completionPercent"] < 100
        ready = await eventually(has(kube, "pv2", "Ready"))
        assert ready["status"]["disk"]["completionPercent"] == 100
        seen = ready["status"]["readyTime"]
        assert seen > hydrating["status"]["conditions"][0]["lastTransitionTime"]


async def test_an_existing_disk_is_never_overwritten(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        ids, _ = await policy_with_snapshots(kube, box, "disk-0", 1)
        box.emulator.seed_disk(DEMO_SUBSCRIPTION, TARGET_RG, "taken-disk", location=DEMO_LOCATION, size_gb=8)
        before = disk_of(box, "taken-disk")
        kube.apply(restore_manifest("taken", {"snapshotId": ids[0]}))
        obj = await eventually(has(kube, "taken", "Stalled", reason="DiskExists"))
        assert "never overwrites" in condition(obj, "Stalled")["message"]  # type: ignore[index]
        assert disk_of(box, "taken-disk") == before
        assert not [r for r in box.emulator.requests if r.method == "PUT" and "/disks/" in r.path]
        assert "DiskExists" in [e["reason"] for e in kube.events("default") if e["type"] == "Warning"]


async def test_a_restore_outside_the_namespaces_scope_makes_no_azure_call(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        ids, _ = await policy_with_snapshots(kube, box, "disk-0", 1)
        box.runtime.reconciler.scope = ScopeGuard.from_yaml(
            "- {namespaces: [default], subscriptions: ['*'], diskResourceGroups: [" + DEMO_RESOURCE_GROUP + "]}"
        )
        calls = len(box.emulator.requests)
        kube.apply(restore_manifest("far", {"snapshotId": ids[0]}))
        obj = await eventually(has(kube, "far", "Stalled", reason="ScopeNotAllowed"))
        assert TARGET_RG in condition(obj, "Stalled")["message"]  # type: ignore[index]
        assert len(box.emulator.requests) == calls


async def test_the_newest_snapshot_is_restored_to_a_claim_the_namespace_can_mount(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        box.runtime.volumes = KubeVolumes(kopf.ConnectionInfo(server=kube.url))
        ids, _ = await policy_with_snapshots(kube, box, "disk-0", 2)
        wanted = restore_manifest("to-pvc", {"policy": "pg"}, zone="2")
        wanted["spec"] |= {
            "persistentVolume": {"name": "pg-restored", "storageClassName": "managed-csi"},
            "persistentVolumeClaim": {"name": "pg-data-restored"},
        }
        made = kube.apply(wanted)
        obj = await eventually(has(kube, "to-pvc", "Ready"))
        assert obj["status"]["persistentVolume"] == "pg-restored"
        assert obj["status"]["persistentVolumeClaim"] == "pg-data-restored"
        assert obj["status"]["sourceSnapshot"]["id"] == ids[-1]
        volume = kube.get("", "v1", "persistentvolumes", None, "pg-restored")
        claim = kube.get("", "v1", "persistentvolumeclaims", "default", "pg-data-restored")
        assert volume is not None and claim is not None
        assert volume["spec"]["csi"] == {"driver": "disk.csi.azure.com", "volumeHandle": obj["status"]["disk"]["id"]}
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert volume["spec"]["claimRef"]["name"] == "pg-data-restored"
        assert volume["spec"]["claimRef"]["namespace"] == "default"
        zone = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
        assert zone["values"] == [f"{DEMO_LOCATION}-2"]
        assert claim["spec"]["volumeName"] == "pg-restored" and claim["spec"]["storageClassName"] == "managed-csi"
        assert claim["spec"]["resources"]["requests"]["storage"] == volume["spec"]["capacity"]["storage"] == "128Gi"
        assert volume["metadata"]["labels"][LABEL_RESTORE_UID] == made["metadata"]["uid"]
        created = [e["message"] for e in kube.events("default") if e["reason"] == "Created"]
        assert created == ["Created PersistentVolume pg-restored.", "Created PersistentVolumeClaim pg-data-restored."]
        await box.runtime.volumes.close()


async def test_a_volume_of_that_name_not_made_by_the_restore_is_left_alone(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        box.runtime.volumes = KubeVolumes(kopf.ConnectionInfo(server=kube.url))
        ids, _ = await policy_with_snapshots(kube, box, "disk-0", 1)
        theirs = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "busy"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "csi": {"driver": "disk.csi.azure.com", "volumeHandle": "elsewhere"},
            },
        }
        kube.apply(theirs)
        wanted = restore_manifest("clash", {"snapshotId": ids[0]})
        wanted["spec"]["persistentVolume"] = {"name": "busy"}
        kube.apply(wanted)
        obj = await eventually(has(kube, "clash", "Ready", status="False", reason="VolumeFailed"))
        assert "not made by this restore" in condition(obj, "Ready")["message"]  # type: ignore[index]
        volume = kube.get("", "v1", "persistentvolumes", None, "busy")
        assert volume is not None and volume["spec"]["csi"]["volumeHandle"] == "elsewhere"
        await box.runtime.volumes.close()


async def test_the_manifest_of_the_restore_doc_restores_into_a_claim(kube: KubeEmulator) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    (wanted,) = [d for b in blocks for d in yaml.safe_load_all(b) if d and d.get("kind") == "SnapshotRestore"]
    namespace, spec = wanted["metadata"]["namespace"], wanted["spec"]
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    async with operator(kube, namespace) as box:
        box.emulator.seed_disk(DEMO_SUBSCRIPTION, spec["target"]["resourceGroup"], "other", location=DEMO_LOCATION)
        box.runtime.volumes = KubeVolumes(kopf.ConnectionInfo(server=kube.url))
        ids, _ = await policy_with_snapshots(kube, box, "disk-0", 2, name=spec["source"]["policy"], namespace=namespace)
        kube.apply(wanted)
        obj = await eventually(lambda: _ready(kube.get(*SNAPSHOT_RESTORE, namespace, wanted["metadata"]["name"])))
        status = obj["status"]
        assert status["sourceSnapshot"]["id"] == ids[-1]
        assert (status["disk"]["sku"], status["disk"]["sizeGB"], status["disk"]["zone"]) == (
            spec["target"]["sku"],
            spec["target"]["sizeGB"],
            spec["target"]["zone"],
        )
        claim = kube.get("", "v1", "persistentvolumeclaims", namespace, spec["persistentVolumeClaim"]["name"])
        volume = kube.get("", "v1", "persistentvolumes", None, spec["persistentVolume"]["name"])
        assert claim is not None and volume is not None
        assert volume["spec"]["csi"]["volumeHandle"] == status["disk"]["id"]
        assert claim["spec"]["volumeName"] == volume["metadata"]["name"]
        await box.runtime.volumes.close()


def _ready(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    cond = condition(obj, "Ready")
    return obj if cond and cond["status"] == "True" else None
