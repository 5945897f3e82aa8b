"""`azsnap snapshots` end to end: the command reads policies through a kubeconfig from the in-process Kubernetes API
and snapshots through the Azure SDK from the emulator, after the real operator made them on emulated time."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import kopf
import pytest
from click.testing import Result
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, eventually, install_project_crd, policy_manifest
from typer.testing import CliRunner

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.cli import app
from azsnap.clock import LoopClock
from azsnap.domain import naming
from azsnap.emulator import DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.offline.demo import seed_unowned
from azsnap.offline.sandbox import Sandbox, azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

HOURS = 26.5  # a day and a bit: hourly slots 00:00 on 5 January to 02:00 on 6 January


def spec(disk: str, **extra: Any) -> dict[str, Any]:
    return {"disk": {"id": disk_id(disk)}, "schedule": {"cron": "0 * * * *"}, **extra}


@asynccontextmanager
async def made(kube: KubeEmulator) -> AsyncIterator[Sandbox]:
    """Two policies run by the real operator for HOURS emulated hours; the operator stopped, the emulators up."""
    install_project_crd(kube)
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}})
    clock = LoopClock(EPOCH)
    async with azure_sandbox(clock) as box:
        seed_unowned(box.emulator, clock.now(), disks=3)  # disk-0-before-upgrade: a hand-made snapshot of disk-0
        memo = kopf.Memo({MEMO_KEY: box.runtime})
        async with run_operator(kube=kube, namespaces=["default", "team-b"], memo=memo):
            kube.apply(policy_manifest("gfs", spec("disk-0", retention={"hourly": 3, "daily": 2})))
            kube.apply(policy_manifest("last", spec("disk-1", retention={"keepLast": 2}), namespace="team-b"))
            await asyncio.sleep(HOURS * 3600)
            await eventually(lambda: all(p.get("status", {}).get("restorePoints") for p in policies(kube)))
        yield box


def policies(kube: KubeEmulator) -> list[dict[str, Any]]:
    return kube.list(*SNAPSHOT_POLICY)


async def snapshots_command(kube: KubeEmulator, box: Sandbox, tmp_path: Path, *args: str) -> Result:
    """`azsnap snapshots ARGS` in a thread (it runs its own event loop), with the operator's Azure settings."""
    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    env = {
        "AZSNAP_CREDENTIAL": "static-token",
        "AZSNAP_ARM_ENDPOINT": box.server.base_url,
        "AZSNAP_CA_BUNDLE": box.server.ca_bundle,
    }
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, app, ["snapshots", "--kubeconfig", str(kubeconfig), *args], env=env, catch_exceptions=False
    )


def ours(box: Sandbox, disk: str) -> dict[str, dict[str, Any]]:
    """The policy-made snapshots of a disk in Azure, by name."""
    return {
        s["name"]: s
        for s in box.emulator.snapshots(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP)
        if s["properties"]["creationData"]["sourceResourceId"].lower() == disk_id(disk).lower()
        and naming.TAG_SLOT in (s.get("tags") or {})
    }


async def test_the_table_lists_each_snapshot_with_the_rules_that_keep_it(kube: KubeEmulator, tmp_path: Path) -> None:
    async with made(kube) as box:
        result = await snapshots_command(kube, box, tmp_path)  # the kubeconfig's namespace: default
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # hourly 3 (00:00, 01:00, 02:00 on the 6th) and daily 2 (the 6th's newest is 02:00, the 5th's is 23:00)
    assert lines[0] == (
        "default/gfs  disk disk-0: 4 snapshot(s), 4 restore point(s) from 2026-01-05 23:00 to 2026-01-06 02:00; "
        "1 other snapshot(s) of the disk azsnap does not manage for this policy"
    )
    assert lines[1].split() == ["NAME", "TIME", "(UTC)", "SLOT", "STATE", "SIZE", "HELD", "KEPT", "BY"]
    rows = lines[2:]
    assert [row.split()[0] for row in rows] == sorted(ours(box, "disk-0"), reverse=True)
    newest, second, third, oldest = rows
    assert newest.split()[1:8] == ["2026-01-06", "02:00", "02:00", "Succeeded", "128", "GiB", "yes"]
    assert newest.endswith("hourly 2026-01-06 02:00, daily 2026-01-06, minKeep 1/1, newest good")
    assert second.endswith("no    hourly 2026-01-06 01:00")
    assert third.endswith("no    hourly 2026-01-06 00:00")
    assert oldest.endswith("no    daily 2026-01-05")
    assert "team-b" not in result.stdout


