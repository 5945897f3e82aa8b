"""PersistentVolumeClaims and PersistentVolumes in the in-process Kubernetes API, over HTTP and with kubectl.

They are served as a real kube-apiserver serves them (names, namespaces, defaults, validation, immutable fields,
resourceVersion conflicts, label selectors, watches), and the documented way to read a claim's disk ARM ID
(docs/install.md) prints it through kubectl.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest

from azsnap.emulator.kubernetes import KubeEmulator

pytestmark = pytest.mark.e2e

ROOT: Final = Path(__file__).resolve().parents[2]
KUBECTL: Final = Path("/usr/bin/kubectl")
CLAIMS: Final = "/api/v1/namespaces/shop/persistentvolumeclaims"
VOLUMES: Final = "/api/v1/persistentvolumes"
DISK: Final = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/mc_rg-demo_aks-demo_westeurope"
    "/providers/Microsoft.Compute/disks/pvc-0f4c6a3e-9d1b-4e55-8a2e-2c8d7e5f4a21"
)


def _claim(name: str = "data", labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}},
                 "storageClassName": "managed-csi", **spec},
    }  # fmt: skip


def _volume(name: str, source: dict[str, Any], claim: str = "data") -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "4Gi"}, "storageClassName": "managed-csi",
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "shop", "name": claim}, **source},
    }  # fmt: skip


@pytest.fixture
async def http(kube: KubeEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(kube.url) as session:
        created = await session.post("/api/v1/namespaces", json={"metadata": {"name": "shop"}})
        assert created.status == 201
        yield session


async def _call(http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    async with http.request(method, path, **kwargs) as response:
        return response.status, await response.json()


async def _bind(http: aiohttp.ClientSession, claim: str, volume: dict[str, Any]) -> None:
    """What the PersistentVolume controller does: the volume created and bound, the claim's volumeName and phase."""
    assert (await _call(http, "POST", VOLUMES, json=volume))[0] == 201
    merge = {"headers": {"Content-Type": "application/merge-patch+json"}}
    name = volume["metadata"]["name"]
    status, _ = await _call(http, "PATCH", f"{CLAIMS}/{claim}", json={"spec": {"volumeName": name}}, **merge)
    assert status == 200
    capacity = {"capacity": volume["spec"]["capacity"]}
    for path, extra in ((f"{CLAIMS}/{claim}/status", capacity), (f"{VOLUMES}/{name}/status", {})):
        assert (await _call(http, "PATCH", path, json={"status": {"phase": "Bound", **extra}}, **merge))[0] == 200


async def test_a_claim_is_created_pending_with_defaults_and_refused_as_a_real_server_refuses(
    http: aiohttp.ClientSession,
) -> None:
    status, created = await _call(http, "POST", CLAIMS, json=_claim())
    assert status == 201
    assert created["status"] == {"phase": "Pending"} and created["spec"]["volumeMode"] == "Filesystem"
    assert created["metadata"]["namespace"] == "shop" and created["metadata"]["resourceVersion"]

    assert (await _call(http, "POST", CLAIMS, json=_claim()))[0] == 409
    missing_ns = await _call(http, "POST", "/api/v1/namespaces/nowhere/persistentvolumeclaims", json=_claim())
    assert missing_ns[0] == 404 and missing_ns[1]["message"] == 'namespaces "nowhere" not found'
    assert (await _call(http, "POST", CLAIMS, json=_claim("Data")))[0] == 422

    bare = {"metadata": {"name": "bare"}, "spec": {"accessModes": ["ReadWriteSometimes"]}}
    status, refused = await _call(http, "POST", CLAIMS, json=bare)
    assert status == 422 and refused["reason"] == "Invalid"
    assert {(c["field"], c["reason"]) for c in refused["details"]["causes"]} == {
        ("spec.accessModes", "FieldValueNotSupported"), ("spec.resources[storage]", "FieldValueRequired"),
    }  # fmt: skip
    assert refused["message"].startswith('PersistentVolumeClaim "bare" is invalid: [')


