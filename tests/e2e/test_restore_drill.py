"""Restore drills end to end: the policy handlers in kopf against the Kubernetes emulator, the real SDK against the
Azure emulator over HTTPS, emulated time; one drill that succeeds and one the emulator's fault injection fails."""

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


@asynccontextmanager
async def operator(kube: KubeEmulator, **sandbox: Any) -> AsyncIterator[Sandbox]:
    install_project_crd(kube)
    async with (
        azure_sandbox(LoopClock(EPOCH), **sandbox) as box,
        run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})),
    ):
        yield box


def drilled(kube: KubeEmulator, result: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        obj = kube.get(*SNAPSHOT_POLICY, "default", "p1")
        last = ((obj or {}).get("status") or {}).get("lastVerifiedRestore") or {}
        return obj if last.get("result") == result else None

    return check


def policy(disk: str = "disk-0") -> dict[str, Any]:
    return policy_manifest(
        "p1",
        {
            "disk": {"id": disk_id(disk)},
            "schedule": {"every": "1h"},
            "retention": {"keepLast": 3},
            "restoreDrill": {"every": "1d", "sku": "PremiumV2_LRS"},
        },
    )


def metric(box: Sandbox, line: str) -> bool:
    text = box.runtime.metrics.exposition()[0].decode()
    return any(row.startswith(line) for row in text.splitlines())


def scratch(box: Sandbox) -> list[dict[str, Any]]:
    return [d for d in box.emulator.disks(DEMO_SUBSCRIPTION) if TAG_DRILL in (d.get("tags") or {})]


async def test_a_drill_restores_the_newest_snapshot_waits_for_hydration_and_cleans_up(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy())
        obj = await eventually(drilled(kube, "Succeeded"), within=3 * 3600)
        last = obj["status"]["lastVerifiedRestore"]
        assert last["snapshot"].startswith("disk-0-") and last["result"] == "Succeeded"
        assert last["durationSeconds"] >= 60  # a Premium SSD v2 scratch disk hydrates before it counts as usable
        puts = [r for r in box.emulator.requests if r.method == "PUT" and "-drill-" in r.path]
        deletes = [r for r in box.emulator.requests if r.method == "DELETE" and "-drill-" in r.path]
        assert [r.status for r in puts] == [202] and [r.status for r in deletes] == [202]
        assert condition(obj, "Ready")["status"] == "True"  # type: ignore[index]
        assert obj["status"].get("restoreDrill") is None and scratch(box) == []
        reasons = [e["reason"] for e in kube.events("default")]
        assert "RestoreVerified" in reasons
        assert metric(box, 'azsnap_restore_drills_total{namespace="default",result="Succeeded"} 1.0')
        assert metric(box, 'azsnap_policy_last_verified_restore_timestamp_seconds{namespace="default",policy="p1"}')
        assert metric(box, "azsnap_restore_drill_duration_seconds_count 1.0")


async def test_a_failed_drill_makes_the_policy_not_ready_with_a_reason(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        box.emulator.add_fault(FaultRule(operation="disks.put", kind="linked_forbidden"))
        kube.apply(policy())
        obj = await eventually(drilled(kube, "Failed"), within=3 * 3600)
        ready = condition(obj, "Ready")
        assert ready is not None and ready["status"] == "False" and ready["reason"] == "RestoreDrillFailed"
        assert "LinkedAuthorizationFailed" in obj["status"]["lastVerifiedRestore"]["message"]
        assert "RestoreDrillFailed" in [e["reason"] for e in kube.events("default") if e["type"] == "Warning"]
        assert metric(box, 'azsnap_restore_drills_total{namespace="default",result="Failed"} 1.0')
        assert scratch(box) == []
        assert obj["status"]["snapshotCount"] >= 1  # the backups themselves go on
