"""kubectl against the in-process Kubernetes API: the documented CRD install, the real operator, and `kubectl get`.

The CRD is installed with the one command the docs show (a test below checks that every doc shows that one), a
policy is applied, listed and waited for; and the `kubectl get snappol` samples in the README and the policy
reference are what kubectl prints through the in-process API for the status they describe. kubectl is another
process, so this runs in real time (a few seconds).
"""

from __future__ import annotations

import asyncio
import re
import shlex
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import kopf
import pytest
import yaml
from tests.support.kube import EPOCH, install_project_crd

import azsnap.handlers  # noqa: F401  (registers the real handlers)
from azsnap.clock import LoopClock, ManualClock
from azsnap.domain.models import API_GROUP, API_VERSION, PLURAL
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.offline.sandbox import azure_sandbox

KUBECTL: Final = Path("/usr/bin/kubectl")
ROOT: Final = Path(__file__).resolve().parents[2]
EXAMPLE: Final = ROOT / "examples" / "minimal-hourly.yaml"
#: The one way the docs install and upgrade the CRD, run from the repository root.
INSTALL_CRD: Final = "kubectl apply --server-side --force-conflicts -f crds/snapshotpolicies.azsnap.io.yaml"
DOCS: Final = ("README.md", "docs/install.md", "docs/azure-setup.md", "docs/operations.md")

needs_kubectl = pytest.mark.skipif(not KUBECTL.exists(), reason="kubectl is not installed at /usr/bin/kubectl")
pytestmark = [pytest.mark.e2e]


def _kubectl(kube: KubeEmulator, tmp_path: Path) -> Any:
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")

    async def run(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            str(KUBECTL), "--kubeconfig", str(kubeconfig), "--cache-dir", str(tmp_path / "cache"), *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        )  # fmt: skip
        out, err = await process.communicate()
        assert process.returncode == 0, f"kubectl {' '.join(args)}: {err.decode()}"
        return out.decode()

    return run


def _shell_lines(path: str) -> list[str]:
    """The commands in a document's sh/console code blocks, continuation lines joined."""
    text = (ROOT / path).read_text()
    commands: list[str] = []
    for block in re.findall(r"```(?:sh|console)\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.strip().removeprefix("$ ").split("  #")[0].strip()
            if command:
                commands.append(command)
    return commands


def test_every_doc_installs_and_upgrades_the_crd_the_one_tested_way() -> None:
    crd_commands = [
        (doc, c) for doc in DOCS for c in _shell_lines(doc) if c.startswith("kubectl apply") and "crds/" in c
    ]
    assert {doc for doc, _ in crd_commands} == set(DOCS)
    assert {c for _, c in crd_commands} == {INSTALL_CRD}
    helm_installs = [c for doc in DOCS for c in _shell_lines(doc) if c.startswith("helm install")]
    assert helm_installs and all("--skip-crds" in shlex.split(c) for c in helm_installs)


@needs_kubectl
async def test_kubectl_installs_the_crd_applies_lists_and_waits_for_ready(kube: KubeEmulator, tmp_path: Path) -> None:
    kubectl = _kubectl(kube, tmp_path)
    name = yaml.safe_load(EXAMPLE.read_text())["metadata"]["name"]
    async with (
        azure_sandbox(LoopClock(EPOCH)) as box,
        run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})),
    ):
        installed = await kubectl(*shlex.split(INSTALL_CRD)[1:])
        again = await kubectl(*shlex.split(INSTALL_CRD)[1:])  # the upgrade is the same command
        assert f"/{name} created" in await kubectl("apply", "-f", str(EXAMPLE))
        listing = await kubectl("get", "snappol")
        waited = await kubectl("wait", "--for=condition=Ready", f"snappol/{name}", "--timeout=60s")
        described = await kubectl("get", "snappol", name, "-o", "yaml")

    assert "serverside-applied" in installed and "serverside-applied" in again
    assert name in listing.splitlines()[1]
    assert "condition met" in waited
    status = yaml.safe_load(described)["status"]
    assert status["snapshotCount"] == 1
    assert status["lastSnapshot"]["state"] == "Succeeded"
    stored = kube.get(API_GROUP, API_VERSION, PLURAL, "default", name) or {}
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]
    assert len(box.emulator.snapshots()) == 1


