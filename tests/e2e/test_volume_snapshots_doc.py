"""docs/restore.md's VolumeSnapshot path as written: the policy manifest is accepted, the `kubectl get volumesnapshot`
command lists what azsnap publishes (the objects the operator's own functions make), oldest first, and the claim
with a `dataSource` is accepted as shown, naming the published snapshot of the doc's example.

kubectl is another process, so this runs in real time (a few seconds).
"""

from __future__ import annotations

import asyncio
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from tests.support.kube import install_project_crd
from tests.support.volume_snapshots import install_snapshot_crds

from azsnap.domain.models import PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Snapshot
from azsnap.domain.volume_snapshots import Wanted, content_manifest, object_name, snapshot_manifest
from azsnap.emulator.kubernetes import KubeEmulator

KUBECTL: Final = Path("/usr/bin/kubectl")
ROOT: Final = Path(__file__).resolve().parents[2]
SUB: Final = "00000000-0000-0000-0000-000000000000"

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed")]


def _section() -> str:
    text = (ROOT / "docs" / "restore.md").read_text()
    return text[text.index("## 2. A `VolumeSnapshot`") : text.index("## 3. By hand")]


def _manifests() -> dict[str, dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", _section(), flags=re.S)
    return {doc["kind"]: doc for block in blocks for doc in yaml.safe_load_all(block) if doc}


def _commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", _section(), flags=re.S)
    return [line.strip() for block in blocks for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def _snapshot(name: str, taken: datetime) -> Snapshot:
    arm = f"/subscriptions/{SUB}/resourceGroups/rg-team-a/providers/Microsoft.Compute/snapshots/{name}"
    return Snapshot(arm, name, "rg-team-a", "westeurope", None, None, taken, "Succeeded")


async def test_the_documented_policy_listing_and_claim_work_as_written(kube: KubeEmulator, tmp_path: Path) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}})
    manifests = _manifests()
    assert set(manifests) == {"SnapshotPolicy", "PersistentVolumeClaim"}
    policy = kube.apply(manifests["SnapshotPolicy"])
    spec = SnapshotPolicySpec.model_validate(policy["spec"])
    assert spec.volume_snapshots is not None and spec.volume_snapshots.enabled
    meta = policy["metadata"]
    ref = PolicyRef(meta["namespace"], meta["name"], meta["uid"])

    # What azsnap publishes for three snapshots (the example one in the middle), made in no particular order.
    base = datetime(2026, 3, 29, 23, 2, tzinfo=UTC)
    snapshots = [_snapshot(f"pvc-postgres-0-83eda7bb-20260329T{h:02d}00Z", base + timedelta(hours=h - 23))
                 for h in (23, 19, 15)]  # fmt: skip
    names = []
    for s in snapshots:
        assert s.time_created is not None
        item = Wanted(object_name(s), s.id, "disk", "data-postgres-0", s.time_created)
        kube.apply(content_manifest(ref, spec.volume_snapshots, item))
        kube.apply(snapshot_manifest(ref, spec.volume_snapshots, item))
        names.append(item.name)
    claim = manifests["PersistentVolumeClaim"]
    assert claim["spec"]["dataSource"]["name"] == names[0]  # the doc's example name is what azsnap gives it

    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    (tmp_path / "pg-data-0-from-snapshot.yaml").write_text(yaml.safe_dump(claim))

    async def kubectl(command: str) -> str:
        args = shlex.split(command)[1:]
        process = await asyncio.create_subprocess_exec(
            str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=tmp_path,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 0, f"{command}: {err.decode()}"
        return out.decode()

    listing, applied = [await kubectl(c) for c in _commands()]
    rows = [line.split()[0] for line in listing.splitlines()[1:]]
    assert rows == list(reversed(names))  # oldest first
    assert "persistentvolumeclaim/pg-data-0-from-snapshot created" in applied
    stored = kube.get("", "v1", "persistentvolumeclaims", "team-a", "pg-data-0-from-snapshot") or {}
    assert stored["spec"]["dataSource"] == claim["spec"]["dataSource"]


@pytest.mark.parametrize(
    ("plural", "spec", "refusal"),
    [
        ("volumesnapshots", {}, "spec.source: Required value"),
        ("volumesnapshots", {"source": {"volumeSnapshotContentName": "c", "persistentVolumeClaimName": "p"}},
         "exactly one of volumeSnapshotContentName and persistentVolumeClaimName must be set"),
        ("volumesnapshots", {"source": {"volumeSnapshotContentName": "c"}, "volumeSnapshotClassName": ""},
         "volumeSnapshotClassName must not be the empty string when set"),
        ("volumesnapshotcontents", {"deletionPolicy": "Retain", "driver": "d", "source": {"snapshotHandle": "h"}},
         "spec.volumeSnapshotRef: Required value"),
        ("volumesnapshotcontents", {"deletionPolicy": "Keep", "driver": "d", "source": {"snapshotHandle": "h"},
                                    "volumeSnapshotRef": {"name": "a", "namespace": "n"}},
         'spec.deletionPolicy: Unsupported value: "Keep"'),
        ("volumesnapshotcontents", {"deletionPolicy": "Retain", "driver": "d", "source": {},
                                    "volumeSnapshotRef": {"name": "a", "namespace": "n"}},
         "exactly one of volumeHandle and snapshotHandle must be set"),
        ("volumesnapshotcontents", {"deletionPolicy": "Retain", "driver": "d", "source": {"snapshotHandle": "h"},
                                    "volumeSnapshotRef": {"name": "a"}},
         "spec.volumeSnapshotRef.namespace: Required value"),
    ],
)  # fmt: skip
async def test_the_test_snapshot_crds_refuse_what_the_real_ones_refuse(
    kube: KubeEmulator, plural: str, spec: dict[str, Any], refusal: str
) -> None:
    install_snapshot_crds(kube)
    kind = "VolumeSnapshot" if plural == "volumesnapshots" else "VolumeSnapshotContent"
    meta = {"name": "x", "namespace": "default"} if plural == "volumesnapshots" else {"name": "x"}
    with pytest.raises(Exception, match=re.escape(refusal)):
        kube.apply({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": kind, "metadata": meta, "spec": spec})


async def test_a_published_pair_keeps_its_source_as_the_real_crds_keep_it(kube: KubeEmulator) -> None:
    install_snapshot_crds(kube)
    spec = {"deletionPolicy": "Retain", "driver": "disk.csi.azure.com", "source": {"snapshotHandle": "h"},
            "volumeSnapshotRef": {"name": "x", "namespace": "default"}}  # fmt: skip
    kube.apply({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshotContent", "metadata": {"name": "x"},
                "spec": spec})  # fmt: skip
    with pytest.raises(Exception, match=r"Spec\.Source\.SnapshotHandle is immutable"):
        kube.patch("snapshot.storage.k8s.io", "v1", "volumesnapshotcontents", None, "x",
                   {"spec": {"source": {"snapshotHandle": "other"}}})  # fmt: skip
