"""Soak under faults: weeks of emulated time, a fleet of policies, Azure misbehaving and the operator restarting.

    python -m bench.soak --days 30 --disks 100 --seed 7 [--rgs 4]

The real `Reconciler` drives the real `AzureCloud` (azure-mgmt-compute over HTTPS) against the Azure emulator,
all on one `looptime` event loop, so every clock (the reconciler's, the emulator's, the SDK's retry sleeps)
reads emulated time. A seeded schedule injects faults and operator restarts; `bench.soak_checks.Ledger`
referees every create and delete inside the emulator. One line of JSON is printed at the end; see
docs/reliability.md for the design and the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import looptime

from azsnap.clock import LoopClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.buckets import PacerConfig
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.pacer import Pacer, PacerHooks
from azsnap.domain import naming
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Limits
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import Emulator, EmulatorConfig, FaultRule, RunningServer
from azsnap.reconciler import Reconciler, ReconcilerConfig, StatusReport
from bench.soak_checks import Ledger, PolicyLife

SUBSCRIPTION: Final = "5e1f0000-0000-4000-8000-0000000050a4"
LOCATION: Final = "westeurope"
#: A Monday; 30 days from here cross Europe's switch to summer time (29 March).
EPOCH: Final = datetime(2026, 3, 2, tzinfo=UTC)
#: The last hours run without new faults, so the end state is settled before it is judged.
QUIET: Final = timedelta(hours=4)
#: looptime idles this many loop cycles before it moves the clock (its default is 42); everything here is in
#: one process over loopback, so an answer is readable as soon as it is written and fewer cycles are safe.
NOOP_CYCLES: Final = 3

#: Every kind of policy in the fleet: spec fragments (disk added per policy).
KINDS: Final[dict[str, dict[str, Any]]] = {
    "hourly": {"schedule": {"cron": "0 * * * *"}, "retention": {"keepLast": 3, "minKeep": 2}},
    "daily": {"schedule": {"cron": "0 3 * * *", "timeZone": "Europe/Berlin"}, "retention": {"daily": 4, "minKeep": 2}},
    "gfs": {
        "schedule": {"cron": "0 */4 * * *"},
        "retention": {"hourly": 2, "daily": 3, "weekly": 2, "monthly": 1},
    },
    "count": {"schedule": {"every": "6h"}, "retention": {"keepLast": 4, "minKeep": 3}},
    "age": {"schedule": {"cron": "30 */8 * * *"}, "retention": {"maxAge": "1d", "minKeep": 2}},
    "delete": {"schedule": {"every": "2h"}, "retention": {"keepLast": 5}, "deletionPolicy": "Delete"},
}
#: Each disk gets a frequent policy (hourly or GFS, by turns) and a slower one (daily, count or age, by turns).
FREQUENT: Final = ("hourly", "gfs")
SLOWER: Final = ("daily", "count", "age")

log = logging.getLogger("bench.soak")


def disk_id(index: int, rgs: int) -> str:
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-soak-{index % rgs}"
        f"/providers/Microsoft.Compute/disks/disk-{index:03d}"
    )


def make_lives(disks: int, rgs: int, seed: int) -> dict[str, PolicyLife]:
    """The fleet's policies: two per disk, and a third with deletionPolicy `Delete` on every tenth disk."""
    lives: dict[str, PolicyLife] = {}
    for i in range(disks):
        kinds = [FREQUENT[i % len(FREQUENT)], SLOWER[i % len(SLOWER)]]
        if i % 10 == 3:
            kinds.append("delete")
        for kind in kinds:
            uid = f"soak-{seed}-{i:03d}-{kind}"
            body = {**KINDS[kind], "disk": {"id": disk_id(i, rgs)}}
            ref = PolicyRef(f"team-{i % rgs}", f"disk-{i:03d}-{kind}", uid, 1)
            lives[uid] = PolicyLife(Policy(ref, SnapshotPolicySpec.model_validate(body)), kind, EPOCH)
    return lives


