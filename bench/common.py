"""The benchmarks' rig: the emulator on loop time, the fleet of disks and policies, CPU attribution, the figures."""

from __future__ import annotations

import asyncio
import math
import resource
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.buckets import BucketSpec, PacerConfig
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.mapping import disk_from_azure
from azsnap.cloud.pacer import Pacer, PacerHooks
from azsnap.domain import naming, schedule
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import Emulator, EmulatorConfig
from azsnap.emulator.config import scaled_buckets
from azsnap.reconciler import StatusReport

SUBSCRIPTION: Final = "5e1f0000-0000-4000-8000-00000000be9c"
LOCATION: Final = "westeurope"
#: Loop time 0 is this instant: the first hourly slot is due the moment the run starts.
EPOCH: Final = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
CRON: Final = "0 * * * *"

#: Which side of the benchmark an event-loop callback works for; the emulator's server runs under "emulator".
SIDE: ContextVar[str] = ContextVar("bench_side")
EMULATOR_SIDE: Final = "emulator"


class CpuSplit:
    """Process CPU split between the emulator and everything else (the reconciler side).

    Every event-loop callback runs in a `contextvars.Context`; the emulator's server is started under
    `SIDE=emulator`, so its accept, TLS, HTTP-parsing and handler callbacks inherit that context. Each such
    callback's `time.process_time()` is charged to the emulator; all the rest (the loop itself included) to the
    reconciler side.
    """

    def __init__(self) -> None:
        self.emulator_s = 0.0
        self._start = 0.0
        self._original: Callable[[asyncio.Handle], None] | None = None

    def install(self) -> None:
        original = asyncio.Handle._run  # type: ignore[attr-defined]
        split = self

        def timed_run(handle: asyncio.Handle) -> None:
            if handle._context.get(SIDE) != EMULATOR_SIDE:  # type: ignore[attr-defined]
                original(handle)
                return
            started = time.process_time()
            try:
                original(handle)
            finally:
                split.emulator_s += time.process_time() - started

        self._original = original
        asyncio.Handle._run = timed_run  # type: ignore[attr-defined]
        self._start = time.process_time()
        self.emulator_s = 0.0

    def uninstall(self) -> None:
        if self._original is not None:
            asyncio.Handle._run = self._original  # type: ignore[attr-defined]
            self._original = None

    @property
    def total_s(self) -> float:
        return time.process_time() - self._start

    @property
    def reconciler_s(self) -> float:
        return self.total_s - self.emulator_s


@dataclass
class Tally:
    """What the emulator answered, kept small: counts by operation and status, and when each create was accepted."""

    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    accepted: dict[str, datetime] = field(default_factory=dict)  # snapshot name (lower case) → first accepted
    last_sent: dict[str, datetime] = field(default_factory=dict)  # snapshot name (lower case) → latest PUT answered

    def attach(self, emulator: Emulator) -> None:
        clock = emulator.clock

        def record(method: str, path: str, status: int, operation: str) -> None:
            self.answers[(operation, status)] += 1
            if operation == "snapshots.put":
                name = path.rsplit("/", 1)[-1].lower()
                self.last_sent[name] = clock.now()
                if 200 <= status < 300:
                    self.accepted.setdefault(name, clock.now())

        emulator.record = record  # type: ignore[method-assign]  # the recorder keeps every request; we keep counts

    def count(self, operation: str | None = None, status: int | None = None) -> int:
        return sum(
            n
            for (op, st), n in self.answers.items()
            if (operation is None or op == operation) and (status is None or st == status)
        )


@dataclass(frozen=True)
class Member:
    """One disk of the fleet and the policy that snapshots it."""

    disk: Disk
    policy: Policy


def make_fleet(emulator: Emulator, disks: int, rgs: int, keep_last: int, jitter: str | None = None) -> list[Member]:
    """Seed `disks` disks round-robin over `rgs` resource groups, each with an hourly keepLast policy."""
    members = []
    for i in range(disks):
        raw = emulator.seed_disk(SUBSCRIPTION, f"rg-{i % rgs:02d}", f"disk-{i:05d}", location=LOCATION)
        disk = disk_from_azure(raw)
        sched: dict[str, Any] = {"cron": CRON}
        if jitter:
            sched["jitter"] = jitter
        spec = SnapshotPolicySpec.model_validate(
            {"disk": {"id": disk.id}, "schedule": sched, "retention": {"keepLast": keep_last}}
        )
        members.append(Member(disk, Policy(PolicyRef("bench", f"p-{i:05d}", f"uid-{i:05d}", 1), spec)))
    return members


