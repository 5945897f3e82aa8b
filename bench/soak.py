"""Soak under faults: weeks of emulated time, a fleet of policies, Azure misbehaving and the operator restarting.

    python -m bench.soak --days 30 --disks 100 --seed 7 [--rgs 4]

The real `Reconciler` drives the real `AzureCloud` (azure-mgmt-compute over HTTPS) against the Azure emulator,
all on one `looptime` event loop, so every clock (the reconciler's, the emulator's, the SDK's retry sleeps)
reads emulated time. A seeded schedule (`bench.soak_plan`) injects faults and operator restarts (each a fresh
`bench.soak_operator`); `bench.soak_checks.Ledger` referees every create and delete inside the emulator. One
line of JSON is printed at the end; see docs/reliability.md for the design and the figures.
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
from datetime import datetime, timedelta
from typing import Any, Final

import looptime

from azsnap.clock import LoopClock
from azsnap.domain import naming
from azsnap.domain.observed import Limits
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import Emulator, EmulatorConfig, FaultRule, RunningServer
from bench.soak_checks import Ledger, PolicyLife
from bench.soak_operator import Operator, fold, start_operator
from bench.soak_plan import EPOCH, LOCATION, QUIET, SUBSCRIPTION, Action, disk_id, make_lives, make_schedule

#: looptime idles this many loop cycles before it moves the clock (its default is 42); everything here is in
#: one process over loopback, so an answer is readable as soon as it is written and fewer cycles are safe.
NOOP_CYCLES: Final = 3

log = logging.getLogger("bench.soak")


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
