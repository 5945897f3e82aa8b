"""kubectl against the Kubernetes emulator with a toy operator: apply a SnapshotPolicy, list it, wait for Ready.

This runs in real time (kubectl is another process); it takes about a second.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from tests.support.kube import CRD_FILE

from azsnap.domain.models import API_GROUP, API_VERSION, KIND, PLURAL
from azsnap.emulator.kubernetes import KubeEmulator, run_operator

KUBECTL = Path("/usr/bin/kubectl")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minimal-hourly.yaml"
INLINE_POLICY = f"""\
apiVersion: {API_GROUP}/{API_VERSION}
kind: {KIND}
metadata:
  name: smoke
spec:
  schedule:
    every: 1h
"""
#: A CRD with just the names, for when the project's CRD file is not there; kubectl must learn `snappol` from it.
INLINE_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"{PLURAL}.{API_GROUP}"},
    "spec": {
        "group": API_GROUP,
        "scope": "Namespaced",
        "names": {"plural": PLURAL, "singular": KIND.lower(), "kind": KIND, "shortNames": ["snappol"]},
        "versions": [{"name": API_VERSION, "served": True, "storage": True, "subresources": {"status": {}}}],
    },
}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed at /usr/bin/kubectl"),
]


def ready_operator() -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.create(API_GROUP, API_VERSION, PLURAL, registry=registry)
    def ready(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        patch.status["observedGeneration"] = body.meta["generation"]
        patch.status["conditions"] = [
            {"type": "Ready", "status": "True", "reason": "Toy", "message": "the toy operator saw it"}
        ]

    return registry


async def test_kubectl_applies_lists_and_waits_for_ready(kube: KubeEmulator, tmp_path: Path) -> None:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")

    async def kubectl(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
        return out.decode()

    crd = CRD_FILE if CRD_FILE.exists() else tmp_path / "crd.yaml"
    if not CRD_FILE.exists():
        crd.write_text(yaml.safe_dump(INLINE_CRD))
    policy = EXAMPLE if EXAMPLE.exists() else tmp_path / "policy.yaml"
    if not EXAMPLE.exists():
        policy.write_text(INLINE_POLICY)
    name = yaml.safe_load(policy.read_text())["metadata"]["name"]

    async with run_operator(ready_operator(), kube=kube, namespaces=["default"]):
        assert "serverside-applied" in await kubectl("apply", "--server-side", "-f", str(crd))
        assert f"/{name} created" in await kubectl("apply", "-f", str(policy))
        listing = await kubectl("get", "snappol")
        waited = await kubectl("wait", "--for=condition=Ready", f"snappol/{name}", "--timeout=60s")

    assert name in listing.splitlines()[1]
    assert "condition met" in waited
    stored = kube.get(API_GROUP, API_VERSION, PLURAL, "default", name) or {}
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