async def test_a_claim_from_a_volume_snapshot_gets_both_data_source_fields_as_a_real_server_fills_them(
    http: aiohttp.ClientSession,
) -> None:
    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "pg-0-20260329t2300z"}
    status, created = await _call(http, "POST", CLAIMS, json=_claim("restored", dataSource=source))
    assert status == 201 and created["spec"]["dataSource"] == created["spec"]["dataSourceRef"] == source
    status, created = await _call(http, "POST", CLAIMS, json=_claim("by-ref", dataSourceRef=source))
    assert status == 201 and created["spec"]["dataSource"] == source

    no_group = {"kind": "VolumeSnapshot", "name": "x"}
    status, refused = await _call(http, "POST", CLAIMS, json=_claim("no-group", dataSource=no_group))
    assert status == 422
    assert {c["field"] for c in refused["details"]["causes"]} == {"spec.dataSource", "spec.dataSourceRef"}
    assert "must be 'PersistentVolumeClaim' when referencing the default apiGroup" in refused["message"]
    other = {**source, "name": "other"}
    status, refused = await _call(http, "POST", CLAIMS, json=_claim("two", dataSource=source, dataSourceRef=other))
    assert status == 422 and refused["message"].endswith("spec: Invalid value: {}: must match dataSourceRef")


async def test_a_volume_is_cluster_scoped_and_needs_exactly_one_complete_source(http: aiohttp.ClientSession) -> None:
    csi = {"csi": {"driver": "disk.csi.azure.com", "volumeHandle": DISK}}
    status, created = await _call(http, "POST", VOLUMES, json=_volume("pv-data", csi))
    assert status == 201 and "namespace" not in created["metadata"]
    assert created["status"] == {"phase": "Pending"}
    assert created["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert (await _call(http, "GET", f"{VOLUMES}/pv-data"))[1]["spec"]["csi"]["volumeHandle"] == DISK

    no_handle = _volume("pv-a", {"csi": {"driver": "disk.csi.azure.com"}})
    both = _volume("pv-b", {**csi, "azureDisk": {"diskName": "d", "diskURI": DISK}})
    none = _volume("pv-c", {})
    for volume, field in ((no_handle, "spec.csi.volumeHandle"), (both, "spec.azureDisk"), (none, "spec")):
        status, refused = await _call(http, "POST", VOLUMES, json=volume)
        assert status == 422 and [c["field"] for c in refused["details"]["causes"]] == [field]

    merge = {"headers": {"Content-Type": "application/merge-patch+json"}}
    moved = {"spec": {"csi": {"volumeHandle": DISK.replace("pvc-0f4c", "pvc-1f4c")}}}
    status, refused = await _call(http, "PATCH", f"{VOLUMES}/pv-data", json=moved, **merge)
    assert status == 422 and "spec.persistentvolumesource is immutable" in refused["message"]


async def test_a_claim_binds_once_and_its_spec_is_otherwise_immutable(http: aiohttp.ClientSession) -> None:
    rv = (await _call(http, "POST", CLAIMS, json=_claim()))[1]["metadata"]["resourceVersion"]
    merge = {"headers": {"Content-Type": "application/merge-patch+json"}}
    pending_grow = {"spec": {"resources": {"requests": {"storage": "8Gi"}}}}
    status, refused = await _call(http, "PATCH", f"{CLAIMS}/data", json=pending_grow, **merge)
    assert status == 422 and refused["details"]["causes"][0]["field"] == "spec"  # only a bound claim may grow
    await _bind(http, "data", _volume("pv-data", {"csi": {"driver": "disk.csi.azure.com", "volumeHandle": DISK}}))
    bound = (await _call(http, "GET", f"{CLAIMS}/data"))[1]
    assert (bound["spec"]["volumeName"], bound["status"]["phase"]) == ("pv-data", "Bound")

    for change in ({"volumeName": "pv-other"}, {"storageClassName": "premium"}):
        status, refused = await _call(http, "PATCH", f"{CLAIMS}/data", json={"spec": change}, **merge)
        assert status == 422 and refused["details"]["causes"][0]["field"] == "spec"
    grown = {"spec": {"resources": {"requests": {"storage": "8Gi"}}}}
    assert (await _call(http, "PATCH", f"{CLAIMS}/data", json=grown, **merge))[0] == 200
    # a failed expansion may be taken back down to the claim's capacity (4Gi), not below it
    back = {"spec": {"resources": {"requests": {"storage": "4Gi"}}}}
    assert (await _call(http, "PATCH", f"{CLAIMS}/data", json=back, **merge))[0] == 200
    shrunk = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    status, refused = await _call(http, "PATCH", f"{CLAIMS}/data", json=shrunk, **merge)
    assert status == 422 and refused["details"]["causes"][0]["field"] == "spec.resources.requests.storage"
    stale = {"metadata": {"resourceVersion": rv}, "spec": {"resources": {"requests": {"storage": "16Gi"}}}}
    assert (await _call(http, "PATCH", f"{CLAIMS}/data", json=stale, **merge))[0] == 409

    assert (await _call(http, "DELETE", f"{CLAIMS}/data"))[1]["status"] == "Success"
    assert (await _call(http, "GET", f"{CLAIMS}/data"))[0] == 404


async def test_claims_are_listed_and_watched_by_label_selector(http: aiohttp.ClientSession) -> None:
    assert (await _call(http, "POST", "/api/v1/namespaces", json={"metadata": {"name": "other"}}))[0] == 201
    since = (await _call(http, "GET", CLAIMS))[1]["metadata"]["resourceVersion"]
    for name, labels in (("db", {"app": "shop", "tier": "db"}), ("web", {"app": "shop"}), ("logs", {})):
        assert (await _call(http, "POST", CLAIMS, json=_claim(name, labels)))[0] == 201
    elsewhere = _claim("db", {"app": "shop", "tier": "db"})
    assert (await _call(http, "POST", "/api/v1/namespaces/other/persistentvolumeclaims", json=elsewhere))[0] == 201

    async def names(path: str, selector: str) -> list[str]:
        listing = (await _call(http, "GET", path, params={"labelSelector": selector}))[1]
        return [f"{i['metadata']['namespace']}/{i['metadata']['name']}" for i in listing["items"]]

    assert await names(CLAIMS, "app=shop") == ["shop/db", "shop/web"]
    assert await names(CLAIMS, "app=shop,tier notin (db)") == ["shop/web"]
    assert await names(CLAIMS, "!app") == ["shop/logs"]
    assert await names("/api/v1/persistentvolumeclaims", "tier in (db)") == ["other/db", "shop/db"]

    await _call(http, "DELETE", f"{CLAIMS}/db")
    watch = {"watch": "true", "resourceVersion": since, "timeoutSeconds": "1", "labelSelector": "tier=db"}
    async with http.get(CLAIMS, params=watch) as response:
        events = [json.loads(line) for line in (await response.text()).splitlines()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "db"), ("DELETED", "db")]
    assert all(e["object"]["metadata"]["namespace"] == "shop" for e in events)


