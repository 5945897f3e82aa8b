"""VolumeSnapshot publishing end to end: kopf against the in-process Kubernetes API (serving our snapshot CRDs), the
real Azure SDK against the emulator, in emulated time.

A claim policy that asks publishes a VolumeSnapshotContent and a VolumeSnapshot for each usable snapshot, retention
takes them away with the snapshot, a VolumeSnapshot azsnap did not make is never touched (nor counted, when it takes
one of azsnap's names), a disk policy publishes
nothing, a restarted operator makes no second object, and a cluster without the snapshot CRDs gets a status message
and one event while the backups go on, then the objects once the CRDs are there.
"""

from __future__ import annotations

import asyncio
from typing import Final

import kmock
import pytest
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, eventually, install_project_crd, policy_manifest
from tests.support.volume_snapshots import (
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
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.offline.sandbox import azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]


async def test_each_snapshot_is_published_and_retention_takes_it_away(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=3) as box, operator(kube, box):
        theirs = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshot",
                  "metadata": {"name": "theirs", "namespace": "default"},
                  "spec": {"source": {"persistentVolumeClaimName": "data-pg-0"}}}  # fmt: skip
        kube.apply(theirs)
        for i in range(2):
            claim_of_disk(kube, f"data-pg-{i}", f"disk-{i}")
        kube.apply(pg_policy())
        disk_spec = {"disk": {"id": disk_id("disk-2")}, "schedule": {"every": "1h"}, "retention": {"keepLast": 2}}
        kube.apply(policy_manifest("plain", disk_spec))
        await eventually(lambda: len(volume_snapshots(kube)) == 3 and ready(kube, "plain"))

        in_azure = azure_ids(box, "disk-0") | azure_ids(box, "disk-1")
        assert len(in_azure) == 2 and handles(kube) == in_azure
        for name, vs in volume_snapshots(kube).items():
            if name == "theirs":
                continue
            content = contents(kube)[name]
            assert vs["spec"] == {"source": {"volumeSnapshotContentName": name},
                                  "volumeSnapshotClassName": "csi-azuredisk-vsc"}  # fmt: skip
            assert content["spec"]["volumeSnapshotRef"] == {"name": name, "namespace": "default"}
            assert (content["spec"]["driver"], content["spec"]["deletionPolicy"]) == ("disk.csi.azure.com", "Retain")
            assert vs["metadata"]["labels"]["azsnap.io/policy"] == "pg"
            assert vs["metadata"]["labels"]["azsnap.io/claim"] in ("data-pg-0", "data-pg-1")
        assert azure_ids(box, "disk-2")  # the disk policy took its snapshot, and published nothing
        assert published_status(kube)["state"] == "Published" and published_status(kube)["published"] == 2
        assert "volumeSnapshots" not in kube.get(*SNAPSHOT_POLICY, "default", "plain")["status"]  # type: ignore[index]
        assert "VolumeSnapshotsPublished" in [e["reason"] for e in kube.events("default")]

        # Three more slots: keepLast 2 leaves two snapshots per disk, and their objects only.
        await asyncio.sleep(3 * 3600 + 60)
        in_azure = azure_ids(box, "disk-0") | azure_ids(box, "disk-1")
        assert len(in_azure) == 4
        await eventually(lambda: handles(kube) == in_azure)
        assert set(volume_snapshots(kube)) == set(contents(kube)) | {"theirs"}
        assert volume_snapshots(kube)["theirs"]["spec"] == theirs["spec"]  # never touched
        assert published_status(kube)["published"] == 4
        assert "VolumeSnapshotsRemoved" in [e["reason"] for e in kube.events("default")]
        assert ready(kube, "pg")

        # Publishing switched off in the spec: azsnap's objects go, theirs stays.
        kube.patch(*SNAPSHOT_POLICY, "default", "pg", {"spec": {"volumeSnapshots": {"enabled": False}}})
        await eventually(lambda: set(volume_snapshots(kube)) == {"theirs"} and not contents(kube))
        await eventually(lambda: not published_status(kube))


