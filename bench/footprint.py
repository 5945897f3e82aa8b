"""What one operator replica costs at N policies: memory, CPU, logs, metrics and API calls; one JSON line out.

    python -m bench.footprint --policies 1000 [--snapshots-per-disk K] [--top-of-hour] [--idle 120]

The operator is `azsnap run` in its own process, configured only by environment variables (as in the pod), at the
chart's default log level (INFO) and JSON logs. The Kubernetes API stand-in (counting requests by verb) and the Azure
emulator (its budgets off: this is not a throttling test) serve it over loopback from two more processes, one each
(`bench.footprint_sides`), on the real wall clock. N policies (one disk each, hourly, keepLast 3) exist before the operator starts, as after a restart of
a replica that serves a whole cluster; `--snapshots-per-disk K` first puts K snapshots azsnap did not make on each
disk's resource group, so every list is K times longer. The pacer is on, as in the chart: the N first snapshots
are spread over Azure's create budget (about 1,000 in 10 minutes); `--no-pacing` sends them at once.

The run waits until every policy is Ready and the operator is idle (a 5-second window with under 1% of a core),
measures `--idle` seconds of idle running, scrapes `/metrics` once, and with `--top-of-hour` then asks every
policy for a snapshot at once (the on-demand annotation), as at the top of the hour, and waits until each has
taken it. Per-policy-hour figures are the idle window's, scaled.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import psutil

from bench.footprint_sides import Side, azure_side, kube_side
from bench.kopf_overhead import NAMESPACE
from bench.operator_rss import AZSNAP, free_port, rss_mib, until_live

__all__ = ["main", "run"]

#: The stand-ins are asked about the run (all Ready? one more snapshot each?) this many seconds apart.
_ASK_EVERY: Final = 5
#: The operator is idle when a window of this many seconds used less than `_IDLE_SHARE` of a core.
_IDLE_WINDOW_S: Final = 5.0
_IDLE_SHARE: Final = 0.01


@dataclass
class _Operator:
    """The running `azsnap run` child: its process, log file and endpoints; samples its RSS as it goes."""

    process: psutil.Process
    log: Path
    metrics_url: str
    peak_rss: float = 0.0

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def sample(self) -> float:
        rss = rss_mib(self.process)
        self.peak_rss = max(self.peak_rss, rss)
        return rss

    def log_size(self) -> tuple[int, int]:
        data = self.log.read_bytes()
        return data.count(b"\n"), len(data)


def _writes(by_verb: dict[str, int]) -> int:
    return sum(by_verb.values())


async def _wait(op: _Operator, done: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Sample RSS once a second, and ask `done()` every `_ASK_EVERY` seconds until it is true; RuntimeError after
    `within` seconds."""
    started = time.monotonic()
    tick = 0
    while tick % _ASK_EVERY or not await done():
        op.sample()
        if time.monotonic() - started > within:
            raise RuntimeError(f"{what} not reached within {within:.0f} s")
        await asyncio.sleep(1)
        tick += 1


