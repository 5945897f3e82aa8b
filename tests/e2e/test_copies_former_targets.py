"""A copy target removed from `spec.copies`, end to end (kopf in process against the Kubernetes emulator, the real
SDK against the Azure emulator, loop time): its copies are kept and reported in `status.formerCopyTargets` with a
`CopyTargetRemoved` warning, no retention applies to them any more, and `deletionPolicy: Delete` still finds and
deletes them with the policy, never a copy on hold nor a snapshot azsnap did not make."""

from __future__ import annotations

from typing import Any

import pytest
from tests.e2e.test_operator import get, operator, patch, spec, until
from tests.support.kube import SNAPSHOT_POLICY, eventually, policy_manifest

from azsnap.cloud.interface import SnapshotRequest
from azsnap.domain import naming
from azsnap.domain.copies import TAG_ROLE
from azsnap.emulator import DEMO_SUBSCRIPTION
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.offline.sandbox import Sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

NORTH = {"region": "northeurope", "resourceGroup": "rg-dr-ne", "retention": {"keepLast": 2}}
SWEDEN = {"region": "swedencentral", "resourceGroup": "rg-dr-se", "retention": {"keepLast": 2}}


def copies(box: Sandbox, group: str) -> list[dict[str, Any]]:
    return [
        s for s in box.emulator.snapshots(DEMO_SUBSCRIPTION, group) if (s.get("tags") or {}).get(TAG_ROLE) == "copy"
    ]


def complete(box: Sandbox, group: str) -> list[str]:
    return sorted(c["name"] for c in copies(box, group) if c["properties"].get("completionPercent", 100.0) >= 100.0)


async def test_a_removed_targets_copies_are_kept_reported_and_deleted_with_the_policy(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        box.emulator.add_resource_group(DEMO_SUBSCRIPTION, "rg-dr-ne", "northeurope")
        box.emulator.add_resource_group(DEMO_SUBSCRIPTION, "rg-dr-se", "swedencentral")
        kube.apply(policy_manifest("p1", spec(deletionPolicy="Delete", copies=[NORTH, SWEDEN])))
        await until(3.5)  # slots 00:00 … 03:00: the target's retention keeps its 2 newest complete copies
        assert len(complete(box, "rg-dr-se")) == 2 and len(complete(box, "rg-dr-ne")) == 2
        patch(kube, {"spec": {"copies": [NORTH]}})  # a merge patch replaces the list: swedencentral leaves

        def former() -> list[dict[str, Any]] | None:
            obj = get(kube)
            return None if obj is None else obj["status"].get("formerCopyTargets")

        entries = await eventually(former)
        assert entries == [
            {
                "region": "swedencentral",
                "resourceGroup": "rg-dr-se",
                "subscriptionId": DEMO_SUBSCRIPTION,
                "copiesHeld": 2,
            }
        ]
        status = get(kube)["status"]  # type: ignore[index]
        assert [c["region"] for c in status["copies"]] == ["northeurope"]
        (warning,) = [e for e in kube.events("default") if e["reason"] == "CopyTargetRemoved"]
        assert warning["type"] == "Warning" and "keeps its 2 copy(ies)" in warning["message"]
        kept = complete(box, "rg-dr-se")

        await until(8.5)  # five more slots: copied to northeurope only, and swedencentral's two are kept as they are
        assert complete(box, "rg-dr-se") == kept and len(copies(box, "rg-dr-se")) == 2
        assert len(complete(box, "rg-dr-ne")) == 2
        assert [e["reason"] for e in kube.events("default")].count("CopyTargetRemoved") == 1  # told once
        assert former() == entries

        # One copy on hold and a snapshot azsnap did not make stay; every other copy goes with the policy.
        held = kept[0]
        record = next(r for k, r in box.emulator.store.snapshots.items() if k[2] == held.lower())
        record.body["tags"][naming.TAG_HOLD] = "audit"
        foreign = SnapshotRequest(
            DEMO_SUBSCRIPTION, "rg-dr-se", "someone-elses", "westeurope", disk_id("disk-0"), {"owner": "someone-else"}
        )
        await box.cloud.create_snapshot(foreign)
        await until(9.2)  # the 09:00 copy to northeurope has ended: nothing waits for a running copy
        kube.delete(*SNAPSHOT_POLICY, "default", "p1")
        await eventually(lambda: get(kube) is None)
        assert [c["name"] for c in copies(box, "rg-dr-se")] == [held]
        assert "someone-elses" in [s["name"] for s in box.emulator.snapshots(DEMO_SUBSCRIPTION, "rg-dr-se")]
        assert copies(box, "rg-dr-ne") == []
        assert box.emulator.violations == []
