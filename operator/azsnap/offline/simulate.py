"""`azsnap simulate`: the real reconciler and Azure SDK against an in-process Azure emulator, on one emulated clock.

Each simulated disk gets its own copy of the policy (its own UID), re-targeted to `disk-<i>` in the demo resource
group. The loop advances a `ManualClock` to the earliest wake-up any policy asked for (`StatusReport.next_time`),
reconciles the policies that are due, and records what the emulator then holds. Nothing waits on the wall clock:
long-running operations finish at once in emulated time, the SDK polls without pausing, and azure-core does not
retry (a 429 surfaces as `Throttled` at once and the reconciler's own retry time carries the emulated wait).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import yaml

from azsnap.clock import ManualClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.interface import SnapshotRequest
from azsnap.domain import naming
from azsnap.domain.models import DiskRef, Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Limits, Snapshot
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.validation import FieldError, validate_manifest
from azsnap.emulator import (
    DEMO_LOCATION,
    DEMO_RESOURCE_GROUP,
    DEMO_SUBSCRIPTION,
    Emulator,
    EmulatorConfig,
    RecordedRequest,
)
from azsnap.offline.simulate_copies import COPY_LIST_FRESHNESS, CopyWatch
from azsnap.offline.simulate_faults import FAULT_PROFILES, Bursts
from azsnap.reconciler import Observer, Reconciler, ReconcilerConfig, StatusReport

__all__ = [
    "DiskTrace",
    "SimulationOptions",
    "SimulationRun",
    "load_policy_file",
    "simulate",
]

#: Snapshots that are not the policy's, seeded next to each disk's: the simulation checks that they survive.
BYSTANDER_PREFIXES: Final = ("manual-", "other-policy-")
#: A run stops with an error rather than loop for ever if a policy keeps asking to be woken at once.
_MAX_WAKEUPS_PER_DAY: Final = 20_000


@dataclass(frozen=True)
class SimulationOptions:
    """What to simulate and the assumptions behind the size estimate (see docs/simulate.md)."""

    start: datetime
    disks: int = 1
    days: int = 30
    faults: str = "none"
    #: Share of a disk's written data that changes per day (the incremental snapshots bill only changes).
    change_rate: float = 0.02
    #: Written data as a share of the provisioned size (what the first snapshot bills).
    written_fraction: float = 0.4
    disk_size_gb: int = 128
    disk_sku: str = "StandardSSD_LRS"
    #: A resource group is listed (and a disk read) again at most this often, and an idle policy sleeps at most
    #: this long; in between the reconciler works from its own record of its writes. The operator re-lists every
    #: 30s and wakes at least hourly to notice changes made behind its back: here nothing else writes, and listing
    #: is the costly call for the SDK.
    relist: timedelta = timedelta(hours=6)
    seed: int = 0
    limits: Limits = field(default_factory=Limits)

    def problems(self) -> list[str]:
        """What is wrong with these options, each naming its flag; empty when they are usable."""
        found: list[str] = []
        if self.start.tzinfo is None:
            found.append("--start: give a time zone, e.g. 2026-03-02T00:00:00Z")
        if not 1 <= self.disks <= 100:
            found.append(f"--disks: between 1 and 100, got {self.disks}")
        if not 1 <= self.days <= 800:
            found.append(f"--days: between 1 and 800, got {self.days}")
        if self.faults not in FAULT_PROFILES:
            found.append(f"--faults: one of {', '.join(FAULT_PROFILES)}, got {self.faults!r}")
        if not 0.0 <= self.change_rate <= 1.0:
            found.append(f"--change-rate: a share of the written data per day, 0 to 1, got {self.change_rate}")
        if not 0.0 < self.written_fraction <= 1.0:
            found.append(f"--written: a share of the disk size, above 0 and at most 1, got {self.written_fraction}")
        if self.disk_size_gb < 1:
            found.append(f"--disk-size-gb: at least 1, got {self.disk_size_gb}")
        if self.relist < timedelta(seconds=30):
            found.append("--list-every: at least 30s (the operator's own list freshness)")
        return found


@dataclass
class DiskTrace:
    """One simulated disk and its policy: what happened to its snapshots, wake-up by wake-up."""

    name: str
    disk_id: str
    policy: Policy
    written_gb: float
    status: SnapshotPolicyStatus = field(default_factory=SnapshotPolicyStatus)
    next_time: datetime | None = None
    reconciles: int = 0
    #: (time, snapshots of the policy held) after every wake-up of the simulation.
    samples: list[tuple[datetime, int]] = field(default_factory=list)
    #: (time seen, name, slot) of every snapshot of the policy that appeared.
    created: list[tuple[datetime, str, datetime | None]] = field(default_factory=list)
    #: (time seen gone, name).
    deleted: list[tuple[datetime, str]] = field(default_factory=list)
    #: Names of the policy's snapshots held now, with their slots.
    held: dict[str, datetime | None] = field(default_factory=dict)
    #: The policy's snapshots at the end, as the SDK lists them.
    final: list[Snapshot] = field(default_factory=list)
    last_report: StatusReport | None = None


@dataclass(frozen=True)
class SimulationRun:
    """A finished simulation: the traces per disk and what the emulator saw."""

    name: str
    spec: SnapshotPolicySpec
    options: SimulationOptions
    end: datetime
    disks: list[DiskTrace]
    #: Every request the emulator answered while the simulation ran (LRO polls and failed attempts included).
    requests: list[RecordedRequest]
    #: Per-disk limits the emulator saw broken (expected: none).
    violations: list[str]
    #: Snapshots of someone else seeded before the run, and those of them still there at the end.
    bystanders: tuple[str, ...]
    bystanders_left: tuple[str, ...]
    wakeups: int
    #: What the copies did, for a policy with copy targets (offline/simulate_copies.py).
    copies: CopyWatch | None = None


def load_policy_file(path: Path) -> tuple[SnapshotPolicySpec | None, str, list[FieldError]]:
    """Read one SnapshotPolicy manifest: (spec, metadata.name, problems); the spec only when there is no problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, "", [FieldError(str(path), f"cannot read the file ({exc.strerror or exc})")]
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        return None, "", [FieldError(str(path), f"not valid YAML ({exc})")]
    if len(documents) != 1:
        found = f"{len(documents)} documents"
        return None, "", [FieldError(str(path), f"expected exactly one SnapshotPolicy manifest, found {found}")]
    doc = documents[0]
    spec, errors = validate_manifest(doc)
    metadata = doc.get("metadata") if isinstance(doc, dict) else None
    name = str(metadata.get("name") or "policy") if isinstance(metadata, dict) else "policy"
    return spec, name, errors


