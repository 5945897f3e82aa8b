"""Cross-region copy benchmark: N hourly disks, each copied to one target region, on emulated time; one JSON line out.

    python -m bench.copies --disks 300 --hours 6 [--drain-minutes 60] [--copy-rate 20] [--rgs 10]

The reconciler (not kopf) runs the fleet of `bench.scale` with a copy target on every policy, against the Azure
emulator over HTTPS through the real SDK and the pacer, on a `looptime` loop. The emulator enforces Azure's copy
rules (100 copies per subscription and region, one per disk, creation order) and copies at `--copy-rate` percent
a minute after a 30 s queue. The run goes on `--drain-minutes` after the last counted hour so its copies can end;
every snapshot of the counted hours must then have a completed copy or be counted missed in status.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any, Final

import looptime

from azsnap.clock import LoopClock
from azsnap.cloud.buckets import PacerConfig
from azsnap.cloud.pacer import Pacer
from azsnap.domain import naming
from azsnap.domain.models import Policy, SnapshotPolicySpec
from azsnap.emulator import Emulator
from azsnap.reconciler import Reconciler, ReconcilerConfig
from bench.common import (
    EPOCH,
    SUBSCRIPTION,
    Member,
    Tally,
    bench_emulator_config,
    make_cloud,
    make_fleet,
    percentile,
    serving,
)
from bench.scale import drive_azsnap

TARGET_REGION: Final = "northeurope"
TARGET_GROUP: Final = "rg-dr"


def with_copies(members: Sequence[Member]) -> list[Member]:
    """The fleet's policies with one copy target each (the target keeps a day of copies)."""
    target = {"region": TARGET_REGION, "resourceGroup": TARGET_GROUP, "retention": {"keepLast": 24}}
    out = []
    for m in members:
        body = m.policy.spec.model_dump(by_alias=True, mode="json", exclude_none=True)
        spec = SnapshotPolicySpec.model_validate({**body, "copies": [target]})
        out.append(Member(m.disk, Policy(m.policy.ref, spec)))
    return out


async def run(disks: int, hours: int, drain_minutes: int, copy_rate: float, rgs: int) -> dict[str, Any]:
    clock = LoopClock(EPOCH)
    config = replace(bench_emulator_config("azure"), copy_rate_percent_per_minute=copy_rate)
    emulator = Emulator(clock, config)
    tally = Tally()
    tally.attach(emulator)
    members = with_copies(make_fleet(emulator, disks, rgs, keep_last=3))
    emulator.add_resource_group(SUBSCRIPTION, TARGET_GROUP, TARGET_REGION)
    counted_until = EPOCH + timedelta(hours=hours)
    end = counted_until + timedelta(minutes=drain_minutes)
    pacer = Pacer(PacerConfig(), clock=clock)
    started, cpu_started = time.perf_counter(), time.process_time()
    async with serving(emulator) as (base_url, ca_bundle):
        cloud = make_cloud(base_url, ca_bundle, pacer)
        try:
            statuses = await drive_azsnap(Reconciler(cloud, clock, ReconcilerConfig()), clock, members, end)
        finally:
            await cloud.close()
    now = clock.now()
    store = emulator.store
    copies = [s for k, s in store.snapshots.items() if k[1] == TARGET_GROUP.lower()]
    # The emulator's truth: when each copy really completed (queue end + its copy time), from its slot.
    true_lags = []
    complete_slots: set[tuple[str, str]] = set()
    for c in copies:
        slot_text = c.body["tags"].get(naming.TAG_SLOT)
        slot = naming.parse_slot(slot_text) if slot_text else None
        if slot is None or c.copy_minutes is None or c.copy_failed(now) or (c.completion(now) or 0) < 100.0:
            continue
        done_at = c.created + timedelta(minutes=c.copy_minutes)
        true_lags.append((done_at - slot).total_seconds())
        if slot < counted_until:
            complete_slots.add((c.body["tags"].get(naming.TAG_DISK_UID, ""), slot_text))
    entries = [(s.copies or [{}])[0] for s in statuses.values()]
    seen_lags = [float(x) for e in entries for x in e.get("recentLagSeconds", [])]
    missed = sum(int(e.get("copiesMissed", 0)) for e in entries)
    expected = disks * hours
    return {
        "disks": disks,
        "hours": hours,
        "drain_minutes": drain_minutes,
        "copy_rate_percent_per_minute": copy_rate,
        "snapshots_counted": expected,
        "copies_complete": len(complete_slots),
        "copies_missed": missed,
        "copies_unaccounted": expected - len(complete_slots) - missed,
        "copy_lag_seen_p50_s": percentile(seen_lags, 50),
        "copy_lag_seen_p99_s": percentile(seen_lags, 99),
        "copy_lag_seen_max_s": max(seen_lags, default=None),
        "copy_lag_true_p50_s": percentile(true_lags, 50),
        "copy_lag_true_p99_s": percentile(true_lags, 99),
        "lag_samples": len(seen_lags),
        "most_copies_running_at_once": _most_running(copies),
        "throttled_429": tally.count(status=429),
        "refused_409": tally.count(status=409),
        "violations": len(emulator.violations),
        "azure_calls": sum(tally.answers.values()),
        "snapshot_puts": tally.count("snapshots.put"),
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(time.process_time() - cpu_started, 1),
    }


def _most_running(copies: Sequence[Any]) -> int:
    """The most copies whose copy windows (queue end to completion) overlap, from the emulator's records."""
    edges = []
    for c in copies:
        if c.copy_minutes is None:
            continue
        failed_at = c.copy_stop if c.copy_error is not None else None
        stop = failed_at or c.created + timedelta(minutes=c.copy_minutes)
        edges += [(c.created - timedelta(seconds=30), 1), (stop, -1)]
    most = running = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        running += step
        most = max(most, running)
    return most


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.copies", description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=300)
    parser.add_argument("--hours", type=int, default=6, help="hours of hourly snapshots whose copies are counted")
    parser.add_argument("--drain-minutes", type=int, default=60, help="run on this long so the last copies can end")
    parser.add_argument("--copy-rate", type=float, default=20.0, help="the emulator's copy speed, percent a minute")
    parser.add_argument("--rgs", type=int, default=10, help="resource groups the disks are spread over")
    args = parser.parse_args(argv)
    loop = looptime.new_event_loop(start=0)
    try:
        result = loop.run_until_complete(run(args.disks, args.hours, args.drain_minutes, args.copy_rate, args.rgs))
    finally:
        loop.close()
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
