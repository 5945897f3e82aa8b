"""VolumeSnapshot publishing in batches, end to end: a first publish of many snapshots is spread over reconciles a
few seconds apart, and the policy's status and events say how far it is (published, pending)."""

from __future__ import annotations

import asyncio

import pytest
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, eventually, install_project_crd
from tests.support.volume_snapshots import (
    azure_ids,
    claim_of_disk,
    handles,
    install_snapshot_crds,
    operator,
    pg_policy,
    published_status,
    ready,
)

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.domain.volume_snapshots import GROUP, SNAPSHOTS
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.offline.sandbox import azure_sandbox
from azsnap.reconciler.volume_snapshots import NEXT_BATCH, Publisher

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]


async def test_a_first_publish_of_many_snapshots_goes_in_batches_and_status_says_how_far(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    async with azure_sandbox(LoopClock(EPOCH), disks=1) as box, operator(kube, box):
        runtime = box.runtime
        runtime.publisher = Publisher(runtime.reconciler.observer, runtime.clock, runtime.snapshot_objects, batch=2)
        claim_of_disk(kube, "data-pg-0", "disk-0")
        kube.apply(pg_policy(keep_last=10, volumeSnapshots={"enabled": False}))
        await asyncio.sleep(4 * 3600 + 60)
        assert len(azure_ids(box, "disk-0")) == 5 and not published_status(kube)

        turned_on = runtime.clock.now()
        kube.patch(*SNAPSHOT_POLICY, "default", "pg", {"spec": {"volumeSnapshots": {"enabled": True}}})
        first = await eventually(lambda: published_status(kube) or None)
        assert (first["state"], first["published"], first["pending"]) == ("Publishing", 2, 3)
        assert "3 snapshot(s) pending: at most 2 are published per reconcile" in first["message"]
        assert kube.api.audit[("create", GROUP, SNAPSHOTS)] == 2  # the first reconcile made two, no more

        await eventually(lambda: published_status(kube).get("state") == "Published")
        done = published_status(kube)
        assert (done["published"], done["pending"]) == (5, 0) and handles(kube) == azure_ids(box, "disk-0")
        assert kube.api.audit[("create", GROUP, SNAPSHOTS)] == 5
        # The rest came with the batches' own wake-ups, seconds apart, not with the next hourly slot.
        assert runtime.clock.now() - turned_on < 4 * NEXT_BATCH
        messages = [e["message"] for e in kube.events("default") if e["reason"] == "VolumeSnapshotsPublished"]
        assert "2 VolumeSnapshot(s) published" in messages[0] and "3 more pending" in messages[0]
        assert messages[-1].endswith("Every usable snapshot is published.")
        assert "no snapshot controller has reported on them yet" in done["message"] and done["ready"] == 0
        assert ready(kube, "pg")