def fold(status: dict[str, Any], report: StatusReport) -> dict[str, Any]:
    """What the kopf handler writes: the report's fields over the previous status."""
    return {k: v for k, v in {**status, **report.status}.items() if v is not None}


@dataclass
class Operator:
    """One operator process: its Azure client and reconciler (what a restart throws away)."""

    cloud: AzureCloud
    reconciler: Reconciler

    async def close(self) -> None:
        await self.cloud.close()


def start_operator(server: RunningServer, clock: LoopClock) -> Operator:
    """A fresh `AzureCloud` and `Reconciler`, as a restarted process builds them.

    Paced as a deployment is (`AZSNAP_PACING` is on by default); LROs are polled every emulated second (free
    under looptime); everything else is the product's default.
    """
    options = AzureOptions(base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=1.0)
    hooks = PacerHooks(Pacer(PacerConfig(), clock=clock))
    cloud = AzureCloud(
        StaticTokenCredential(), options, before_request=hooks.before_request, on_response=hooks.on_response
    )
    return Operator(cloud, Reconciler(cloud, clock, ReconcilerConfig(limits=Limits())))


@dataclass(frozen=True)
class Action:
    """Something the schedule does at `at`: a fault, a restart, a disk or policy change."""

    at: datetime
    kind: str
    args: tuple[Any, ...] = ()


