"""`azsnap run` as a real process, configured only by environment variables, against both emulators.

This is the entry point a container runs: settings from AZSNAP_*, credential and clients built at start-up,
kopf logging in through a kubeconfig, the liveness endpoint up. Real time; it takes a few seconds.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.support.kube import SNAPSHOT_POLICY, condition, eventually, install_project_crd, policy_manifest

from azsnap.clock import WallClock
from azsnap.emulator import DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, Emulator, EmulatorConfig
from azsnap.emulator.kubernetes import KubeEmulator
from azsnap.offline.sandbox import disk_id

pytestmark = pytest.mark.e2e

AZSNAP = Path(sys.executable).with_name("azsnap")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not AZSNAP.exists(), reason="the azsnap console script is not installed next to python")
async def test_azsnap_run_reconciles_a_policy_and_serves_liveness_and_metrics(tmp_path: Path) -> None:
    emulator = Emulator(WallClock(), EmulatorConfig(poll_retry_after_s=0))
    emulator.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-0", location=DEMO_LOCATION)
    liveness, metrics = free_port(), free_port()
    async with KubeEmulator.serve(clock=WallClock()) as kube, emulator.serve(host="127.0.0.1", port=0) as server:
        install_project_crd(kube)
        env = {
            **os.environ,
            "KUBECONFIG": str(kube.write_kubeconfig(tmp_path / "kubeconfig")),
            "AZSNAP_CREDENTIAL": "static-token",
            "AZSNAP_ARM_ENDPOINT": server.base_url,
            "AZSNAP_CA_BUNDLE": server.ca_bundle,
            "AZSNAP_NAMESPACES": "default",
            "AZSNAP_METRICS_PORT": str(metrics),
            "AZSNAP_LOG_FORMAT": "json",
        }
        log = (tmp_path / "operator.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            str(AZSNAP), "run", f"--liveness=http://127.0.0.1:{liveness}/healthz", env=env, stdout=log, stderr=log
        )
        try:
            kube.apply(policy_manifest("p1", {
                "disk": {"id": disk_id("disk-0")},
                "schedule": {"every": "1h"},
                "retention": {"keepLast": 2},
            }))  # fmt: skip

            def ready() -> dict[str, Any] | None:
                obj = kube.get(*SNAPSHOT_POLICY, "default", "p1")
                cond = condition(obj, "Ready")
                return obj if cond and cond["status"] == "True" else None

            obj = await eventually(ready, interval=0.2, within=60)
            assert obj["status"]["snapshotCount"] == 1
            assert obj["metadata"]["finalizers"] == ["azsnap.io/finalizer"]
            async with aiohttp.ClientSession() as http:
                async with http.get(f"http://127.0.0.1:{liveness}/healthz") as answer:
                    assert answer.status == 200
                async with http.get(f"http://127.0.0.1:{metrics}/metrics") as answer:
                    text = await answer.text()
            assert 'azsnap_snapshots_created_total{namespace="default"} 1.0' in text
            assert 'azsnap_policy_ready{namespace="default",policy="p1"} 1.0' in text
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 30)
            log.close()
    output = (tmp_path / "operator.log").read_text()
    assert "Traceback" not in output, output[-3000:]
    assert "azsnap-emulator-token" not in output
    # At the default INFO level: the snapshot made, with policy and disk; none of kopf's routine lines, no HTTP lines.
    assert '"message": "reconciled", "policy": "default/p1", "disk": ' in output
    assert "Handler 'reconcile' succeeded." not in output and "is processed:" not in output
    assert "Request URL" not in output and "GET /healthz" not in output
    assert len(emulator.snapshots()) == 1
