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

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.policy import ANNOTATION_SNAPSHOT_NOW
from azsnap.handlers.runtime import MEMO_KEY
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