async def test_json_across_namespaces_agrees_with_the_status(kube: KubeEmulator, tmp_path: Path) -> None:
    async with made(kube) as box:
        result = await snapshots_command(kube, box, tmp_path, "-A", "--json")
    assert result.exit_code == 0, result.output
    listed = {f"{p['namespace']}/{p['name']}": p for p in json.loads(result.stdout)["policies"]}
    assert set(listed) == {"default/gfs", "team-b/last"}
    last = listed["team-b/last"]
    assert last["disk"] == disk_id("disk-1") and last["diskExists"] and last["problem"] is None
    assert [s["name"] for s in last["snapshots"]] == sorted(ours(box, "disk-1"), reverse=True)
    newest, older = last["snapshots"]
    assert newest["keptBy"] == ["keepLast", "minKeep", "newest"]
    assert newest["held"] and newest["holds"] == ["newest", "minKeep"]
    assert older["keptBy"] == ["keepLast"] and not older["held"] and older["deleting"] is None
    assert older["slot"] == "2026-01-06T01:00:00Z" and older["state"] == "Succeeded" and older["restorePoint"]
    assert older["sizeBytes"] == 128 * 1024**3 and older["onDemand"] is False
    assert older["id"].endswith(f"/snapshots/{older['name']}")
    # the command and the operator's status name the same restore points
    status = {f"{p['metadata']['namespace']}/{p['metadata']['name']}": p["status"] for p in policies(kube)}
    for key, got in listed.items():
        points = status[key]["restorePoints"]
        assert got["restorePoints"]["count"] == points["count"]
        assert got["restorePoints"]["newest"]["name"] == points["newest"]["name"]
        assert got["restorePoints"]["oldest"]["name"] == points["oldest"]["name"]


async def test_what_the_next_reconcile_deletes_and_what_a_hold_keeps(kube: KubeEmulator, tmp_path: Path) -> None:
    async with made(kube) as box:
        # a tighter retention the operator has not acted on yet, and a hold tag put on by hand
        retention = {"keepLast": 1, "hourly": None, "daily": None}  # a merge patch: null removes a rule
        kube.patch(*SNAPSHOT_POLICY, "default", "gfs", {"spec": {"retention": retention}})
        held = min(ours(box, "disk-0"))
        record = next(r for k, r in box.emulator.store.snapshots.items() if k[2] == held.lower())
        record.body["tags"][naming.TAG_HOLD] = "incident-42"
        result = await snapshots_command(kube, box, tmp_path, "gfs", "-n", "default", "--json")
    assert result.exit_code == 0, result.output
    (gfs,) = json.loads(result.stdout)["policies"]
    by_name = {s["name"]: s for s in gfs["snapshots"]}
    assert by_name[held]["holds"] == ["hold"] and by_name[held]["notes"] == ["hold tag"]
    going = [s for s in gfs["snapshots"] if s["deleting"]]
    assert len(going) == 2
    assert {s["deleting"] for s in going} == {"kept by no retention rule (keepLast 1, minKeep 1)"}


