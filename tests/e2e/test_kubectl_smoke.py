"""kubectl against the Kubernetes emulator with the real operator: apply a SnapshotPolicy, list it, wait for Ready.

This runs in real time (kubectl is another process); it takes a few seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import kopf
import pytest
import yaml
from tests.support.kube import CRD_FILE, EPOCH

import azsnap.handlers  # noqa: F401  (registers the real handlers)
from azsnap.clock import LoopClock
from azsnap.domain.models import API_GROUP, API_VERSION, PLURAL
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.sandbox import azure_sandbox

KUBECTL = Path("/usr/bin/kubectl")
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "minimal-hourly.yaml"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed at /usr/bin/kubectl"),
]


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

    name = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    async with (
        azure_sandbox(LoopClock(EPOCH)) as box,
        run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})),
    ):
        assert "serverside-applied" in await kubectl("apply", "--server-side", "-f", str(CRD_FILE))
        assert f"/{name} created" in await kubectl("apply", "-f", str(EXAMPLE))
        listing = await kubectl("get", "snappol")
        waited = await kubectl("wait", "--for=condition=Ready", f"snappol/{name}", "--timeout=60s")
        described = await kubectl("get", "snappol", name, "-o", "yaml")

    assert name in listing.splitlines()[1]
    assert "condition met" in waited
    status = yaml.safe_load(described)["status"]
    assert status["snapshotCount"] == 1
    assert status["lastSnapshot"]["state"] == "Succeeded"
    stored = kube.get(API_GROUP, API_VERSION, PLURAL, "default", name) or {}
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    assert len(box.emulator.snapshots()) == 1
