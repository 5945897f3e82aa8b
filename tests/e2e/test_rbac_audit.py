"""The chart's RBAC is exactly what the operator uses: a full operator run's requests, in RBAC terms, against its rules.

The in-process API counts every resource request as (verb, API group, resource). A run takes policies through their
whole life (create, the timer, on-demand, suspend, edit, an invalid spec, deletion with Retain and Delete), once
standalone and once with peering, cluster-wide as the chart's default install runs; the verbs seen must be the
chart's rules for that install, no more (least privilege) and no less (it would fail on a real cluster).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, condition, eventually, install_project_crd, policy_manifest
from tests.support.volume_snapshots import claim_of_disk, install_snapshot_crds

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.cloud.interface import SnapshotRequest
from azsnap.emulator import DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers import restore
from azsnap.handlers.policy import ANNOTATION_SNAPSHOT_NOW
from azsnap.handlers.restore_volumes import KubeVolumes
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.handlers.startup import configure_kopf
from azsnap.handlers.volume_snapshots import KubeSnapshots
from azsnap.offline.sandbox import azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

ROOT = Path(__file__).resolve().parents[2]
Rule = tuple[str, str, str]  # verb, API group, resource


def _helm() -> str:
    found = shutil.which("helm") or str(ROOT / ".tools" / "helm")
    if not Path(found).exists():
        pytest.skip("no helm binary: `make test` fetches one into .tools/ (bash .ci/fetch-helm .tools)")
    return found


def _chart(*sets: str) -> list[dict[str, Any]]:
    args = [_helm(), "template", "azsnap", str(ROOT / "helm" / "azsnap"), "--namespace", "azsnap-system"]
    for value in sets:
        args += ["--set", value]
    env = {**os.environ, "HELM_CACHE_HOME": "/nonexistent-cache", "HELM_CONFIG_HOME": "/nonexistent-config"}
    result = subprocess.run(args, capture_output=True, text=True, env=env, check=True)
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _granted(manifests: list[dict[str, Any]]) -> set[Rule]:
    """What the chart grants the operator's ServiceAccount (not the roles it offers people, such as `-view`)."""
    (account,) = [m["metadata"]["name"] for m in manifests if m["kind"] == "ServiceAccount"]
    bound = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in manifests
        if b["kind"] in ("ClusterRoleBinding", "RoleBinding")
        and any(s["kind"] == "ServiceAccount" and s["name"] == account for s in b["subjects"])
    }
    return {
        (verb, group, resource)
        for role in manifests
        if (role["kind"], role["metadata"]["name"]) in bound
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _spec(disk: str, **extra: Any) -> dict[str, Any]:
    return {"disk": {"id": disk_id(disk)}, "schedule": {"every": "1h"}, "retention": {"keepLast": 2}, **extra}


async def _full_run(kube: KubeEmulator, *, peering: str | None) -> set[Rule]:
    """The operator through a policy's whole life; the requests it made, in RBAC terms."""
    install_project_crd(kube)
    settings = {"peering": peering} if peering else {}
    async with azure_sandbox(LoopClock(EPOCH), settings=settings) as box:
        before = set(kube.api.audit)
        async with run_operator(kube=kube, memo=kopf.Memo({MEMO_KEY: box.runtime})):
            kube.apply(policy_manifest("keep", _spec("disk-0")))
            kube.apply(policy_manifest("drop", _spec("disk-1", deletionPolicy="Delete")))
            kube.apply(policy_manifest("bad", _spec("disk-2", schedule={"every": "5h"})))  # not a divisor of a day

            def ready(name: str) -> Any:
                return (condition(kube.get(*SNAPSHOT_POLICY, "default", name), "Ready") or {}).get("status") == "True"

            await eventually(lambda: ready("keep") and ready("drop"))
            await eventually(lambda: condition(kube.get(*SNAPSHOT_POLICY, "default", "bad"), "Stalled"))
            await asyncio.sleep(2 * 3600)  # the timers take two more slots
            kube.patch(
                *SNAPSHOT_POLICY, "default", "keep", {"metadata": {"annotations": {ANNOTATION_SNAPSHOT_NOW: "1"}}}
            )
            kube.patch(*SNAPSHOT_POLICY, "default", "drop", {"spec": {"suspend": True}})
            await asyncio.sleep(600)
            kube.patch(*SNAPSHOT_POLICY, "default", "drop", {"spec": {"suspend": False, "retention": {"keepLast": 1}}})
            await asyncio.sleep(600)
            for name in ("keep", "drop", "bad"):
                kube.delete(*SNAPSHOT_POLICY, "default", name)
            await eventually(lambda: not kube.list(*SNAPSHOT_POLICY, "default"))
        return set(kube.api.audit) - before


async def test_the_chart_grants_exactly_what_a_standalone_run_uses(kube: KubeEmulator) -> None:
    used = await _full_run(kube, peering=None)
    assert _granted(_chart()) == used


async def test_the_chart_grants_exactly_what_a_peering_run_uses() -> None:
    async with KubeEmulator.serve(clock=LoopClock(EPOCH), peering=True) as kube:
        kube.apply({"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "azsnap"}})
        used = await _full_run(kube, peering="azsnap")
    assert _granted(_chart("peering.enabled=true")) == used


async def _restore_run(kube: KubeEmulator) -> set[Rule]:
    """The restore handlers through restores' whole life (into a new disk, a volume and claim, clashes with a volume and
    a claim that are not theirs, deletion with Retain and Delete); the requests they made, in RBAC terms."""
    kube.install_crd(yaml.safe_load((ROOT / "crds" / "snapshotrestores.azsnap.io.yaml").read_text()))
    registry = kopf.OperatorRegistry()
    restore.register(registry)
    async with azure_sandbox(LoopClock(EPOCH)) as box:
        box.runtime.volumes = KubeVolumes(kopf.ConnectionInfo(server=kube.url))
        source = await box.runtime.cloud.get_disk(disk_id("disk-0"))
        assert source is not None
        made = await box.runtime.cloud.create_snapshot(
            SnapshotRequest(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "s0", DEMO_LOCATION, source.id, tags={})
        )
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": "theirs"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "csi": {"driver": "x", "volumeHandle": "y"},
                },
            }
        )
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": "theirs", "namespace": "default"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }
        )
        before = set(kube.api.audit)
        async with run_operator(
            registry,
            kube=kube,
            memo=kopf.Memo({MEMO_KEY: box.runtime}),
            configure=lambda settings: configure_kopf(settings, box.runtime.settings),
        ):
            target = {"resourceGroup": DEMO_RESOURCE_GROUP}
            specs = {
                "plain": {"source": {"snapshotId": made.id}, "target": {**target, "name": "r-plain"}},
                "gone": {
                    "source": {"snapshotId": made.id},
                    "target": {**target, "name": "r-gone"},
                    "deletionPolicy": "Delete",
                },
                "mounted": {
                    "source": {"snapshotId": made.id},
                    "target": {**target, "name": "r-mounted"},
                    "persistentVolume": {"name": "r-mounted"},
                    "persistentVolumeClaim": {"name": "r-mounted"},
                },
                "clash": {
                    "source": {"snapshotId": made.id},
                    "target": {**target, "name": "r-clash"},
                    "persistentVolume": {"name": "theirs"},
                },
                "clash-claim": {
                    "source": {"snapshotId": made.id},
                    "target": {**target, "name": "r-clash-claim"},
                    "persistentVolume": {"name": "r-clash-claim"},
                    "persistentVolumeClaim": {"name": "theirs"},
                },
            }
            for name, spec in specs.items():
                kube.apply(
                    {
                        "apiVersion": "azsnap.io/v1alpha1",
                        "kind": "SnapshotRestore",
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": spec,
                    }
                )

            def settled(name: str) -> Any:
                cond = condition(kube.get("azsnap.io", "v1alpha1", "snapshotrestores", "default", name), "Ready")
                return cond is not None and (cond["status"] == "True" or cond["reason"] == "VolumeFailed")

            await eventually(lambda: all(settled(name) for name in specs))
            for name in specs:
                kube.delete("azsnap.io", "v1alpha1", "snapshotrestores", "default", name)
            await eventually(lambda: not kube.list("azsnap.io", "v1alpha1", "snapshotrestores", "default"))
        await box.runtime.volumes.close()
        return set(kube.api.audit) - before


