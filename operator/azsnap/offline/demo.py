"""`azsnap demo`: the real operator against the in-process Azure and Kubernetes emulators, on emulated time.

Everything runs on one `looptime` event loop: the Azure emulator (HTTPS, throttling and Azure's per-disk limits on),
the Kubernetes emulator (HTTP), kopf with azsnap's own handlers, and the SDK adapter between them. The emulators,
the reconciler and kopf's timers all read the loop's clock, which looptime moves straight to the next thing that
is due; the demo holds it back to `speed` emulated hours per real second so that a person can watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

import yaml

from azsnap.cloud.azure import AzureCloud
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.domain import naming
from azsnap.domain.copies import ROLE_COPY, TAG_ROLE
from azsnap.domain.models import API_GROUP, API_VERSION, KIND, PLURAL
from azsnap.emulator import Emulator, EmulatorConfig
from azsnap.offline.demo_claims import start_claims
from azsnap.offline.demo_invariants import Witness, seed_unowned
from azsnap.offline.demo_restore import (
    demo_registry,
    drill_results,
    install_restore_crd,
    restore_results,
    start_restore,
)
from azsnap.offline.demo_view import (
    DemoEvent,
    DemoSummary,
    DemoView,
    Frame,
    PolicyResult,
    demo_event,
    make_view,
    policy_key,
    policy_row,
)
from azsnap.offline.demo_volume_snapshots import (
    about_volume_snapshots,
    publish_claim_policies,
    publishing,
    volume_snapshot_lines,
)
from azsnap.offline.sandbox import Sandbox, disk_id
from azsnap.tools.cluster import Selection, connect
from azsnap.tools.published import read_published
from azsnap.tools.snapshots import PolicySnapshots, gather, render_table

if TYPE_CHECKING:
    from azsnap.emulator.kubernetes import KubeEmulator

__all__ = [
    "DEMO_START",
    "DemoOptions",
    "DemoSummary",
    "PolicyResult",
    "Witness",
    "find_examples",
    "load_policies",
    "run",
    "run_command",
    "run_demo",
    "seed_unowned",
]

#: Emulated time starts here: a Friday, so three days cross Berlin's spring-forward night (29 March, 02:00 → 03:00).
DEMO_START: Final = datetime(2026, 3, 27, tzinfo=UTC)
#: Disks the examples name: disk-0 … disk-3 (Standard SSD) and pv2-disk-0 (Premium SSD v2).
EXAMPLE_DISKS: Final = 4
#: The loop wakes the demo this often (emulated): the pacing step and the sampling step of the invariants.
STEP: Final = timedelta(minutes=1)
#: Emulated time given to in-flight reconciles and kopf's event poster after the last hour, before the stop (a create
#: paced at the top of the hour still needs its polls: about 10 s at Azure's timing).
SETTLE: Final = timedelta(seconds=90)
#: The example that stands for "one more disk" when `--disks` goes beyond the examples.
SCALE_TEMPLATE: Final = "minimal-hourly"
_SOURCE_ROOT: Final = Path(__file__).resolve().parents[3]
_CRD_FILE: Final = Path("crds") / f"{PLURAL}.{API_GROUP}.yaml"


@dataclass(frozen=True)
class DemoOptions:
    """What `azsnap demo` was asked for."""

    hours: float = 72.0
    #: Emulated hours per real second; 0: as fast as the machine goes.
    speed: float = 1.0
    #: Standard SSD disks; beyond the four the examples use, each gets a copy of the minimal hourly policy.
    disks: int = EXAMPLE_DISKS
    examples: Path | None = None
    start: datetime = DEMO_START
    #: At the end, list every policy's snapshots as `azsnap snapshots -A` does.
    snapshots: bool = False


# ---- the policies ----------------------------------------------------------------------------------------------


def find_examples(explicit: Path | None = None) -> Path:
    """The examples directory: the one given, `./examples`, or the one beside the source tree."""
    candidates = [explicit] if explicit is not None else [Path.cwd() / "examples", _SOURCE_ROOT / "examples"]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("*.yaml")):
            return candidate
    shown = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no SnapshotPolicy examples found in {shown}; run the demo from the azsnap checkout")


def load_policies(examples: Path, disks: int) -> list[dict[str, Any]]:
    """Every SnapshotPolicy in `examples/*.yaml`, plus a copy of the hourly example for each disk beyond four."""
    policies: list[dict[str, Any]] = []
    for path in sorted(examples.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == KIND:
                policies.append(document)
    template = next((p for p in policies if p["metadata"]["name"] == SCALE_TEMPLATE), None)
    if template is not None:
        for i in range(EXAMPLE_DISKS, disks):
            extra = yaml.safe_load(yaml.safe_dump(template))
            extra["metadata"]["name"] = f"hourly-disk-{i}"
            extra["spec"]["disk"]["id"] = disk_id(f"disk-{i}")
            extra["spec"].pop("restoreDrill", None)  # the demo shows one drill, not one per extra disk
            policies.append(extra)
    return policies


# ---- the run -------------------------------------------------------------------------------------------------


def _hold(seconds: float) -> None:
    # Blocking on purpose: everything the demo runs lives on this one loop, so holding the loop pauses the whole
    # emulated world (its clock included) while real time catches up with the requested speed.
    time.sleep(seconds)


class _ViewLog(logging.Handler):
    def __init__(self, view: DemoView) -> None:
        super().__init__(logging.WARNING)
        self.view = view

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.view.log(f"{record.levelname.lower()} {record.name}: {record.getMessage()}")


@contextlib.contextmanager
def _logs_to(view: DemoView) -> Iterator[None]:
    handler, root = _ViewLog(view), logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(old_level, logging.WARNING) if old_level else logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


async def run_demo(options: DemoOptions, view: DemoView | None = None) -> DemoSummary:
    """Run the demo on the running loop (which must be looptime's) and return its summary."""
    import kopf

    import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
    from azsnap.clock import LoopClock
    from azsnap.emulator.kubernetes import KubeEmulator, run_operator
    from azsnap.handlers.runtime import MEMO_KEY
    from azsnap.offline.sandbox import add_policy_groups, azure_sandbox

    view = view or DemoView()
    examples = find_examples(options.examples)
    manifests = load_policies(examples, options.disks)
    publish_claim_policies(manifests)
    loop = asyncio.get_running_loop()
    clock = LoopClock(options.start, loop)
    namespaces = sorted({(m.get("metadata") or {}).get("namespace") or "default" for m in manifests})
    real_start = time.monotonic()
    with _logs_to(view):
        async with KubeEmulator.serve(clock=clock) as kube:
            crd = next((p for p in (Path.cwd() / _CRD_FILE, _SOURCE_ROOT / _CRD_FILE) if p.is_file()), None)
            for document in yaml.safe_load_all(crd.read_text()) if crd else ():
                if document:
                    kube.install_crd(document)
            install_restore_crd(kube, (Path.cwd(), _SOURCE_ROOT))
            for namespace in namespaces:
                if namespace != "default":
                    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
            pv2 = 1 if any("pv2-disk-" in str((m["spec"].get("disk") or {}).get("id")) for m in manifests) else 0
            async with azure_sandbox(clock, config=EmulatorConfig(), disks=options.disks, premium_v2_disks=pv2) as box:
                add_policy_groups(box.emulator, manifests)
                witness = Witness(box.emulator, seed_unowned(box.emulator, clock.now(), options.disks))
                memo = kopf.Memo({MEMO_KEY: box.runtime})
                with view.running():
                    registry = demo_registry()
                    async with (
                        publishing(kube, box, manifests),
                        run_operator(registry, kube=kube, namespaces=namespaces, memo=memo) as operator,
                    ):
                        start_claims(kube, box.emulator, manifests, options.hours)
                        start_restore(kube, manifests, options.hours)
                        witness.disks = [str(d["id"]) for d in box.emulator.disks()]
                        for m in manifests:
                            kube.apply(m)
                        interrupted = await _advance(
                            options, view, kube, box.emulator, witness, clock.now, operator.task.done
                        )
                        if not interrupted:
                            await asyncio.sleep(SETTLE.total_seconds())
                    objects = kube.list(API_GROUP, API_VERSION, PLURAL)
                uids = {policy_key(o): str(o["metadata"]["uid"]) for o in objects}
                summary = _summary(
                    options, objects, kube.events(), box.emulator, witness, uids, clock.now(), real_start, interrupted
                )
                summary.restores = restore_results(kube)
                summary.volume_snapshots = volume_snapshot_lines(kube, objects)
                if options.snapshots:
                    summary.snapshots = await _list_snapshots(kube, box)
                return summary


async def _list_snapshots(kube: KubeEmulator, box: Sandbox) -> list[PolicySnapshots]:
    """`azsnap snapshots -A` at the end of the run: policies through the kubernetes client, snapshots via the SDK."""
    with tempfile.TemporaryDirectory() as tmp:
        cluster = await asyncio.to_thread(connect, str(kube.write_kubeconfig(Path(tmp) / "kubeconfig")))
        objects = await asyncio.to_thread(cluster.read_policies, Selection(namespace=None))
        views = await asyncio.to_thread(read_published, cluster, objects)
    # A client of its own, as `azsnap snapshots` has: the operator's connections ended with it.
    cloud = AzureCloud.from_settings(box.runtime.settings, credential=StaticTokenCredential())
    try:
        rows = await gather(objects, cloud, box.clock, box.runtime.settings.limits)
        return [replace(r, published=views.get(r.key)) if r.problem is None else r for r in rows]
    finally:
        await cloud.close()


def _frame(
    options: DemoOptions, now: datetime, kube: KubeEmulator, emulator: Emulator, events: list[DemoEvent]
) -> Frame:
    requests = emulator.requests
    return Frame(
        now=now,
        elapsed_hours=(now - options.start).total_seconds() / 3600,
        hours=options.hours,
        rows=[policy_row(o) for o in kube.list(API_GROUP, API_VERSION, PLURAL)],
        azure_calls=len(requests),
        throttled=sum(1 for r in requests if r.status == 429),
        events=events,
    )


async def _advance(
    options: DemoOptions,
    view: DemoView,
    kube: KubeEmulator,
    emulator: Emulator,
    witness: Witness,
    now: Callable[[], datetime],
    stopped: Callable[[], bool],
) -> bool:
    """Let emulated time run to the end, paced; True if the operator stopped first (Ctrl+C)."""
    end = options.start + timedelta(hours=options.hours)
    real_start = last_frame = time.monotonic()
    seen_events: set[str] = set()
    while now() < end:
        await asyncio.sleep(min(STEP, end - now()).total_seconds())
        witness.sample()
        if stopped():
            return True
        elapsed = (now() - options.start).total_seconds()
        if options.speed > 0:
            ahead = elapsed / (3600 * options.speed) - (time.monotonic() - real_start)
            if ahead > 0:
                _hold(ahead)
        real_now = time.monotonic()
        due = view.refresh_seconds is not None and real_now - last_frame >= view.refresh_seconds
        if due or view.wants_frame(elapsed / 3600) or now() >= end:
            last_frame = real_now
            fresh = []
            for obj in kube.events():
                uid = str(obj["metadata"].get("uid") or obj["metadata"].get("name"))
                if uid not in seen_events and not about_volume_snapshots(obj):
                    seen_events.add(uid)
                    fresh.append(demo_event(obj))
            view.frame(_frame(options, now(), kube, emulator, fresh))
    return False


def _summary(
    options: DemoOptions,
    objects: list[dict[str, Any]],
    events: list[dict[str, Any]],
    emulator: Emulator,
    witness: Witness,
    uids: dict[str, str],
    ended_at: datetime,
    real_start: float,
    interrupted: bool,
) -> DemoSummary:
    reasons = Counter((demo_event(e).policy, demo_event(e).reason) for e in events)
    held = Counter(uid for uid, _ in _owned_in_azure(emulator))
    policies = {}
    for obj in objects:
        key = policy_key(obj)
        policies[key] = PolicyResult(
            held=held.get(uids[key], 0),
            created=reasons.get((key, "SnapshotCreated"), 0),
            deleted=reasons.get((key, "SnapshotDeleted"), 0),
            missed=int(((obj.get("status") or {}).get("missedSlots")) or 0),
        )
    drills = {key: n for (key, reason), n in reasons.items() if reason == "RestoreVerified"}
    requests = emulator.requests
    return DemoSummary(
        hours=options.hours,
        policies=policies,
        azure_calls=dict(Counter(r.operation for r in requests)),
        throttled=sum(1 for r in requests if r.status == 429),
        violations=witness.violations(uids),
        rows=[policy_row(o) for o in objects],
        ended_at=ended_at,
        elapsed_hours=(ended_at - options.start).total_seconds() / 3600,
        real_seconds=time.monotonic() - real_start,
        interrupted=interrupted,
        drills=drill_results(objects, drills),
    )


def _owned_in_azure(emulator: Emulator) -> Iterator[tuple[str, str]]:
    """(policy UID, snapshot name) of every snapshot in Azure now that carries azsnap's ownership tags."""
    for snapshot in emulator.snapshots():
        tags = snapshot.get("tags") or {}
        uid = naming.tag(tags, naming.TAG_POLICY_UID)
        ours = naming.tag(tags, naming.TAG_MANAGED_BY) == naming.MANAGED_BY_VALUE
        if uid and ours and naming.tag(tags, TAG_ROLE) != ROLE_COPY:  # copies are counted apart (status.copies)
            yield uid, str(snapshot["name"])


def run(options: DemoOptions, view: DemoView | None = None) -> DemoSummary:
    """Run the demo on a fresh looptime event loop (emulated time), blocking until it ends."""
    import looptime

    loop = looptime.new_event_loop(start=0)
    try:
        return loop.run_until_complete(run_demo(options, view))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def run_command(options: DemoOptions, *, as_json: bool, out: TextIO) -> int:
    """`azsnap demo`: run, show, summarise; 0 when every invariant held, 1 when one broke, 130 when interrupted."""
    view = make_view(out, speed=options.speed, as_json=as_json)
    summary = run(options, view)
    view.finish(summary)
    if summary.snapshots and not as_json:
        out.write("\n$ azsnap snapshots -A\n" + render_table(summary.snapshots))
    if not summary.ok:
        return 1
    return 130 if summary.interrupted else 0
