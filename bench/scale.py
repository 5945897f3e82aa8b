"""Scale benchmark: N disks on hourly policies against the throttling emulator, on emulated time; one JSON line out.

    python -m bench.scale --disks 1000 --hours 24 [--strategy azsnap|naive] [--rgs 10] [--keep-last 3] [--jitter 30m]
                          [--budget-scale 0.25] [--retry-after-s 1200] [--foreign-snapshots 24000]

The reconciler (not kopf) runs against the Azure emulator over HTTPS through the real SDK, both in one process on
a `looptime` event loop: the emulator's clock, the reconciler's clock and the pacer all read the loop's time, which
jumps ahead whenever every task waits on a timer. See docs/performance.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import looptime

from azsnap.clock import Clock, LoopClock
from azsnap.cloud.buckets import PacerConfig
from azsnap.cloud.pacer import Pacer
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import Emulator
from azsnap.emulator.config import TIMINGS
from azsnap.reconciler import Reconciler, ReconcilerConfig
from bench import naive
from bench.common import (
    EPOCH,
    CpuSplit,
    Member,
    Tally,
    bench_emulator_config,
    call_figures,
    deletes_needed,
    fold,
    make_cloud,
    make_fleet,
    peak_rss_mb,
    resource_figures,
    seed_foreign_snapshots,
    serving,
    slot_figures,
)


async def drive_azsnap(
    reconciler: Reconciler, clock: Clock, members: Sequence[Member], end: datetime
) -> dict[str, SnapshotPolicyStatus]:
    """Every policy as the operator runs it: reconcile, write the status, sleep until the report's next time.

    Returns each policy's last status (by name).
    """
    final: dict[str, SnapshotPolicyStatus] = {}

    async def one(member: Member) -> None:
        status = SnapshotPolicyStatus()
        while clock.now() < end:
            report = await reconciler.reconcile(member.policy, status)
            status = fold(status, report)
            final[member.policy.ref.name] = status
            if report.next_time >= end:
                return
            await asyncio.sleep(max(0.0, (report.next_time - clock.now()).total_seconds()))

    await asyncio.gather(*(one(member) for member in members))
    return final


async def run(
    disks: int,
    hours: int,
    strategy: str,
    rgs: int,
    keep_last: int,
    jitter: str | None,
    timing: str = "azure",
    budget_scale: float = 1.0,
    retry_after_s: int | None = None,
    foreign_snapshots: int = 0,
) -> dict[str, Any]:
    clock = LoopClock(EPOCH)
    emulator = Emulator(clock, bench_emulator_config(timing, budget_scale, retry_after_s))
    tally = Tally()
    tally.attach(emulator)
    members = make_fleet(emulator, disks, rgs, keep_last, jitter)
    seed_foreign_snapshots(emulator, members, foreign_snapshots)
    end = EPOCH + timedelta(hours=hours)
    gc.collect()
    rss_before = peak_rss_mb()
    cpu = CpuSplit()
    pacer = Pacer(PacerConfig(), clock=clock) if strategy == "azsnap" else None
    started = time.perf_counter()
    statuses: dict[str, SnapshotPolicyStatus] = {}
    async with serving(emulator) as (base_url, ca_bundle):
        cloud = make_cloud(base_url, ca_bundle, pacer)
        cpu.install()
        try:
            if strategy == "azsnap":
                reconciler = Reconciler(cloud, clock, ReconcilerConfig())
                statuses = await drive_azsnap(reconciler, clock, members, end)
            else:
                await asyncio.gather(*(naive.run_policy(cloud, clock, member, end) for member in members))
        finally:
            cpu.uninstall()
            await cloud.close()
    wall = time.perf_counter() - started
    slots = slot_figures(members, tally, hours)
    needed = deletes_needed(members, tally, hours, keep_last)
    figures: dict[str, Any] = {
        "disks": disks,
        "strategy": strategy,
        "hours": hours,
        "resource_groups": rgs,
        "keep_last": keep_last,
        "jitter": jitter,
        "emulator_timing": timing,
        "budget_scale": budget_scale,
        "retry_after_s": retry_after_s,
        "foreign_snapshots": foreign_snapshots,
        **slots,
        "slots_missed_reported": sum(status.missed_slots or 0 for status in statuses.values()),
        "longest_call_s": round(cloud.stats.longest_call_s, 1),
        **call_figures(tally, cloud, slots["slots_taken"], needed, hours),
        **resource_figures(cpu, disks, hours, rss_before),
        "wall_s": round(wall, 1),
        "emulated_s": round((clock.now() - EPOCH).total_seconds(), 1),
        "violations": len(emulator.violations),
    }
    if pacer is not None:
        snap = pacer.snapshot()
        figures["pacer"] = {
            "throttled_seen": snap.throttled,
            "missed": snap.missed,
            "backoffs": snap.backoffs,
            "corrections": snap.corrections,
            "waits": {kind: stats.waits for kind, stats in snap.kinds.items()},
            "grants": {kind: stats.grants for kind, stats in snap.kinds.items()},
        }
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=100)
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--strategy", choices=("azsnap", "naive"), default="azsnap")
    parser.add_argument(
        "--rgs", "--resource-groups", dest="rgs", type=int, default=10, help="resource groups the disks are spread over"
    )
    parser.add_argument("--keep-last", type=int, default=3, help="retention: keepLast of every policy")
    parser.add_argument("--jitter", default=None, help="schedule.jitter of every policy, e.g. 30m (default: none)")
    parser.add_argument(
        "--emulator-timing",
        choices=sorted(TIMINGS),
        default="azure",
        help="the emulator's named timing: azure (its default, as Azure answered) or a gentler one",
    )
    parser.add_argument(
        "--budget-scale", type=float, default=1.0, help="the emulator's budgets times this (the pacer is not told)"
    )
    parser.add_argument(
        "--retry-after-s",
        type=int,
        default=None,
        help="throttle in fixed windows and answer 429 with this Retry-After (default: token buckets)",
    )
    parser.add_argument(
        "--foreign-snapshots",
        type=int,
        default=0,
        help="snapshots not azsnap's, seeded round-robin as copies of the fleet's disks in their groups (default 0)",
    )
    args = parser.parse_args(argv)
    if args.foreign_snapshots < 0:
        parser.error("--foreign-snapshots must be 0 or more")
    loop = looptime.new_event_loop(start=0)
    try:
        result = loop.run_until_complete(
            run(
                args.disks,
                args.hours,
                args.strategy,
                args.rgs,
                args.keep_last,
                args.jitter,
                args.emulator_timing,
                args.budget_scale,
                args.retry_after_s,
                args.foreign_snapshots,
            )
        )
    finally:
        loop.close()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
