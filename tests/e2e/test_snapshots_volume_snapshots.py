"""`azsnap snapshots` for a policy that publishes VolumeSnapshots: which snapshot is published as which namespace/name,
and whether the snapshot controller (the in-process stand-in) reports it ready; table and `--json`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.e2e.test_snapshots_command import snapshots_command
from tests.support.kube import EPOCH, eventually, install_project_crd
from tests.support.volume_snapshots import (
    CLASS,
    claim_of_disk,
    contents,
    install_snapshot_crds,
    operator,
    pg_policy,
    volume_snapshots,
)

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.emulator.kubernetes.snapshot_controller import running
from azsnap.offline.sandbox import azure_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]


async def test_the_command_shows_each_snapshots_volumesnapshot_and_whether_it_is_ready(
    kube: KubeEmulator, tmp_path: Path
) -> None:
    install_project_crd(kube)
    install_snapshot_crds(kube)
    kube.apply(CLASS)
    async with azure_sandbox(LoopClock(EPOCH), disks=1) as box, running(kube, box.emulator, box.clock):
        async with operator(kube, box):
            claim_of_disk(kube, "data-pg-0", "disk-0")
            kube.apply(pg_policy(keep_last=3))
            await asyncio.sleep(2 * 3600 + 60)
            await eventually(lambda: len(volume_snapshots(kube)) == 3 or None)
        await eventually(lambda: all((o.get("status") or {}).get("readyToUse")
                                     for o in volume_snapshots(kube).values()) or None)  # fmt: skip
        ready_one = min(volume_snapshots(kube))
        kube.delete("snapshot.storage.k8s.io", "v1", "volumesnapshots", "default", ready_one)  # someone removes one
        await eventually(lambda: ready_one not in volume_snapshots(kube) or None)
        by_handle = {c["spec"]["source"]["snapshotHandle"]: n for n, c in contents(kube).items()}

        table = await snapshots_command(kube, box, tmp_path, "pg")
        assert table.exit_code == 0, table.output
        header, columns, *lines = table.output.splitlines()
        assert "2 published as VolumeSnapshots in namespace default, 2 ready" in header
        assert columns.split()[-4:] == ["VOLUMESNAPSHOT", "READY", "KEPT", "BY"]
        shown = {line.split()[0]: line for line in lines}
        assert len(shown) == 3
        for snapshot in box.emulator.snapshots():
            line = shown[snapshot["name"]]
            name = by_handle[snapshot["id"]]
            if name == ready_one:
                assert " -  " in line and name not in line  # its VolumeSnapshot is gone: not published now
            else:
                assert f"default/{name}  yes" in line

        answer = await snapshots_command(kube, box, tmp_path, "pg", "--json")
        (policy,) = json.loads(answer.output)["policies"]
        assert policy["volumeSnapshots"] == {"namespace": "default", "published": 2, "ready": 2, "note": None}
        faces = {s["id"]: s["volumeSnapshot"] for s in policy["snapshots"]}
        for handle, name in by_handle.items():
            expected = None if name == ready_one else {"namespace": "default", "name": name, "readyToUse": True,
                                                       "error": None}  # fmt: skip
            assert faces[handle] == expected