def _disk_id(name: str) -> str:
    return (
        f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{DEMO_RESOURCE_GROUP}"
        f"/providers/Microsoft.Compute/disks/{name}"
    )


def _policies(spec: SnapshotPolicySpec, name: str, count: int) -> list[tuple[str, Policy]]:
    """The policy re-targeted to `disk-0..`, each copy with a UID of its own (as separate objects would have)."""
    made = []
    for i in range(count):
        disk = f"disk-{i}"
        retargeted = spec.model_copy(update={"disk": DiskRef(id=_disk_id(disk))})
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"azsnap-simulate/{name}/{disk}"))
        made.append((disk, Policy(PolicyRef("default", f"{name}-{disk}", uid), retargeted)))
    return made


def _fold(status: SnapshotPolicyStatus, report: StatusReport) -> SnapshotPolicyStatus:
    """What the kopf handler does with a report: its fields written over the previous status."""
    merged = {**status.model_dump(by_alias=True, exclude_none=True, mode="json"), **report.status}
    return SnapshotPolicyStatus.model_validate({k: v for k, v in merged.items() if v is not None})


async def _seed_bystanders(cloud: AzureCloud, rg: str, trace: DiskTrace) -> list[str]:
    """A hand-made snapshot and one of another azsnap policy, next to the disk's own: azsnap must leave both."""
    other = {
        naming.TAG_MANAGED_BY: naming.MANAGED_BY_VALUE,
        naming.TAG_POLICY_UID: "another-policy",
        naming.TAG_POLICY: "default/another-policy",
    }
    names = []
    for prefix, tags in zip(BYSTANDER_PREFIXES, ({"owner": "someone-else"}, other), strict=True):
        request = SnapshotRequest(DEMO_SUBSCRIPTION, rg, prefix + trace.name, DEMO_LOCATION, trace.disk_id, tags)
        names.append((await cloud.create_snapshot(request)).name)
    return names


def _observe(emulator: Emulator, rg: str, traces: list[DiskTrace], now: datetime) -> None:
    """Record, per disk, the policy's snapshots that appeared or went since the last look (from the emulator)."""
    by_uid: dict[str, dict[str, datetime | None]] = {}
    for body in emulator.snapshots(DEMO_SUBSCRIPTION, rg):
        tags = body.get("tags") or {}
        uid = naming.tag(tags, naming.TAG_POLICY_UID)
        if uid is not None:
            slot_text = naming.tag(tags, naming.TAG_SLOT)
            by_uid.setdefault(uid, {})[str(body["name"])] = naming.parse_slot(slot_text) if slot_text else None
    for trace in traces:
        now_held = by_uid.get(trace.policy.ref.uid, {})
        for name, slot in now_held.items():
            if name not in trace.held:
                trace.created.append((now, name, slot))
        for name in trace.held:
            if name not in now_held:
                trace.deleted.append((now, name))
        trace.held = dict(now_held)
        trace.samples.append((now, len(now_held)))