def make_schedule(rng: random.Random, days: int, disks: int, lives: dict[str, PolicyLife]) -> list[Action]:
    """The seeded fault schedule: per-hour chances for each fault, at least one of each kind."""
    hours = max(1, days * 24 - int(QUIET.total_seconds() // 3600))
    ops = ("snapshots.put", "snapshots.list", "snapshots.delete", "disks.get", "operations.get", None)
    actions: list[Action] = []

    def at_hour(hour: int) -> datetime:
        return EPOCH + timedelta(hours=hour, seconds=rng.randint(-300, 3000))

    chances: dict[str, float] = {
        "429": 0.15,
        "500": 0.08,
        "503": 0.08,
        "drop": 0.06,
        "lro_failed": 0.06,
        "failed_after_limit": 0.02,
        "slow_lro": 0.02,
        "restart": 0.05,
        "hold": 0.02,
    }
    for kind, chance in chances.items():
        picked = [h for h in range(1, hours) if rng.random() < chance] or [rng.randrange(1, hours)]
        for hour in picked:
            when = at_hour(hour)
            if kind in ("429", "500", "503", "drop"):
                op = rng.choice(ops)
                count = rng.randint(3, 12) if kind == "429" else rng.randint(1, 4)
                rule = FaultRule(operation=op, kind=kind, count=count, retry_after_s=rng.randint(1, 10))  # type: ignore[arg-type]
                actions.append(Action(when, "fault", (rule,)))
            elif kind == "lro_failed":
                op = rng.choice(("snapshots.put", "snapshots.delete"))
                actions.append(
                    Action(when, "fault", (FaultRule(operation=op, kind="lro_failed", count=rng.randint(1, 2)),))
                )
            elif kind == "failed_after_limit":
                actions.append(Action(when, "fault", (FaultRule(operation="snapshots.put", kind=kind, count=1),)))
            elif kind == "slow_lro":
                slow = timedelta(minutes=rng.randint(2, 8))
                actions.append(Action(when, "slow_lro", (slow, timedelta(minutes=rng.randint(10, 40)))))
            elif kind == "restart":
                down = timedelta(0) if rng.random() < 0.5 else timedelta(minutes=rng.randint(1, 150))
                actions.append(Action(when, "restart", (down,)))
            else:
                actions.append(Action(when, "hold", (rng.random(),)))
    # the sharp moments: a create or a delete sent, its answer not yet back, when the process dies
    for operation in ("snapshots.put", "snapshots.delete"):
        for _ in range(max(1, days // 5)):
            hour = rng.randrange(1, hours)
            actions.append(Action(EPOCH + timedelta(hours=hour, seconds=-20), "restart_mid", (operation,)))
    disk_events = sorted(rng.sample(range(disks), k=min(disks, 3)))
    for n, index in enumerate(disk_events):
        when = at_hour(rng.randrange(1, hours))
        actions.append(Action(when, "recreate_disk" if n < 2 else "vanish_disk", (index,)))
    for uid, life in lives.items():
        if life.kind == "delete":
            actions.append(
                Action(at_hour(rng.randrange(hours // 3, max(hours // 3 + 1, 2 * hours // 3))), "delete_policy", (uid,))
            )
    return sorted(actions, key=lambda a: a.at)


class Soak:
    """Runs the fleet against the emulator under the schedule, and keeps the tallies."""

    def __init__(self, days: int, disks: int, seed: int, rgs: int) -> None:
        self.days, self.disks, self.seed, self.rgs = days, disks, seed, rgs
        self.rng = random.Random(seed)
        self.end = EPOCH + timedelta(days=days)
        self.clock = LoopClock(EPOCH)
        self.config = EmulatorConfig(seed=seed)  # the emulator's default: Azure's recorded answers and timing
        self.emulator = Emulator(self.clock, self.config)
        self.lives = make_lives(disks, rgs, seed)
        self.ledger = Ledger(self.emulator, self.lives, Limits())
        self.disk_uids: dict[str, list[str]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.operator: Operator | None = None
        self.server: RunningServer | None = None
        self.counts: Counter[str] = Counter()
        self.health: Counter[str] = Counter()
        self.unhandled: list[str] = []
        #: (stopped, started again) of every operator restart: slots in these windows are not azsnap's to miss.
        self.outages: list[tuple[datetime, datetime]] = []
        #: (deleted, back) per disk ID (lower-cased) for the disks that vanished for a while.
        self.disk_gone: dict[str, list[tuple[datetime, datetime]]] = {}
        self._restarting = asyncio.Lock()
        self._watch: dict[str, asyncio.Event] = {}
        #: Set to wake a policy at once (its deletion), as a watch event wakes kopf.
        self.pokes: dict[str, asyncio.Event] = {}

    # ---- setup -------------------------------------------------------------------------------------------------

    def seed_fleet(self) -> None:
        """Disks, plus snapshots azsnap must never delete: someone else's, and ones with forged azsnap tags."""
        store = self.emulator.store
        before = EPOCH - timedelta(days=1)
        for i in range(self.disks):
            rg, name = f"rg-soak-{i % self.rgs}", f"disk-{i:03d}"
            raw = self.emulator.seed_disk(SUBSCRIPTION, rg, name, location=LOCATION)
            self.disk_uids[disk_id(i, self.rgs).lower()] = [raw["properties"]["uniqueId"]]
            seeded: list[tuple[str, dict[str, str], str]] = []
            if i % 5 == 0:
                seeded.append((f"manual-{name}", {"owner": "dba"}, disk_id(i, self.rgs)))
            if i % 7 == 1:
                # our tags, a real policy's UID, but the disk-UID tag of no disk: ownership cannot be forged
                uid = next(u for u, life in self.lives.items() if life.policy.spec.disk.id == disk_id(i, self.rgs))
                tags = {naming.TAG_MANAGED_BY: naming.MANAGED_BY_VALUE, naming.TAG_POLICY_UID: uid}
                tags |= {naming.TAG_DISK_UID: "forged", naming.TAG_SLOT: naming.format_slot(EPOCH - timedelta(days=2))}
                seeded.append((f"forged-{name}", tags, disk_id(i, self.rgs)))
            for snap_name, tags, source in seeded:
                body = {
                    "location": LOCATION,
                    "tags": tags,
                    "properties": {
                        "creationData": {"createOption": "Copy", "sourceResourceId": source},
                        "incremental": True,
                    },
                }
                store.create_snapshot(before, SUBSCRIPTION, rg, snap_name, body)
                self.ledger.protected.add(snap_name.lower())
        store.settle(EPOCH)
        self.counts["foreign_seeded"] = len(self.ledger.protected)

    def attach(self) -> None:
        self.ledger.attach()
        draw = self.emulator.faults.draw

        def counted(operation: str) -> list[FaultRule]:
            hits = draw(operation)
            for rule in hits:
                self.counts[f"faults_{rule.kind}"] += 1
                if rule.kind == "latency" and operation in self._watch:
                    self._watch.pop(operation).set()
            return hits

        self.emulator.faults.draw = counted  # type: ignore[method-assign]
        record = self.emulator.record

        def answered(method: str, path: str, status: int, operation: str) -> None:
            self.counts["requests"] += 1
            if status == 429:
                self.counts["answers_429"] += 1

        self.emulator.record = answered  # type: ignore[method-assign]
        del record

    # ---- the operator ------------------------------------------------------------------------------------------

    def start(self) -> None:
        assert self.server is not None
        self.operator = start_operator(self.server, self.clock)
        for uid, life in self.lives.items():
            if not life.finalized:
                self.tasks[uid] = asyncio.create_task(self.drive(life, self.operator), name=uid)

    async def stop(self) -> None:
        tasks, self.tasks = list(self.tasks.values()), {}
        for task in tasks:
            task.cancel()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                self.unhandled.append(repr(result))
        if self.operator is not None:
            await self.operator.close()
            self.operator = None

    async def restart(self, downtime: timedelta = timedelta(0)) -> None:
        """Kill the process (tasks cancelled wherever they are), stay down a while, start afresh."""
        async with self._restarting:
            self.counts["restarts"] += 1
            stopped = self.clock.now()
            await self.stop()
            if downtime:
                await asyncio.sleep(downtime.total_seconds())
            self.start()
            self.outages.append((stopped, self.clock.now()))

    async def drive(self, life: PolicyLife, operator: Operator) -> None:
        """One policy as kopf runs it: reconcile, write the status, sleep until the report's next time."""
        uid = life.policy.ref.uid
        while self.clock.now() < self.end:
            try:
                if life.deleting_since is not None:
                    done = await operator.reconciler.finalize(life.policy)
                    if done.done:
                        life.finalized = True
                        return
                    await asyncio.sleep(max(1.0, done.retry_after))
                    continue
                status = SnapshotPolicyStatus.model_validate(life.status)
                report = await operator.reconciler.reconcile(life.policy, status)
            except Exception as exc:  # counted, never swallowed silently
                self.unhandled.append(f"{uid}: {exc!r}")
                log.exception("unhandled exception reconciling %s", uid)
                await asyncio.sleep(60)
                continue
            life.status = fold(life.status, report)
            self.health[f"{report.health.state}/{report.health.reason}"] += 1
            wait = (min(report.next_time, self.end) - self.clock.now()).total_seconds()
            poke = self.pokes.setdefault(uid, asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(poke.wait(), timeout=max(wait, 0.0))
            poke.clear()

    # ---- the schedule ------------------------------------------------------------------------------------------

    async def play(self, actions: Sequence[Action]) -> None:
        running: list[asyncio.Task[None]] = []
        for action in actions:
            wait = (action.at - self.clock.now()).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
            running.append(asyncio.create_task(self.act(action)))
        await asyncio.sleep(max(0.0, (self.end - QUIET - self.clock.now()).total_seconds()))
        self.emulator.clear_faults()
        for result in await asyncio.gather(*running, return_exceptions=True):
            if isinstance(result, BaseException):
                self.unhandled.append(f"schedule: {result!r}")

    async def act(self, action: Action) -> None:
        handlers: dict[str, Callable[..., Awaitable[None]]] = {
            "fault": self._fault,
            "slow_lro": self._slow_lro,
            "restart": self.restart,
            "restart_mid": self._restart_mid,
            "hold": self._hold,
            "recreate_disk": self._recreate_disk,
            "vanish_disk": self._vanish_disk,
            "delete_policy": self._delete_policy,
        }
        await handlers[action.kind](*action.args)

    async def _fault(self, rule: FaultRule) -> None:
        self.emulator.add_fault(rule)

    async def _slow_lro(self, slow: timedelta, lasting: timedelta) -> None:
        self.counts["slow_lro_episodes"] += 1
        slowed = dataclasses.replace(self.config, lro_duration=slow, poll_retry_after_s=10)
        self.emulator.config = self.emulator.store.config = slowed
        try:
            await asyncio.sleep(lasting.total_seconds())
        finally:
            self.emulator.config = self.emulator.store.config = self.config

    async def _restart_mid(self, operation: str) -> None:
        """Hold one request of `operation` in the emulator (it still lands), and kill the operator meanwhile."""
        hit = self._watch[operation] = asyncio.Event()
        self.emulator.add_fault(FaultRule(operation=operation, kind="latency", latency_s=30.0, count=1))
        try:
            await asyncio.wait_for(hit.wait(), timeout=(self.end - QUIET - self.clock.now()).total_seconds())
        except TimeoutError:
            self._watch.pop(operation, None)
            return  # no such request came before the quiet hours
        await asyncio.sleep(1)
        self.counts["restarts_mid_create" if operation == "snapshots.put" else "restarts_mid_delete"] += 1
        await self.restart()

    async def _hold(self, pick: float) -> None:
        """A person puts the hold tag on one of azsnap's snapshots."""
        ours = [
            r
            for r in self.emulator.store.snapshots.values()
            if r.state == "Succeeded" and naming.tag(r.body.get("tags") or {}, naming.TAG_POLICY_UID) in self.lives
        ]
        if ours:
            record = sorted(ours, key=lambda r: r.name)[int(pick * len(ours))]
            record.body["tags"] = {**record.body["tags"], naming.TAG_HOLD: "soak"}
            self.counts["holds"] += 1

    async def _recreate_disk(self, index: int) -> None:
        raw = self.emulator.recreate_disk(SUBSCRIPTION, f"rg-soak-{index % self.rgs}", f"disk-{index:03d}")
        self.disk_uids[disk_id(index, self.rgs).lower()].append(raw["properties"]["uniqueId"])
        self.counts["disks_recreated"] += 1

    async def _vanish_disk(self, index: int) -> None:
        rg, name = f"rg-soak-{index % self.rgs}", f"disk-{index:03d}"
        self.emulator.delete_disk(SUBSCRIPTION, rg, name)
        self.counts["disks_gone_for_a_while"] += 1
        gone = self.clock.now()
        await asyncio.sleep(timedelta(hours=3).total_seconds())
        raw = self.emulator.seed_disk(SUBSCRIPTION, rg, name, location=LOCATION)
        self.disk_gone.setdefault(disk_id(index, self.rgs).lower(), []).append((gone, self.clock.now()))
        self.disk_uids[disk_id(index, self.rgs).lower()].append(raw["properties"]["uniqueId"])

    async def _delete_policy(self, uid: str) -> None:
        """kubectl delete: the finalizer runs in place of the timer."""
        self.lives[uid].deleting_since = self.clock.now()
        self.counts["policies_deleted"] += 1
        self.pokes.setdefault(uid, asyncio.Event()).set()

    # ---- the run and its figures -------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._loop_error)
        actions = make_schedule(self.rng, self.days, self.disks, self.lives)
        self.seed_fleet()
        self.attach()
        async with self.emulator.serve(host="127.0.0.1", port=0) as server:
            self.server = server
            self.start()
            await self.play(actions)
            await asyncio.sleep(max(0.0, (self.end - self.clock.now()).total_seconds()))
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            await self.final_pass()
            await self.stop()
        figures = self.figures()
        figures["wall_s"] = round(time.perf_counter() - started, 1)
        return figures

    async def final_pass(self) -> None:
        """One last reconcile of every live policy at the end, so each status accounts for every slot."""
        assert self.operator is not None
        for life in self.lives.values():
            if life.deleting_since is None:
                report = await self.operator.reconciler.reconcile(
                    life.policy, SnapshotPolicyStatus.model_validate(life.status)
                )
                life.status = fold(life.status, report)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("exception") is not None:
            self.unhandled.append(f"event loop: {context.get('message')}: {context['exception']!r}")
        loop.default_exception_handler(context)

    def figures(self) -> dict[str, Any]:
        now = self.clock.now()
        due = taken = failed = reported = unreported = overreported = while_up = 0
        final_problems: list[str] = []
        slot_notes: list[str] = []
        for life in self.lives.values():
            disk_key = life.policy.spec.disk.id.lower()
            uids = self.disk_uids[disk_key]
            tally = self.ledger.slot_tally(life, uids, now)
            due, taken, failed = due + tally.due, taken + tally.taken, failed + tally.failed
            while_up += tally.missed_while_up([*self.outages, *self.disk_gone.get(disk_key, [])])
            missed = tally.due - tally.taken
            if life.deleting_since is None:
                said = int(life.status.get("missedSlots") or 0)
                reported += said
                unreported += max(0, missed - said)
                overreported += max(0, said - missed)
                if said != missed:
                    slot_notes.append(f"{life.policy.ref.uid}: {missed} missed, status says {said}")
            final_problems += self.ledger.final_set_problems(life, uids[-1], now)
        problems = {
            "duplicate_slots": self.ledger.duplicates,
            "wrong_deletes": self.ledger.wrong_deletes,
            "limit_breaches": self.emulator.violations,
            "unhandled_exceptions": self.unhandled,
            "final_set": final_problems,
            "missed_slot_accounting": slot_notes,
        }
        for what, found in problems.items():
            for line in found[:20]:
                sys.stderr.write(f"{what}: {line}\n")
        faults = {k: v for k, v in sorted(self.counts.items()) if k.startswith("faults_")}
        return {
            "duplicate_slots": len(self.ledger.duplicates),
            "wrong_deletes": len(self.ledger.wrong_deletes),
            "limit_breaches": len(self.emulator.violations),
            "unhandled_exceptions": len(self.unhandled),
            "slots_due": due,
            "slots_taken": taken,
            "slots_failed": failed,
            "slots_missed": due - taken,
            "slots_missed_while_up": while_up,
            "slots_missed_reported": reported,
            "slots_missed_unreported": unreported,
            "slots_missed_overreported": overreported,
            "slot_coverage": round(taken / due, 5) if due else None,
            "final_set_matches": not final_problems,
            "final_set_problems": len(final_problems),
            "faults": faults,
            "answers_429": self.counts["answers_429"],
            "slow_lro_episodes": self.counts["slow_lro_episodes"],
            "holds": self.counts["holds"],
            "foreign_seeded": self.counts["foreign_seeded"],
            "disks_recreated": self.counts["disks_recreated"],
            "disks_gone_for_a_while": self.counts["disks_gone_for_a_while"],
            "policies_deleted": self.counts["policies_deleted"],
            "restarts": self.counts["restarts"],
            "restarts_mid_create": self.counts["restarts_mid_create"],
            "restarts_mid_delete": self.counts["restarts_mid_delete"],
            "creates": self.ledger.creates,
            "deletes": self.ledger.deletes,
            "requests": self.counts["requests"],
            "health": dict(sorted(self.health.items())),
            "seed": self.seed,
            "days": self.days,
            "disks": self.disks,
            "rgs": self.rgs,
            "policies": len(self.lives),
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--disks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rgs", type=int, default=4, help="resource groups the disks are spread over")
    args = parser.parse_args(argv)
    sys.stdout.write(json.dumps(run_soak(args.days, args.disks, args.seed, args.rgs)) + "\n")
    return 0


async def _run(days: int, disks: int, seed: int, rgs: int) -> dict[str, Any]:
    return await Soak(days, disks, seed, rgs).run()


def run_soak(days: int, disks: int, seed: int, rgs: int = 4) -> dict[str, Any]:
    """Run the soak on its own emulated-time event loop; returns the figures."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    loop = looptime.new_event_loop(start=0, noop_cycles=NOOP_CYCLES)
    try:
        return loop.run_until_complete(_run(days, disks, seed, rgs))
    finally:
        loop.close()


if __name__ == "__main__":
    raise SystemExit(main())
