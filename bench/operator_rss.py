"""The operator process's own memory: `azsnap run` as a child process against both emulators; one JSON line out.

    python -m bench.operator_rss --policies 1000 [--settle 90]

The Kubernetes and Azure emulators run in this process (wall clock, Azure's budgets off, so the run is not a
throttling test); the operator is a separate `azsnap run` process configured only by environment variables, as in
a container, so its resident set size (RSS) is its own and nothing of the emulators'. The run starts the operator
with no policy and takes its RSS once its liveness endpoint answers, applies N policies (one disk each, hourly,
keepLast 3), waits until every policy is Ready (one snapshot each), then samples the operator's RSS once a second
for `--settle` seconds (long enough for every policy's timer to fire once) and reports the start, the last sample
and the peak. See docs/performance.md for the figures and the chart's memory request and limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import aiohttp
import psutil
import yaml

from azsnap.clock import WallClock
from azsnap.domain.models import API_GROUP, API_VERSION, PLURAL
from azsnap.emulator import DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, Emulator, EmulatorConfig
from azsnap.emulator.kubernetes import KubeEmulator
from bench.kube_probe import NAMESPACE, manifest

__all__ = ["AZSNAP", "free_port", "is_ready", "main", "rss_mib", "run", "until_live"]

CRD_FILE: Final = Path(__file__).resolve().parents[1] / "crds" / f"{PLURAL}.{API_GROUP}.yaml"
AZSNAP: Final = Path(sys.executable).with_name("azsnap")
_MB: Final = 1024 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def rss_mib(process: psutil.Process) -> float:
    return float(process.memory_info().rss) / _MB


async def until_live(url: str, child: asyncio.subprocess.Process, within: float) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if child.returncode is not None:
                raise RuntimeError(f"azsnap run exited with {child.returncode} before it was live")
            try:
                async with http.get(url) as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"azsnap run was not live within {within:.0f} s")


async def run(policies: int, settle: float, ready_within: float) -> dict[str, Any]:
    """Start the operator, apply the policies, wait for Ready, sample its RSS; the figures as a dict."""
    emulator = Emulator(WallClock(), EmulatorConfig(throttling=False, poll_retry_after_s=0))
    for i in range(policies):
        emulator.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, f"disk-{i}", location=DEMO_LOCATION)
    liveness = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        async with KubeEmulator.serve(clock=WallClock()) as kube, emulator.serve(host="127.0.0.1") as server:
            for document in yaml.safe_load_all(CRD_FILE.read_text()):
                if document:
                    kube.install_crd(document)
            env = {
                **os.environ,
                "KUBECONFIG": str(kube.write_kubeconfig(Path(tmp) / "kubeconfig")),
                "AZSNAP_CREDENTIAL": "static-token",
                "AZSNAP_ARM_ENDPOINT": server.base_url,
                "AZSNAP_CA_BUNDLE": server.ca_bundle,
                "AZSNAP_NAMESPACES": NAMESPACE,
                "AZSNAP_METRICS_PORT": str(free_port()),
                "AZSNAP_LOG_FORMAT": "json",
            }
            log = (Path(tmp) / "operator.log").open("wb")
            child = await asyncio.create_subprocess_exec(
                str(AZSNAP), "run", f"--liveness=http://127.0.0.1:{liveness}/healthz", env=env, stdout=log, stderr=log
            )
            try:
                process = psutil.Process(child.pid)
                await until_live(f"http://127.0.0.1:{liveness}/healthz", child, 120)
                await asyncio.sleep(2)
                rss_start = rss_mib(process)
                started = time.monotonic()
                for i in range(policies):
                    kube.apply(manifest(i))
                    if i % 100 == 99:
                        await asyncio.sleep(0)  # let the emulators answer the operator meanwhile
                peak = rss_start
                while True:
                    peak = max(peak, rss_mib(process))
                    listed = kube.list(API_GROUP, API_VERSION, PLURAL, NAMESPACE)
                    if sum(1 for obj in listed if is_ready(obj)) == policies:
                        break
                    if time.monotonic() - started > ready_within:
                        raise RuntimeError(f"not every policy was Ready within {ready_within:.0f} s")
                    await asyncio.sleep(1)
                ready_after = time.monotonic() - started
                rss_ready = rss_mib(process)
                samples = [rss_ready]
                until = time.monotonic() + settle
                while time.monotonic() < until:
                    await asyncio.sleep(1)
                    samples.append(rss_mib(process))
                peak = max(peak, *samples)
            finally:
                child.terminate()
                await asyncio.wait_for(child.wait(), 60)
                log.close()
    return {
        "policies": policies,
        "snapshots": len(emulator.snapshots()),
        "ready_after_s": round(ready_after, 1),
        "operator_rss_start_mb": round(rss_start, 1),
        "operator_rss_ready_mb": round(rss_ready, 1),
        "operator_rss_settled_mb": round(samples[-1], 1),
        "operator_rss_peak_mb": round(peak, 1),
        "operator_rss_mb_per_policy": round((samples[-1] - rss_start) / max(policies, 1), 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.operator_rss", description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000, help="disks, one hourly keepLast-3 policy each")
    parser.add_argument("--settle", type=float, default=90.0, help="seconds of RSS samples after every policy is Ready")
    parser.add_argument("--ready-within", type=float, default=1800.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    if not AZSNAP.exists():
        parser.error(f"the azsnap console script is not installed next to {sys.executable}")
    figures = asyncio.run(run(args.policies, args.settle, args.ready_within))
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