async def test_the_chart_grants_exactly_what_a_run_with_restores_uses(kube: KubeEmulator) -> None:
    used = await _full_run(kube, peering=None) | await _restore_run(kube)
    assert _granted(_chart("restore.enabled=true", "restore.volumes=true")) == used


async def _publish_run(kube: KubeEmulator) -> set[Rule]:
    """A claim policy publishing VolumeSnapshots through its life (published, one removed by retention, switched off,
    deleted); the requests the operator made, in RBAC terms."""
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH)) as box:
        box.runtime.snapshot_objects = KubeSnapshots(kopf.ConnectionInfo(server=kube.url))
        claim_of_disk(kube, "data-0", "disk-3")
        before = set(kube.api.audit)
        async with run_operator(kube=kube, memo=kopf.Memo({MEMO_KEY: box.runtime})):
            spec = {"volumeClaim": "data-0", "schedule": {"every": "1h"}, "retention": {"keepLast": 1},
                    "volumeSnapshots": {"enabled": True}}  # fmt: skip
            kube.apply(policy_manifest("published", spec))

            def published(count: int) -> bool:
                return len(kube.list("snapshot.storage.k8s.io", "v1", "volumesnapshots", "default")) == count

            await eventually(lambda: published(1))
            await asyncio.sleep(3600 + 60)  # the next slot: the older snapshot and its objects go
            await eventually(lambda: published(1) and kube.api.audit[("delete", "snapshot.storage.k8s.io",
                                                                      "volumesnapshots")] > 0)  # fmt: skip
            kube.patch(*SNAPSHOT_POLICY, "default", "published", {"spec": {"volumeSnapshots": {"enabled": False}}})
            await eventually(lambda: published(0))
            kube.delete(*SNAPSHOT_POLICY, "default", "published")
            await eventually(lambda: not kube.list(*SNAPSHOT_POLICY, "default"))
        await box.runtime.snapshot_objects.close()
        return set(kube.api.audit) - before


async def test_the_chart_grants_exactly_what_a_run_with_volume_snapshots_uses(kube: KubeEmulator) -> None:
    used = await _full_run(kube, peering=None) | await _publish_run(kube)
    assert _granted(_chart("volumeSnapshots.enabled=true")) == used
