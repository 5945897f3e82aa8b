"""The in-process stand-in for the external-snapshotter (common controller and the Azure Disk CSI sidecar), with and
without azsnap: it binds pre-provisioned pairs, sets readyToUse, creationTime and restoreSize from the Azure
emulator, writes the errors the real one writes, and lets deleted objects go; azsnap counts what is ready and warns
about what stays not ready."""

from __future__ import annotations

import asyncio
from typing import Any, Final

import pytest
from tests.support.kube import EPOCH, eventually, install_project_crd
from tests.support.volume_snapshots import (
    CLASS,
    azure_ids,
    claim_of_disk,
    contents,
    handles,
    install_snapshot_crds,
    operator,
    pg_policy,
    published_status,
    ready,
    volume_snapshots,
)

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.domain.volume_snapshots import CONTENTS, GROUP, SNAPSHOTS, VERSION
from azsnap.emulator import DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.emulator.kubernetes.csi_snapshotter import BEING_DELETED, CONTENT_FINALIZER
from azsnap.emulator.kubernetes.snapshot_controller import AS_SOURCE, running
from azsnap.offline.sandbox import azure_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

MISSING: Final = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{DEMO_RESOURCE_GROUP}/providers/Microsoft.Compute/snapshots/gone"


def _events(kube: KubeEmulator, reason: str) -> list[dict[str, Any]]:
    return [e for e in kube.events("default") if e["reason"] == reason]


