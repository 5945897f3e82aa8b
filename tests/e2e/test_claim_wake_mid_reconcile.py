"""A claim that goes while its policy's reconcile runs wakes the policy again, end to end, in emulated time.

The reconcile in flight read the claims before the change; its own next wake-up (the next slot) must not swallow
the wake-up the change asked for, or the change would wait an hour here (a day for a daily policy).
"""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest
from tests.e2e.test_volume_snapshots_operator import operator, pg_policy, published_status
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, eventually, install_project_crd
from tests.support.volume_snapshots import claim_of_disk, install_snapshot_crds

from azsnap.clock import LoopClock
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.handlers.volume_snapshots import KubeSnapshots
from azsnap.offline.sandbox import azure_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]


class _ClaimGoesWhilePublishing(KubeSnapshots):
    """The policy's VolumeSnapshots over HTTP; once armed, the next listing (a reconcile's publishing step, after
    the reconcile read the claims) first deletes a claim and lets the operator see it go."""

    def __init__(self, info: kopf.ConnectionInfo, kube: KubeEmulator) -> None:
        super().__init__(info)
        self.kube = kube
        self.armed: str | None = None
        self.deleted_at: float | None = None

    async def list(self, plural: str, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        if self.armed is not None:
            name, self.armed = self.armed, None
            self.kube.delete("", "v1", "persistentvolumeclaims", "default", name)
            self.deleted_at = asyncio.get_running_loop().time()
            await asyncio.sleep(5)  # emulated: the operator's watch, index and wake-up see the deletion meanwhile
        return await super().list(plural, namespace, selector)


def _entries(kube: KubeEmulator) -> dict[str, dict[str, Any]]:
    status = (kube.get(*SNAPSHOT_POLICY, "default", "pg") or {}).get("status") or {}
    return {e["claim"]: e for e in status.get("disks") or []}


async def test_a_claim_deleted_while_its_policy_reconciles_is_seen_by_the_next_reconcile_not_the_next_slot(
    kube: KubeEmulator,
) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=3) as box:
        objects = _ClaimGoesWhilePublishing(kopf.ConnectionInfo(server=kube.url), kube)
        box.runtime.snapshot_objects = objects
        async with operator(kube, box, publishing=False):  # its objects are `objects`, set above
            for i in range(3):
                claim_of_disk(kube, f"data-{i}", f"disk-{i}")
            kube.apply(pg_policy())
            await eventually(lambda: published_status(kube).get("published") == 3)
            assert {e["state"] for e in _entries(kube).values()} == {"Ready"}

            objects.armed = "data-0"  # the next slot's reconcile, an hour on
            await eventually(lambda: objects.deleted_at is not None, within=2 * 3600)
            await eventually(lambda: _entries(kube)["data-0"]["reason"] == "ClaimNotFound", within=3000)
            assert objects.deleted_at is not None
            assert asyncio.get_running_loop().time() - objects.deleted_at < 60  # not at the next slot, an hour on
            assert [e["state"] for name, e in sorted(_entries(kube).items())] == ["Unresolved", "Ready", "Ready"]
