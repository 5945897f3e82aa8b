"""Kubernetes writes of a start over existing policies: three per policy, and kopf still tells changes apart.

A replica that starts over N policies writes, per policy, its finalizer, its status and one event (the first
snapshot). kopf's diff base (the spec, labels and annotations it last handled) travels in that same status write,
not in a patch of its own; kopf still sees a spec change and the on-demand annotation as changes, and a restart
as a resume (no finalizer, no diff base written again). A handler's retry record goes to the status too.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import kopf
import pytest
from bench.kube_probe import KubeProbe, serve_kube
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, condition, eventually, policy_manifest

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.domain.models import PLURAL
from azsnap.emulator import FaultRule
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.policy import ANNOTATION_SNAPSHOT_NOW
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.handlers.startup import FINALIZER, KOPF_STATUS
from azsnap.offline.sandbox import azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

POLICIES = 4
_WRITES = ("POST", "PUT", "PATCH", "DELETE")


def _writes(probe: KubeProbe) -> Counter[str]:
    return Counter({v: n for v, n in probe.requests_by_verb.items() if v.startswith(_WRITES)})


def _policy(kube: KubeEmulator, name: str) -> dict[str, Any]:
    obj = kube.get(*SNAPSHOT_POLICY, "default", name)
    assert obj is not None
    return obj


def _diff_base(obj: dict[str, Any]) -> str:
    return str(obj["status"][KOPF_STATUS.removeprefix("status.")]["last-handled-configuration"])


def _ready(kube: KubeEmulator, name: str) -> bool:
    return (condition(_policy(kube, name), "Ready") or {}).get("status") == "True"


async def test_a_start_writes_three_times_per_policy_and_kopf_still_sees_changes_and_restarts() -> None:
    async with serve_kube(LoopClock(EPOCH)) as (kube, probe), azure_sandbox(LoopClock(EPOCH)) as box:
        names = [f"p{i}" for i in range(POLICIES)]
        for i, name in enumerate(names):
            spec = {
                "disk": {"id": disk_id(f"disk-{i}")},
                "schedule": {"cron": "0 * * * *"},
                "retention": {"keepLast": 3},
            }
            kube.apply(policy_manifest(name, spec))
        probe.requests_by_verb.clear()

        async with run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})):
            await eventually(lambda: all(_ready(kube, name) for name in names))
            await asyncio.sleep(600)  # ten idle minutes: the next slot is at 01:00
            # Per policy: the finalizer, the status (with kopf's diff base in it), the SnapshotCreated event.
            assert _writes(probe) == Counter(
                {f"PATCH {PLURAL}": POLICIES, f"PATCH {PLURAL}/status": POLICIES, "POST events": POLICIES}
            )
            for name in names:
                obj = _policy(kube, name)
                assert json.loads(_diff_base(obj))["spec"] == obj["spec"]
                assert not obj["metadata"].get("annotations")  # neither a diff base nor kopf's marker

            # A spec change is a change: reconciled for the new generation, and the diff base follows it.
            kube.patch(*SNAPSHOT_POLICY, "default", "p0", {"spec": {"retention": {"keepLast": 5}}})
            await eventually(lambda: _policy(kube, "p0")["status"].get("observedGeneration") == 2)
            assert json.loads(_diff_base(_policy(kube, "p0")))["spec"]["retention"]["keepLast"] == 5
            # So is the on-demand annotation (outside kopf's own prefix): one more snapshot, its token recorded.
            before = len(box.emulator.snapshots())
            kube.patch(
                *SNAPSHOT_POLICY, "default", "p1", {"metadata": {"annotations": {ANNOTATION_SNAPSHOT_NOW: "t1"}}}
            )
            await eventually(lambda: _policy(kube, "p1")["status"].get("lastOnDemandToken") == "t1")
            assert len(box.emulator.snapshots()) == before + 1

        # A restart (a new process: no memory of the policies) resumes them: no finalizer, no diff base written.
        bases = {name: _diff_base(_policy(kube, name)) for name in names}
        probe.requests_by_verb.clear()
        async with run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.restart()})):
            await asyncio.sleep(600)
            assert _writes(probe)[f"PATCH {PLURAL}"] == 0
        assert {name: _diff_base(_policy(kube, name)) for name in names} == bases
        assert all(_ready(kube, name) for name in names)


async def test_a_deletion_that_fails_keeps_kopfs_retry_record_in_the_status_not_in_annotations() -> None:
    async with serve_kube(LoopClock(EPOCH)) as (kube, _), azure_sandbox(LoopClock(EPOCH)) as box:
        spec = {
            "disk": {"id": disk_id("disk-0")},
            "schedule": {"cron": "0 * * * *"},
            "retention": {"keepLast": 3},
            "deletionPolicy": "Delete",
        }
        kube.apply(policy_manifest("p0", spec))
        async with run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})):
            await eventually(lambda: _ready(kube, "p0"))
            box.emulator.add_fault(FaultRule(operation="snapshots.delete", kind="500"))
            kube.delete(*SNAPSHOT_POLICY, "default", "p0")

            def progress() -> dict[str, Any] | None:
                kopf_status = (_policy(kube, "p0").get("status") or {}).get("kopf") or {}
                return kopf_status.get("progress")

            record = (await eventually(progress))["finalize"]
            assert record["purpose"] == "delete"
            assert record["retries"] >= 1
            assert "internal server error" in record["message"]
            obj = _policy(kube, "p0")
            assert FINALIZER in obj["metadata"]["finalizers"]
            assert not obj["metadata"].get("annotations")