async def test_a_published_pair_is_bound_and_ready_as_the_csi_driver_reports_it(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    kube.apply(CLASS)
    async with (
        azure_sandbox(LoopClock(EPOCH), disks=1) as box,
        running(kube, box.emulator, box.clock),
        operator(kube, box),
    ):
        claim_of_disk(kube, "data-pg-0", "disk-0")
        kube.apply(pg_policy(keep_last=2))
        (name,) = await eventually(lambda: [n for n, o in volume_snapshots(kube).items()
                                            if (o.get("status") or {}).get("readyToUse")] or None)  # fmt: skip
        vs, content = volume_snapshots(kube)[name], contents(kube)[name]
        (azure,) = [s for s in box.emulator.snapshots() if s["id"] == content["spec"]["source"]["snapshotHandle"]]
        created = azure["properties"]["timeCreated"]
        assert vs["status"] == {
            "boundVolumeSnapshotContentName": name,
            "creationTime": created[:19].replace("+00:00", "") + "Z",
            "readyToUse": True,
            "restoreSize": f"{azure['properties']['diskSizeGB']}Gi",
        }
        assert content["status"]["readyToUse"] is True and content["status"]["snapshotHandle"] == azure["id"]
        assert content["status"]["restoreSize"] == azure["properties"]["diskSizeGB"] * 1024**3
        assert content["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]
        assert vs["metadata"]["finalizers"] == [AS_SOURCE]
        assert content["metadata"]["finalizers"] == [CONTENT_FINALIZER]
        assert [e["involvedObject"]["name"] for e in _events(kube, "SnapshotReady")] == [name]

        await asyncio.sleep(3600 + 60)  # the next reconcile reads the first one's status
        status = published_status(kube)
        assert (status["published"], status["ready"], status["notReady"]) == (2, 1, 0)

        # Two slots more: keepLast 2 retires two snapshots; their objects go for good, finalizers and all.
        await asyncio.sleep(2 * 3600)
        await eventually(lambda: handles(kube) == azure_ids(box, "disk-0") and len(volume_snapshots(kube)) == 2)
        for obj in (*volume_snapshots(kube).values(), *contents(kube).values()):
            assert "deletionTimestamp" not in obj["metadata"]
        assert ready(kube, "pg")


async def test_a_missing_class_leaves_them_not_ready_and_azsnap_warns_until_it_is_there(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)  # and no VolumeSnapshotClass csi-azuredisk-vsc, which the policy names
    async with (
        azure_sandbox(LoopClock(EPOCH), disks=1) as box,
        running(kube, box.emulator, box.clock),
        operator(kube, box),
    ):
        claim_of_disk(kube, "data-pg-0", "disk-0")
        kube.apply(pg_policy(keep_last=5))
        (vs,) = await eventually(lambda: [o for o in volume_snapshots(kube).values()
                                          if (o.get("status") or {}).get("error")] or None)  # fmt: skip
        name = vs["metadata"]["name"]
        message = (
            f"Failed to check and update snapshot content: failed to get snapshot class csi-azuredisk-vsc for "
            f'snapshot content {name}: volumesnapshotclass.snapshot.storage.k8s.io "csi-azuredisk-vsc" not found'
        )
        assert vs["status"]["readyToUse"] is False and vs["status"]["error"]["message"] == message
        await asyncio.sleep(60)  # the sidecar retries (1 s, 2 s, 4 s, ...): the same error, no second event
        assert len(_events(kube, "SnapshotContentCheckandUpdateFailed")) == 1

        await asyncio.sleep(3600)  # the next reconcile: the first one is over 5 minutes old and still failing
        status = published_status(kube)
        assert (status["published"], status["ready"], status["notReady"]) == (2, 0, 1)
        (warning,) = _events(kube, "VolumeSnapshotsNotReady")
        assert name in warning["message"] and "failed to get snapshot class" in warning["message"]
        assert ready(kube, "pg")  # the backups are good; their Kubernetes faces are not yet

        kube.apply(CLASS)  # the sidecar's next try (at most 5 minutes away) finds it
        await eventually(lambda: all((o.get("status") or {}).get("readyToUse")
                                     for o in volume_snapshots(kube).values()) or None)  # fmt: skip
        await asyncio.sleep(3600)
        status = published_status(kube)
        assert (status["published"], status["ready"], status["notReady"]) == (3, 2, 0)
        assert "error" not in volume_snapshots(kube)[name]["status"]
        assert len(_events(kube, "VolumeSnapshotsNotReady")) == 1


async def test_a_handle_azure_does_not_have_stays_not_ready_and_deletion_still_lets_go(kube: KubeEmulator) -> None:
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=0) as box, running(kube, box.emulator, box.clock):
        kube.apply({"apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshotContent", "metadata": {"name": "x"},
                    "spec": {"deletionPolicy": "Retain", "driver": "disk.csi.azure.com",
                             "source": {"snapshotHandle": MISSING},
                             "volumeSnapshotRef": {"name": "x", "namespace": "default"}}})  # fmt: skip
        kube.apply({"apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshot",
                    "metadata": {"name": "x", "namespace": "default"},
                    "spec": {"source": {"volumeSnapshotContentName": "x"}}})  # fmt: skip
        vs = await eventually(lambda: (volume_snapshots(kube)["x"].get("status") or {}).get("error") and
                              volume_snapshots(kube)["x"])  # fmt: skip
        message = (
            'Failed to check and update snapshot content: failed to list snapshot for content x: "can not find '
            f'snapshot for snapshotID {MISSING}"'
        )
        assert vs["status"]["error"]["message"] == message and vs["status"]["readyToUse"] is False
        assert vs["status"]["boundVolumeSnapshotContentName"] == "x" and "creationTime" not in vs["status"]
        content = contents(kube)["x"]
        assert content["status"]["error"]["message"] == message and content["status"]["readyToUse"] is False
        assert content["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]
        assert not _events(kube, "SnapshotReady")

        kube.delete(GROUP, VERSION, SNAPSHOTS, "default", "x")
        await eventually(lambda: "x" not in volume_snapshots(kube))
        assert contents(kube)["x"]["metadata"]["annotations"][BEING_DELETED] == "yes"
        kube.delete(GROUP, VERSION, CONTENTS, None, "x")
        await eventually(lambda: not contents(kube))
