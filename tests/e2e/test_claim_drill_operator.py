"""Restore drills of a policy over PersistentVolumeClaims, end to end: kopf against the in-process Kubernetes API
(claims, volumes, policies), the real SDK against the Azure emulator over HTTPS, emulated time.

Each round drills one claim's disk, the claims in turn by name; the records, events and metrics name the claim and
its disk; a failed drill makes the policy not Ready and its disk is drilled again next round, whose success clears it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import kopf
import pytest
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, condition, eventually, install_project_crd, policy_manifest

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.domain.naming import TAG_DRILL
from azsnap.emulator import DEMO_SUBSCRIPTION, FaultRule
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.offline.sandbox import Sandbox, azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]
DRILLS = "azsnap_restore_drills_total"

LABELS = {"app": "pg"}


def _claim_of_disk(kube: KubeEmulator, name: str, disk: str) -> None:
    """A claim and what the volume controllers make of it: a bound Azure Disk CSI volume for `disk`."""
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "default", "labels": LABELS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "4Gi"}},
                 "storageClassName": "managed-csi"},
    })  # fmt: skip
    claim = kube.get("", "v1", "persistentvolumeclaims", "default", name) or {}
    volume = f"pv-{name}"
    kube.apply({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": volume},
        "spec": {"accessModes": ["ReadWriteOnce"], "capacity": {"storage": "4Gi"}, "storageClassName": "managed-csi",
                 "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": name,
                              "uid": claim["metadata"]["uid"]},
                 "csi": {"driver": "disk.csi.azure.com", "volumeHandle": disk_id(disk)}},
    })  # fmt: skip
    kube.patch("", "v1", "persistentvolumeclaims", "default", name, {"spec": {"volumeName": volume}})
    bound = {"status": {"phase": "Bound", "capacity": {"storage": "4Gi"}}}
    kube.patch("", "v1", "persistentvolumeclaims", "default", name, bound, subresource="status")
    kube.patch("", "v1", "persistentvolumes", None, volume, {"status": {"phase": "Bound"}}, subresource="status")


@asynccontextmanager
async def _operator(kube: KubeEmulator) -> AsyncIterator[Sandbox]:
    install_project_crd(kube)
    async with (
        azure_sandbox(LoopClock(EPOCH), disks=3) as box,
        run_operator(kube=kube, memo=kopf.Memo({MEMO_KEY: box.runtime})),
    ):
        for i in range(2):
            _claim_of_disk(kube, f"data-pg-{i}", f"disk-{i}")
        spec = {"volumeClaimSelector": {"matchLabels": LABELS}, "schedule": {"every": "12h"},
                "retention": {"keepLast": 3}, "restoreDrill": {"every": "1h"}}  # fmt: skip
        kube.apply(policy_manifest("pg", spec))
        yield box


def _drill_number(kube: KubeEmulator, box: Sandbox, count: int) -> Callable[[], dict[str, Any] | None]:
    """The policy once `count` drills have finished (the metric counts them, whatever their result)."""

    # Only the drill counter's samples: the check runs every half emulated second for hours, and rendering every
    # series each time was most of this module's CPU time.
    drills = box.runtime.metrics.registry.restricted_registry([DRILLS])

    def check() -> dict[str, Any] | None:
        done = sum(sample.value for family in drills.collect() for sample in family.samples if sample.name == DRILLS)
        return kube.get(*SNAPSHOT_POLICY, "default", "pg") if done >= count else None

    return check


def _scratch(box: Sandbox) -> list[dict[str, Any]]:
    return [d for d in box.emulator.disks(DEMO_SUBSCRIPTION) if TAG_DRILL in (d.get("tags") or {})]


async def test_each_round_drills_the_next_claims_disk_in_turn(kube: KubeEmulator) -> None:
    async with _operator(kube) as box:
        drilled: list[dict[str, Any]] = []
        for count in (1, 2, 3):
            obj = await eventually(_drill_number(kube, box, count), within=3 * 3600)
            drilled.append(obj["status"]["lastVerifiedRestore"])
        assert [(d["claim"], d["disk"], d["result"]) for d in drilled] == [
            ("data-pg-0", "disk-0", "Succeeded"),
            ("data-pg-1", "disk-1", "Succeeded"),
            ("data-pg-0", "disk-0", "Succeeded"),
        ]
        assert all(d["snapshot"].startswith(f"{d['disk']}-") for d in drilled)
        assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]
        assert obj["status"].get("restoreDrill") is None and _scratch(box) == []
        verified = [e["message"] for e in kube.events("default") if e["reason"] == "RestoreVerified"]
        assert any("(claim data-pg-1, disk disk-1) succeeded" in m for m in verified)
        puts = [r for r in box.emulator.requests if r.method == "PUT" and "-drill-" in r.path]
        assert len(puts) == 3  # one scratch disk a round, whatever the number of claims


async def test_a_failed_drill_is_tried_again_on_the_same_claim_and_its_success_clears_it(kube: KubeEmulator) -> None:
    async with _operator(kube) as box:
        box.emulator.add_fault(FaultRule(operation="disks.put", kind="linked_forbidden"))
        obj = await eventually(_drill_number(kube, box, 1), within=3 * 3600)
        last = obj["status"]["lastVerifiedRestore"]
        assert (last["claim"], last["result"]) == ("data-pg-0", "Failed")
        ready = condition(obj, "Ready")
        assert ready is not None and ready["status"] == "False" and ready["reason"] == "RestoreDrillFailed"
        assert "of claim data-pg-0's disk disk-0" in ready["message"]
        box.emulator.clear_faults()
        obj = await eventually(_drill_number(kube, box, 2), within=3 * 3600)
        last = obj["status"]["lastVerifiedRestore"]
        assert (last["claim"], last["result"]) == ("data-pg-0", "Succeeded")
        assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]