async def test_one_disk_and_the_errors_a_person_can_act_on(kube: KubeEmulator, tmp_path: Path) -> None:
    async with made(kube) as box:
        by_disk = await snapshots_command(kube, box, tmp_path, "-A", "--disk", disk_id("disk-1").upper())
        missing = await snapshots_command(kube, box, tmp_path, "nope", "-n", "team-b")
        both = await snapshots_command(kube, box, tmp_path, "gfs", "-A")
        no_context = await snapshots_command(kube, box, tmp_path, "--context", "elsewhere")
    assert by_disk.exit_code == 0, by_disk.output
    assert by_disk.stdout.startswith("team-b/last  disk disk-1: 2 snapshot(s), 2 restore point(s)")
    assert "default/gfs" not in by_disk.stdout
    assert missing.exit_code == 2
    assert 'snapshotpolicies.azsnap.io "nope" not found in namespace team-b' in missing.stderr
    assert both.exit_code == 2 and "drop --all-namespaces or the name" in both.stderr
    assert no_context.exit_code == 2 and "no context 'elsewhere' in the kubeconfig" in no_context.stderr


async def test_a_gone_disk_still_shows_its_restore_points_all_held(kube: KubeEmulator, tmp_path: Path) -> None:
    async with made(kube) as box:
        kube.patch(*SNAPSHOT_POLICY, "team-b", "last", {"spec": {"retention": {"keepLast": 1}}})
        box.emulator.delete_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-1")
        result = await snapshots_command(kube, box, tmp_path, "-n", "team-b")
    assert result.exit_code == 0, result.output
    header, _, newest, older = result.stdout.splitlines()
    assert header.startswith("team-b/last  disk disk-1 (the disk does not exist): 2 snapshot(s), 2 restore point(s)")
    assert newest.endswith("yes   keepLast 1/1, minKeep 1/1, newest good")
    # onSourceDiskDelete is Keep (the default): what retention would delete stays while the disk is gone
    assert older.endswith(
        "yes   disk gone, onSourceDiskDelete Keep (else deleted: kept by no retention rule (keepLast 1, minKeep 1))"
    )


async def test_a_claim_policy_shows_each_claims_disk_and_restore_points_over_all(
    kube: KubeEmulator, tmp_path: Path
) -> None:
    from tests.e2e.test_claim_targets import LABELS, _claim_of_disk

    install_project_crd(kube)
    async with azure_sandbox(LoopClock(EPOCH)) as box:
        memo = kopf.Memo({MEMO_KEY: box.runtime})
        async with run_operator(kube=kube, namespaces=["default"], memo=memo):
            _claim_of_disk(kube, "data-pg-0", "disk-2")
            _claim_of_disk(kube, "data-pg-1", "disk-3")
            spec = {"volumeClaimSelector": {"matchLabels": LABELS}, "schedule": {"every": "1h"}}
            kube.apply(policy_manifest("pg", {**spec, "retention": {"keepLast": 2}}))
            await asyncio.sleep(3.5 * 3600)
            obj = await eventually(lambda: (p := policies(kube)[0]).get("status", {}).get("restorePoints") and p)
        result = await snapshots_command(kube, box, tmp_path, "pg", "--json")
        by_disk = await snapshots_command(kube, box, tmp_path, "--disk", disk_id("disk-3").lower(), "--json")
    made = {**ours(box, "disk-2"), **ours(box, "disk-3")}
    points = obj["status"]["restorePoints"]
    assert points["count"] == len(made) == 4  # keepLast 2 on each disk
    assert points["newest"]["name"] == max(made, key=lambda n: (made[n]["properties"]["timeCreated"], n))
    assert points["oldest"]["name"] == min(made, key=lambda n: (made[n]["properties"]["timeCreated"], n))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["policies"]
    assert [(r["claim"], r["disk"]) for r in rows] == [
        ("data-pg-0", disk_id("disk-2")),
        ("data-pg-1", disk_id("disk-3")),
    ]
    assert [len(r["snapshots"]) for r in rows] == [2, 2]
    # --disk finds the policy through its claim, and shows that disk's part alone
    assert by_disk.exit_code == 0, by_disk.output
    picked = json.loads(by_disk.stdout)["policies"]
    assert [(r["name"], r["claim"], r["disk"], len(r["snapshots"])) for r in picked] == [
        ("pg", "data-pg-1", disk_id("disk-3"), 2)
    ]