def seed_foreign_snapshots(emulator: Emulator, members: Sequence[Member], count: int) -> int:
    """Seed `count` snapshots that are not azsnap's: untagged incremental copies of the fleet's disks, round-robin.

    Each lands in its disk's resource group, made an hour apart per disk (so Azure's per-disk rate limit holds)
    and finished before the run starts. Returns how many were seeded.
    """
    store = emulator.store
    rounds = math.ceil(count / len(members)) if count else 0
    for j in range(count):
        disk = members[j % len(members)].disk
        made = EPOCH - timedelta(hours=rounds - j // len(members))
        body = {
            "location": disk.location,
            "tags": {"owner": "someone-else"},
            "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": disk.id}, "incremental": True},
        }
        store.create_snapshot(made, SUBSCRIPTION, disk.resource_group, f"manual-{j:06d}", body)
    store.settle(EPOCH)
    return count


def fold(status: SnapshotPolicyStatus, report: StatusReport) -> SnapshotPolicyStatus:
    """What the kopf handler does with a report: write its fields over the previous status."""
    merged = {**status.model_dump(by_alias=True, exclude_none=True, mode="json"), **report.status}
    return SnapshotPolicyStatus.model_validate({k: v for k, v in merged.items() if v is not None})


def bench_emulator_config(
    timing: str = "azure", budget_scale: float = 1.0, retry_after_s: int | None = None
) -> EmulatorConfig:
    """Azure's budgets switched on (the emulator's defaults), pages of 100, and the named timing (default Azure's).

    `budget_scale` multiplies every Compute budget (the pacer is not told); `retry_after_s` switches the emulator to
    fixed windows whose 429s carry `Retry-After: retry_after_s`.
    """
    return EmulatorConfig.named(
        timing,
        throttling=True,
        buckets=scaled_buckets(budget_scale),
        throttle_mode="token" if retry_after_s is None else "window",
        throttle_retry_after_s=retry_after_s,
    )


@asynccontextmanager
async def serving(emulator: Emulator) -> AsyncIterator[tuple[str, str]]:
    """Serve the emulator over HTTPS with its callbacks marked as the emulator's side; yields (base URL, CA)."""
    token = SIDE.set(EMULATOR_SIDE)
    try:
        server_cm = emulator.serve(host="127.0.0.1", port=0)
        server = await server_cm.__aenter__()
    finally:
        SIDE.reset(token)
    try:
        yield server.base_url, server.ca_bundle
    finally:
        await server_cm.__aexit__(None, None, None)


def make_cloud(base_url: str, ca_bundle: str, pacer: Pacer | None) -> AzureCloud:
    """The production Azure adapter, over the real SDK; hooked to `pacer` when given."""
    options = AzureOptions(base_url=base_url, ca_bundle=ca_bundle, polling_interval=1.0, lro_timeout=60.0)
    if pacer is None:
        return AzureCloud(StaticTokenCredential(), options)
    hooks = PacerHooks(pacer)
    return AzureCloud(
        StaticTokenCredential(), options, before_request=hooks.before_request, on_response=hooks.on_response
    )


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def ideal_lateness(dues: Iterable[float], specs: Sequence[BucketSpec]) -> list[float]:
    """Each create's wait under Azure's full create buckets (no margin), served in due order, paced perfectly.

    A create goes at the first instant every bucket holds a token. For N creates due at one instant this is
    `azsnap.cloud.buckets.theoretical_best_lateness`; here due times may differ (jitter, several rounds).
    """
    levels = [float(spec.capacity) for spec in specs]
    at = -math.inf
    waits = []
    for due in sorted(dues):
        start = max(due, at)
        elapsed = 0.0 if at == -math.inf else start - at
        levels = [min(spec.capacity, level + elapsed * spec.rate) for spec, level in zip(specs, levels, strict=True)]
        need = max([0.0, *((1.0 - level) / spec.rate for spec, level in zip(specs, levels, strict=True))])
        if need > 0:
            levels = [min(spec.capacity, level + need * spec.rate) for spec, level in zip(specs, levels, strict=True)]
        levels = [level - 1.0 for level in levels]
        at = start + need
        waits.append(at - due)
    return waits