def _documented_commands() -> str:
    doc = (ROOT / "docs" / "install.md").read_text()
    section = doc.split("### The ARM ID of a PersistentVolumeClaim's disk", 1)[1]
    script, sample = re.findall(r"```(?:sh|console)\n(.*?)```", section, re.DOTALL)[:2]
    assert sample.strip() == DISK, "the documented output is the disk this test serves"
    return str(script)


@pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed at /usr/bin/kubectl")
@pytest.mark.parametrize(
    "source",
    [
        {"csi": {"driver": "disk.csi.azure.com", "volumeHandle": DISK}},
        {"azureDisk": {"diskName": "pvc-0f4c6a3e", "diskURI": DISK, "kind": "Managed"}},
    ],
    ids=["csi", "in-tree"],
)
async def test_the_documented_commands_print_the_claims_disk(
    kube: KubeEmulator, http: aiohttp.ClientSession, tmp_path: Path, source: dict[str, Any]
) -> None:
    assert (await _call(http, "POST", CLAIMS, json=_claim()))[0] == 201
    await _bind(http, "data", _volume("pvc-0f4c6a3e-9d1b-4e55-8a2e-2c8d7e5f4a21", source))
    environment = {**os.environ, "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
                   "KUBECACHEDIR": str(tmp_path / "cache"), "PATH": f"{KUBECTL.parent}:{os.environ['PATH']}"}  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        "bash", "-euo", "pipefail", "-c", _documented_commands(), env=environment, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    assert out.decode() == DISK + "\n"