def _documented_listing(path: str, command: str) -> list[str]:
    lines = (ROOT / path).read_text().splitlines()
    start = lines.index(f"$ {command}") + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(("$", "```")))
    return lines[start:end]


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


SAMPLE_POLICY_SPEC: Final = {
    "disk": {"id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-team-a/providers/"
                   "Microsoft.Compute/disks/pg-data-0"},
    "schedule": {"cron": "0 * * * *", "timeZone": "Europe/Berlin"},
    "retention": {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 12},
}  # fmt: skip


def _sample(name: str, spec: Mapping[str, Any], *, age: timedelta, last: timedelta, **status: Any) -> dict[str, Any]:
    return {"name": name, "spec": spec, "age": age, "last": last, "status": status}


#: The states the samples describe: (document, the kubectl command shown, now, namespace, policies).
SAMPLE_SELECTOR_SPEC: Final = {
    "volumeClaimSelector": {"matchLabels": {"app": "postgres"}},
    "snapshot": {"resourceGroup": "rg-team-a-snapshots"},
    "schedule": {"cron": "0 * * * *", "timeZone": "Europe/Berlin"},
    "retention": {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 12},
}

SAMPLES: Final = [
    ("README.md", "kubectl get snappol -n team-a", datetime(2026, 3, 29, 11, 12, tzinfo=UTC), "team-a", [
        _sample("postgres-data", SAMPLE_SELECTOR_SPEC, age=timedelta(days=31), last=timedelta(minutes=12),
                disksReady="3/3", schedule="0 * * * * Europe/Berlin", snapshotCount=132,
                nextSnapshotTime="2026-03-29T12:00:00Z"),
    ]),
    ("docs/policy-reference.md", "kubectl get snappol", datetime(2026, 3, 29, 12, 12, tzinfo=UTC), "default", [
        _sample("minimal-hourly", yaml.safe_load(EXAMPLE.read_text())["spec"], age=timedelta(days=3),
                last=timedelta(minutes=12), diskName="disk-0", disksReady="1/1", schedule="every 1h", snapshotCount=24,
                nextSnapshotTime="2026-03-29T13:00:00Z"),
        _sample("nightly-berlin", {**SAMPLE_POLICY_SPEC, "schedule": {"cron": "30 2 * * *", "timeZone": "Europe/Berlin"}},
                age=timedelta(days=20), last=timedelta(hours=11, minutes=11, seconds=20), diskName="disk-1", disksReady="1/1",
                schedule="30 2 * * * Europe/Berlin", snapshotCount=14, nextSnapshotTime="2026-03-30T00:30:00Z"),
    ]),
]  # fmt: skip


@needs_kubectl
@pytest.mark.parametrize(("doc", "command", "now", "namespace", "policies"), SAMPLES, ids=[s[0] for s in SAMPLES])
async def test_the_documented_listing_is_what_kubectl_prints(
    doc: str, command: str, now: datetime, namespace: str, policies: list[dict[str, Any]], tmp_path: Path
) -> None:
    clock = ManualClock(now)
    async with KubeEmulator.serve(clock=clock) as kube:
        install_project_crd(kube)
        kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        for policy in policies:
            clock.set(now - policy["age"])
            manifest = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": "SnapshotPolicy",
                        "metadata": {"name": policy["name"], "namespace": namespace}, "spec": policy["spec"]}  # fmt: skip
            kube.apply(manifest)
            last = now - policy["last"]
            ready = {"type": "Ready", "status": "True", "reason": "Succeeded", "lastTransitionTime": _iso(last)}
            status = {**policy["status"], "conditions": [ready],
                      "lastSnapshot": {"name": "s", "scheduledTime": _iso(last), "createdTime": _iso(last),
                                       "state": "Succeeded"}}  # fmt: skip
            kube.patch(
                API_GROUP, API_VERSION, PLURAL, namespace, policy["name"], {"status": status}, subresource="status"
            )
        clock.set(now)
        printed = await _kubectl(kube, tmp_path)(*shlex.split(command)[1:])
    assert printed.splitlines() == _documented_listing(doc, command)