def slot_figures(members: Sequence[Member], tally: Tally, hours: int) -> dict[str, Any]:
    """Slots due, taken, late and missed, and lateness against the ideal, from the emulator's accepted creates."""
    lateness: list[float] = []
    dues: list[float] = []
    late = missed = sent_late = 0
    for member in members:
        sched = member.policy.spec.schedule
        offset = schedule.slot_offset(sched, member.disk.id)
        for k in range(hours):
            slot = EPOCH + timedelta(hours=k)
            due = slot + offset
            dues.append((due - EPOCH).total_seconds())
            name = naming.snapshot_name(member.disk.name, member.policy.ref.uid, slot).lower()
            sent = tally.last_sent.get(name)
            if sent is not None and sent >= due + sched.starting_deadline:
                sent_late += 1
            taken = tally.accepted.get(name)
            if taken is None:
                missed += 1
                continue
            seconds = (taken - due).total_seconds()
            lateness.append(seconds)
            if taken >= due + sched.starting_deadline:
                late += 1
    ideal = ideal_lateness(dues, PacerConfig().create)
    p99 = percentile(lateness, 99)
    best_p99 = percentile(ideal, 99)
    return {
        "slots_due": len(dues),
        "slots_taken": len(lateness),
        "slots_taken_late": late,
        "slots_late": sent_late,
        "slots_missed": missed,
        "lateness_p50_s": _round(percentile(lateness, 50)),
        "lateness_p99_s": _round(p99),
        "lateness_max_s": _round(max(lateness, default=None)),
        "theoretical_best_p50_s": _round(percentile(ideal, 50)),
        "theoretical_best_p99_s": _round(best_p99),
        "p99_ratio": None if p99 is None or not best_p99 else round(p99 / best_p99, 4),
    }


def call_figures(tally: Tally, cloud: AzureCloud, slots_taken: int, deletes_needed: int, hours: int) -> dict[str, Any]:
    """Azure calls by kind (as the emulator answered them), per snapshot taken, and the 429s."""
    by_kind: Counter[str] = Counter()
    for (operation, _), n in tally.answers.items():
        by_kind[operation] += n
    writes = by_kind["snapshots.put"] + by_kind["snapshots.delete"]
    lists = sum(n for (op, _), n in cloud.stats.calls.items() if op == "snapshots.list")
    taken = max(1, slots_taken)
    return {
        "throttled_429": tally.count(status=429),
        "list_calls": lists,
        "list_pages": by_kind["snapshots.list"],
        "list_calls_per_round": round(lists / max(1, hours), 2),
        "list_pages_per_round": round(by_kind["snapshots.list"] / max(1, hours), 2),
        "write_calls": writes,
        "deletes_needed": deletes_needed,
        "writes_per_snapshot": round(writes / max(1, slots_taken + deletes_needed), 4),
        "creates_per_snapshot": round(by_kind["snapshots.put"] / taken, 4),
        "calls_by_kind": dict(sorted(by_kind.items())),
        "calls_per_snapshot": {op: round(n / taken, 4) for op, n in sorted(by_kind.items())},
    }


def deletes_needed(members: Sequence[Member], tally: Tally, hours: int, keep_last: int) -> int:
    """Snapshots retention had to delete by the end: per disk, those taken beyond keepLast."""
    total = 0
    for member in members:
        taken = sum(
            1
            for k in range(hours)
            if naming.snapshot_name(member.disk.name, member.policy.ref.uid, EPOCH + timedelta(hours=k)).lower()
            in tally.accepted
        )
        total += max(0, taken - keep_last)
    return total


def resource_figures(cpu: CpuSplit, disks: int, hours: int, rss_before_mb: float) -> dict[str, Any]:
    """CPU of each side and peak RSS, scaled per 1,000 disks per emulated day."""
    scale = (disks / 1000) * (hours / 24)
    peak = peak_rss_mb()
    return {
        "cpu_s": round(cpu.reconciler_s, 2),
        "emulator_cpu_s": round(cpu.emulator_s, 2),
        "cpu_s_per_1000_disks_day": round(cpu.reconciler_s / scale, 2) if scale else None,
        "peak_rss_mb": round(peak, 1),
        "rss_before_run_mb": round(rss_before_mb, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