async def _until_idle(op: _Operator, within: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < within:
        before = op.cpu_s()
        await asyncio.sleep(_IDLE_WINDOW_S)
        op.sample()
        if op.cpu_s() - before < _IDLE_WINDOW_S * _IDLE_SHARE:
            return


async def _scrape(op: _Operator) -> tuple[int, float, int]:
    """Series in one `/metrics` answer, the operator's CPU seconds around it, and its bytes."""
    before = op.cpu_s()
    async with aiohttp.ClientSession() as http, http.get(op.metrics_url) as answer:
        text = await answer.text()
    await asyncio.sleep(0.5)  # the CPU counters of a process are updated on the scheduler's tick
    series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
    return series, op.cpu_s() - before, len(text.encode())


async def run(
    policies: int,
    *,
    snapshots_per_disk: int = 0,
    top_of_hour: bool = False,
    idle_s: float = 120.0,
    within: float = 3600,
    log_file: Path | None = None,
    pacing: bool = True,
) -> dict[str, Any]:
    """Start the operator over N existing policies, measure start, idle, a scrape and optionally a round; figures."""
    azure, kube = Side(azure_side, policies, snapshots_per_disk), Side(kube_side, policies)
    liveness, metrics_port = free_port(), free_port()
    try:
        server, cluster = await azure.started(within), await kube.started(within)
        env = {
            **os.environ,
            "KUBECONFIG": cluster["kubeconfig"],
            "AZSNAP_CREDENTIAL": "static-token",
            "AZSNAP_ARM_ENDPOINT": server["base_url"],
            "AZSNAP_CA_BUNDLE": server["ca_bundle"],
            "AZSNAP_NAMESPACES": NAMESPACE,
            "AZSNAP_METRICS_PORT": str(metrics_port),
            "AZSNAP_LOG_FORMAT": "json",
            "AZSNAP_LOG_LEVEL": "INFO",
            "AZSNAP_PACING": "true" if pacing else "false",
        }
        with tempfile.TemporaryDirectory() as tmp:
            log_path = log_file or Path(tmp) / "operator.log"
            log = log_path.open("wb")
            started = time.monotonic()
            child = await asyncio.create_subprocess_exec(
                str(AZSNAP), "run", f"--liveness=http://127.0.0.1:{liveness}/healthz", env=env, stdout=log, stderr=log
            )
            op = _Operator(psutil.Process(child.pid), log_path, f"http://127.0.0.1:{metrics_port}/metrics")
            try:
                figures = await _measure(op, child, kube, azure, policies, liveness, started, within)
                figures.update(await _idle(op, policies, idle_s))
                series, scrape_cpu, scrape_bytes = await _scrape(op)
                figures.update(metrics_series=series, scrape_cpu_s=round(scrape_cpu, 2), scrape_bytes=scrape_bytes)
                if top_of_hour:
                    figures.update(await _round(op, kube, azure, policies, within))
            finally:
                child.terminate()
                await asyncio.wait_for(child.wait(), 120)
                log.close()
    finally:
        azure.stop()
        kube.stop()
    return {
        "policies": policies,
        "snapshots_per_disk": snapshots_per_disk,
        "pacing": pacing,
        **figures,
        "peak_rss_mib": round(op.peak_rss, 1),
    }


async def _measure(
    op: _Operator,
    child: asyncio.subprocess.Process,
    kube: Side,
    azure: Side,
    policies: int,
    liveness: int,
    started: float,
    within: float,
) -> dict[str, Any]:
    """From the operator's start until every policy is Ready and the operator is idle."""
    await until_live(f"http://127.0.0.1:{liveness}/healthz", child, 300)

    async def all_ready() -> bool:
        return bool(await kube.ask("ready") == policies)

    await _wait(op, all_ready, within, "every policy Ready")
    ready_s = time.monotonic() - started
    await _until_idle(op, within)
    lines, size = op.log_size()
    writes = await kube.ask("writes")
    return {
        "seconds_to_all_ready": round(ready_s, 1),
        "cpu_s_to_settle": round(op.cpu_s(), 1),
        "log_lines_at_start": lines,
        "log_bytes_at_start": size,
        "k8s_writes_per_policy_at_start": round(_writes(writes) / policies, 2),
        "k8s_writes_at_start": writes,
        "azure_calls_per_policy_at_start": round(await azure.ask("requests") / policies, 2),
    }


async def _idle(op: _Operator, policies: int, idle_s: float) -> dict[str, Any]:
    cpu, (lines, _) = op.cpu_s(), op.log_size()
    until = time.monotonic() + idle_s
    while time.monotonic() < until:
        await asyncio.sleep(1)
        steady = op.sample()
    per_policy_hour = 3600 / idle_s / policies
    return {
        "steady_rss_mib": round(steady, 1),
        "idle_cpu_ms_per_policy_hour": round((op.cpu_s() - cpu) * 1000 * per_policy_hour, 2),
        "log_lines_per_policy_hour": round((op.log_size()[0] - lines) * per_policy_hour, 3),
    }


async def _round(op: _Operator, kube: Side, azure: Side, policies: int, within: float) -> dict[str, Any]:
    """Every policy asks for a snapshot at once; until each has one more."""
    before, cpu, started = await azure.ask("snapshots"), op.cpu_s(), time.monotonic()
    await kube.ask("annotate", str(int(time.time())))

    async def each_took_one() -> bool:
        return bool(await azure.ask("snapshots") >= before + policies)

    await _wait(op, each_took_one, within, "a snapshot for every policy")
    taken = time.monotonic() - started
    await _until_idle(op, within)
    return {"round_seconds": round(taken, 1), "round_cpu_s": round(op.cpu_s() - cpu, 1)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint", description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=1000, help="disks, one hourly keepLast-3 policy each")
    parser.add_argument("--snapshots-per-disk", type=int, default=0, help="snapshots not azsnap's, per disk")
    parser.add_argument("--top-of-hour", action="store_true", help="then ask every policy for a snapshot at once")
    parser.add_argument("--idle", type=float, default=120.0, help="seconds of idle running measured")
    parser.add_argument(
        "--no-pacing",
        action="store_true",
        help="AZSNAP_PACING=false: the first snapshots are not spread over Azure's budget",
    )
    parser.add_argument("--log", type=Path, help="keep the operator's log in this file")
    parser.add_argument("--within", type=float, default=3600.0, help="give up on a phase after this many seconds")
    args = parser.parse_args(argv)
    if not AZSNAP.exists():
        parser.error(f"the azsnap console script is not installed next to {sys.executable}")
    if args.policies < 1 or args.snapshots_per_disk < 0 or args.idle <= 0:
        parser.error("--policies must be at least 1, --snapshots-per-disk at least 0, --idle above 0")
    figures = asyncio.run(
        run(
            args.policies,
            snapshots_per_disk=args.snapshots_per_disk,
            top_of_hour=args.top_of_hour,
            idle_s=args.idle,
            within=args.within,
            log_file=args.log,
            pacing=not args.no_pacing,
        )
    )
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