async def test_the_api_refuses_publishing_for_a_disk_policy(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    spec = {"disk": {"id": disk_id("disk-0")}, "schedule": {"every": "1h"}, "retention": {"keepLast": 2},
            "volumeSnapshots": {"enabled": True}}  # fmt: skip
    with pytest.raises(Exception, match="volumeSnapshots needs volumeClaim or volumeClaimSelector") as refused:
        kube.apply(policy_manifest("disk-and-publish", spec))
    assert "422" in str(refused.value)


async def test_a_restarted_operator_makes_no_second_object(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=2) as box:
        async with operator(kube, box):
            claim_of_disk(kube, "data-pg-0", "disk-0")
            kube.apply(pg_policy(keep_last=5))
            await eventually(lambda: len(volume_snapshots(kube)) == 1)
            await asyncio.sleep(3600 + 60)
            await eventually(lambda: len(volume_snapshots(kube)) == 2)
            before = {n: o["metadata"]["uid"] for n, o in volume_snapshots(kube).items()}
        box.runtime.wakeups.clear()
        box.runtime.written.clear()
        creates = kube.api.audit[("create", GROUP, SNAPSHOTS)]
        async with operator(kube, box):  # a new operator: it resumes the policy and publishes again
            await asyncio.sleep(600)
            assert {n: o["metadata"]["uid"] for n, o in volume_snapshots(kube).items()} == before
            assert kube.api.audit[("create", GROUP, SNAPSHOTS)] == creates
            await asyncio.sleep(3600)
            await eventually(lambda: len(volume_snapshots(kube)) == 3)
        assert handles(kube) == azure_ids(box, "disk-0")
        assert published_status(kube)["state"] == "Published"


async def test_without_the_snapshot_crds_the_backups_go_on_and_one_event_says_why(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=2) as box, operator(kube, box):
        claim_of_disk(kube, "data-pg-0", "disk-0")
        kube.apply(pg_policy(keep_last=5))
        await eventually(lambda: published_status(kube).get("reason") == "SnapshotCRDsMissing")
        status = published_status(kube)
        assert status["state"] == "Unavailable"
        assert "snapshot.storage.k8s.io/v1" in status["message"] and "backups go on" in status["message"]
        await asyncio.sleep(3 * 3600)
        assert len(azure_ids(box, "disk-0")) == 4 and ready(kube, "pg")  # not a failure of the backups
        warnings = [e for e in kube.events("default") if e["reason"] == "VolumeSnapshotsSnapshotCRDsMissing"]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"

        install_snapshot_crds(kube)  # the external-snapshotter installed: the next look publishes every snapshot
        await asyncio.sleep(3600 + 60)
        await eventually(lambda: handles(kube) == azure_ids(box, "disk-0") and len(handles(kube)) == 5)
        assert published_status(kube)["state"] == "Published"


async def test_a_policy_that_asks_while_the_operator_does_not_publish_is_told_so(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=1) as box, operator(kube, box, publishing=False):
        claim_of_disk(kube, "data-pg-0", "disk-0")
        kube.apply(pg_policy())
        await eventually(lambda: published_status(kube).get("reason") == "NotEnabled")
        assert "volumeSnapshots.enabled=true" in published_status(kube)["message"]
        assert ready(kube, "pg") and azure_ids(box, "disk-0")
        assert not volume_snapshots(kube) and not contents(kube)
        assert not any(group == GROUP for _verb, group, _resource in kube.api.audit)  # not one request


async def test_deleting_a_policy_takes_its_objects_away_only_with_its_snapshots(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=2) as box, operator(kube, box):
        claim_of_disk(kube, "data-pg-0", "disk-0")
        claim_of_disk(kube, "data-web-0", "disk-1")
        common = {"schedule": {"every": "1h"}, "retention": {"keepLast": 2}, "volumeSnapshots": {"enabled": True}}
        kube.apply(policy_manifest("pg", {"volumeClaim": "data-pg-0", "deletionPolicy": "Delete", **common}))
        kube.apply(policy_manifest("web", {"volumeClaim": "data-web-0", **common}))

        def of_policy(name: str) -> list[str]:
            return [n for n, o in volume_snapshots(kube).items() if o["metadata"]["labels"]["azsnap.io/policy"] == name]

        await eventually(lambda: len(of_policy("pg")) == 1 and len(of_policy("web")) == 1)
        kept = of_policy("web")
        for name in ("pg", "web"):
            kube.delete(*SNAPSHOT_POLICY, "default", name)
        await eventually(lambda: not kube.list(*SNAPSHOT_POLICY, "default"))
        assert not azure_ids(box, "disk-0") and of_policy("pg") == []  # Delete: the snapshots and their objects
        assert len(azure_ids(box, "disk-1")) == 1 and of_policy("web") == kept  # Retain: both stay
        assert set(contents(kube)) == set(kept)


FORBIDDEN: Final = {
    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
    "message": 'volumesnapshotcontents.snapshot.storage.k8s.io is forbidden: User "system:serviceaccount:azsnap-system:'
               'azsnap" cannot create resource "volumesnapshotcontents" in API group "snapshot.storage.k8s.io" at the '
               "cluster scope",
    "details": {"group": "snapshot.storage.k8s.io", "kind": "volumesnapshotcontents"},
}  # fmt: skip


async def test_an_api_refusal_is_told_once_and_the_backups_go_on(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    kube.api["post", kmock.path(f"/apis/{GROUP}/{VERSION}/{CONTENTS}")] << 403 << FORBIDDEN
    async with azure_sandbox(LoopClock(EPOCH), disks=1) as box, operator(kube, box):
        claim_of_disk(kube, "data-pg-0", "disk-0")
        kube.apply(pg_policy(keep_last=5))
        await eventually(lambda: published_status(kube).get("state") == "Failed")
        status = published_status(kube)
        assert status["reason"] == "KubernetesApiRefused"
        assert "403" in status["message"] and "cannot create resource" in status["message"]
        await asyncio.sleep(2 * 3600)
        assert len(azure_ids(box, "disk-0")) == 3 and ready(kube, "pg")
        warnings = [e for e in kube.events("default") if e["reason"] == "VolumeSnapshotsKubernetesApiRefused"]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
        assert not volume_snapshots(kube)  # the VolumeSnapshot never comes before its content


async def test_a_name_taken_by_someone_else_publishes_nothing_there_and_says_so(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=1) as box, operator(kube, box):
        claim_of_disk(kube, "data-pg-0", "disk-0")
        kube.apply(pg_policy(keep_last=3))
        await eventually(lambda: published_status(kube).get("published") == 1)
        (name,) = volume_snapshots(kube)
        # Someone replaces azsnap's VolumeSnapshot with one of their own under the same name.
        kube.delete(GROUP, VERSION, SNAPSHOTS, "default", name)
        theirs = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshot",
                  "metadata": {"name": name, "namespace": "default"},
                  "spec": {"source": {"persistentVolumeClaimName": "data-pg-0"}}}  # fmt: skip
        kube.apply(theirs)

        await asyncio.sleep(3600 + 60)  # the next slot: a second snapshot, and another try at the first's name
        await eventually(lambda: len(contents(kube)) == 2 and len(volume_snapshots(kube)) == 2)
        assert published_status(kube)["published"] == 1  # only the second snapshot is published by azsnap
        assert volume_snapshots(kube)[name]["spec"] == theirs["spec"]  # theirs, never touched
        taken = [e for e in kube.events("default") if e["reason"] == "VolumeSnapshotNameTaken"]
        assert taken and name in taken[-1]["message"] and taken[-1]["type"] == "Warning"
        assert ready(kube, "pg")  # the backups go on