async def simulate(spec: SnapshotPolicySpec, options: SimulationOptions, *, name: str = "policy") -> SimulationRun:
    """Run the policy on `options.disks` emulated disks for `options.days` days; ValueError for bad options."""
    problems = options.problems()
    if problems:
        raise ValueError("; ".join(problems))
    profile = FAULT_PROFILES[options.faults]
    limits = options.limits
    clock = ManualClock(options.start - timedelta(days=1))
    emulator = Emulator(
        clock,
        EmulatorConfig(
            lro_duration=timedelta(0),
            poll_retry_after_s=0,
            seed=options.seed,
            window_creates=limits.window_creates,
            window=limits.window,
            per_disk_cap=limits.per_disk_cap,
            max_pending_copies=limits.max_pending_copies,
        ),
    )
    rg = spec.snapshot.resource_group or DEMO_RESOURCE_GROUP
    traces: list[DiskTrace] = []
    for disk, policy in _policies(spec, name, options.disks):
        written = round(options.disk_size_gb * options.written_fraction, 3)
        emulator.seed_disk(
            DEMO_SUBSCRIPTION,
            DEMO_RESOURCE_GROUP,
            disk,
            sku=options.disk_sku,
            size_gb=options.disk_size_gb,
            written_gb=written,
        )
        traces.append(DiskTrace(disk, _disk_id(disk), policy, written))
    # The emulator knows a resource group once a disk is in it; a separate snapshot group is made here.
    emulator.store.groups.setdefault((DEMO_SUBSCRIPTION.lower(), rg.lower()), DEMO_LOCATION)
    watch = CopyWatch.begin(emulator, spec, limits, options.start)  # the copy targets' groups, in their regions
    end = options.start + timedelta(days=options.days)

    async with emulator.serve() as server:
        options_ = AzureOptions(
            base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=0.0, retry_total=0
        )
        cloud = AzureCloud(StaticTokenCredential(), options_)
        async with cloud:
            bystanders: list[str] = []
            for trace in traces:
                bystanders += await _seed_bystanders(cloud, rg, trace)
            clock.set(options.start)
            first_request = len(emulator.requests)
            fresh = options.relist if watch is None else min(options.relist, COPY_LIST_FRESHNESS)
            observer = Observer(cloud, clock, freshness=fresh, disk_freshness=options.relist)
            config = ReconcilerConfig(limits=limits, list_freshness=fresh, max_sleep=options.relist)
            reconciler = Reconciler(cloud, clock, config, observer=observer)
            for rule in profile.rules:
                emulator.add_fault(rule)
            bursts = Bursts(emulator, profile, options.start, options.seed)
            wakeups = await _run(reconciler, emulator, clock, traces, rg, end, bursts, options.days, watch)
            requests = emulator.requests[first_request:]
            violations = emulator.violations
            # The final look goes through the SDK too, without faults or throttling, and is not counted.
            emulator.clear_faults()
            emulator.throttler.enabled = False
            clock.set(end)
            listed = await cloud.list_snapshots(DEMO_SUBSCRIPTION, rg)
            for trace in traces:
                seen = await cloud.get_disk(trace.disk_id)
                trace.final = [s for s in listed if seen is not None and naming.is_owned(s, trace.policy.ref, seen)]
            left = {s.name for s in listed}
    return SimulationRun(
        name=name,
        spec=spec,
        options=options,
        end=end,
        disks=traces,
        requests=requests,
        violations=violations,
        bystanders=tuple(bystanders),
        bystanders_left=tuple(b for b in bystanders if b in left),
        wakeups=wakeups,
        copies=watch,
    )


async def _run(
    reconciler: Reconciler,
    emulator: Emulator,
    clock: ManualClock,
    traces: list[DiskTrace],
    rg: str,
    end: datetime,
    bursts: Bursts,
    days: int,
    watch: CopyWatch | None = None,
) -> int:
    """Wake the policies in turn until the next wake-up lies past `end`; returns the number of wake-ups."""
    wakeups = 0
    now = clock.now()
    for trace in traces:
        trace.next_time = now
    while True:
        due = min(t.next_time or now for t in traces)
        if due > end:
            return wakeups
        wakeups += 1
        if wakeups > _MAX_WAKEUPS_PER_DAY * days:
            raise RuntimeError(f"the simulation woke more than {_MAX_WAKEUPS_PER_DAY} times per emulated day")
        clock.set(due)
        bursts.tick(due)
        # One policy after another (the operator runs them concurrently): the order of requests, and so which
        # of them a fault hits, is then the same on every run with the same seed.
        for trace in traces:
            if trace.next_time is not None and trace.next_time <= due:
                report = await reconciler.reconcile(trace.policy, trace.status)
                trace.status = _fold(trace.status, report)
                trace.last_report = report
                trace.reconciles += 1
                trace.next_time = max(report.next_time, due + timedelta(seconds=1))
        _observe(emulator, rg, traces, due)
        if watch is not None:
            watch.observe(emulator, traces, due)
