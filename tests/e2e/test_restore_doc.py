"""docs/restore.md's manifests for mounting a restored disk: the Kubernetes API accepts them as written, and once the
binder has bound them the claim leads to the restored disk (the rule azsnap itself reads a claim's disk by)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from azsnap.domain.models import parse_disk_id
from azsnap.domain.volumes import AZURE_DISK_CSI_DRIVER, resolve_claim_disk
from azsnap.emulator.kubernetes import KubeEmulator

pytestmark = pytest.mark.e2e

DOC: Final = Path(__file__).resolve().parents[2] / "docs" / "restore.md"


def manifests() -> list[dict[str, Any]]:
    """Every manifest of the doc's YAML blocks that is a Kubernetes object."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    found = [doc for block in blocks for doc in yaml.safe_load_all(block) if doc and "apiVersion" in doc]
    assert found, "docs/restore.md shows no manifest"
    return found


async def test_the_restored_volume_and_claim_are_accepted_and_lead_to_the_new_disk(kube: KubeEmulator) -> None:
    by_kind = {m["kind"]: m for m in manifests() if m["apiVersion"] == "v1"}
    assert set(by_kind) == {"PersistentVolume", "PersistentVolumeClaim"}
    pv, pvc = by_kind["PersistentVolume"], by_kind["PersistentVolumeClaim"]
    namespace, claim = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    kube.apply(pv)
    kube.apply(pvc)
    # what the binder does for a claim that names its volume
    volume = pv["metadata"]["name"]
    claim_ref = {"kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim}
    kube.patch("", "v1", "persistentvolumes", None, volume, {"spec": {"claimRef": claim_ref}})
    kube.patch("", "v1", "persistentvolumes", None, volume, {"status": {"phase": "Bound"}}, subresource="status")
    capacity = {"capacity": pv["spec"]["capacity"], "accessModes": pv["spec"]["accessModes"]}
    kube.patch(
        "",
        "v1",
        "persistentvolumeclaims",
        namespace,
        claim,
        {"status": {"phase": "Bound", **capacity}},
        subresource="status",
    )
    stored_pvc = kube.get("", "v1", "persistentvolumeclaims", namespace, claim)
    stored_pv = kube.get("", "v1", "persistentvolumes", None, volume)
    found = resolve_claim_disk(f"{namespace}/{claim}", stored_pvc, stored_pv)
    assert found.problem is None, found.message
    assert found.disk_id == pv["spec"]["csi"]["volumeHandle"]
    assert pv["spec"]["csi"]["driver"] == AZURE_DISK_CSI_DRIVER
    assert parse_disk_id(found.disk_id).name == "pg-data-0-restored"  # the disk the doc's az disk create makes
    assert "-n pg-data-0-restored --source" in DOC.read_text()
