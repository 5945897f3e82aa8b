"""kopf-level overhead: N policies run by the real operator (kopf and azsnap's handlers); one JSON line out.

    python -m bench.kopf_overhead --policies 200 --hours 6 [--no-throttling] [--no-pacing] [--trace-memory]

Everything runs in one process on one `looptime` event loop: the Kubernetes emulator (kmock, over HTTP), the Azure
emulator (over HTTPS, Azure's budgets on), kopf with azsnap's handlers, and the real SDK between them. N disks get
one hourly keepLast-3 policy each. The operator runs for `--hours` emulated hours and half an hour more (so the kill
falls between two slots), is killed as by `kill -9`, and a fresh process (a new runtime: no cache, no memory) is
started. The run reports the operator side's CPU and the RSS growth per policy in steady state, and the emulated and
real time from the restart until every policy's status is current again, with the Azure and Kubernetes requests the
restart caused. See docs/performance.md for the method and the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import kopf
import looptime
import psutil

from azsnap.clock import Clock, LoopClock
from azsnap.cloud.buckets import PacerConfig
from azsnap.cloud.pacer import Pacer, PacerHooks
from azsnap.domain.models import API_GROUP, API_VERSION, PLURAL
from azsnap.emulator import EmulatorConfig
from azsnap.emulator.kubernetes import run_operator
from azsnap.handlers import policy as policy_handlers
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.offline.sandbox import Sandbox, azure_sandbox
from bench.common import EMULATOR_SIDE, EPOCH, SIDE, CpuSplit
from bench.kube_probe import NAMESPACE, KubeProbe, manifest, serve_kube

__all__ = ["main", "run"]

#: The kill comes this long after the last whole hour, between two slots: the restart's cost is its own.
KILL_OFFSET: Final = timedelta(minutes=30)
#: How long (emulated) the run waits for every status to become current before it gives up on that figure.
CURRENT_WITHIN: Final = timedelta(hours=1)
#: After every status is current again, the restart's requests are counted this much longer (emulated), to catch
#: the work that ran behind the first status writes (kopf's timers start at once too). Ends well before a slot.
SETTLE: Final = timedelta(minutes=5)
_MB: Final = 1024 * 1024
#: looptime spins this many idle loop cycles before it moves the clock (its default is 42). Everything here talks
#: over loopback in one process, so an answer is readable as soon as it is written; as in `bench.soak`, 3 is safe.
NOOP_CYCLES: Final = 3
#: With `--trace-memory`, an allocation is the emulators' when one of its frames is in this code (the probe too).
EMULATOR_CODE: Final = (
    "/azsnap/emulator/",
    "/kmock/",
    "/aiohttp/web",
    "/bench/kopf_overhead.py",
    "/bench/kube_probe.py",
)
#: Frames kept per traced allocation: deep enough to reach the emulator's handler from inside json or aiohttp.
TRACE_FRAMES: Final = 30


def pacer_options(clock: Clock) -> dict[str, Any]:
    """A new process-wide pacer, hooked into the Azure adapter as the operator's start-up does it."""
    hooks = PacerHooks(Pacer(PacerConfig(), clock=clock))
    return {"before_request": hooks.before_request, "on_response": hooks.on_response}


class CallbackTimer:
    """Process CPU inside event-loop callbacks, whichever side they work for; the rest is the loop's own machinery.

    Installed before `CpuSplit`, which then wraps it: `CpuSplit` tells the emulators' callbacks apart, this one
    times them all, and what is left of the process CPU is the loop itself (looptime's clock and the selector).
    """

    def __init__(self) -> None:
        self.callbacks_s = 0.0
        self._original: Callable[[asyncio.Handle], None] | None = None

    def install(self) -> None:
        original = asyncio.Handle._run
        timer = self

        def timed_run(handle: asyncio.Handle) -> None:
            started = time.process_time()
            try:
                original(handle)
            finally:
                timer.callbacks_s += time.process_time() - started

        self._original = original
        asyncio.Handle._run = timed_run  # type: ignore[method-assign,assignment]  # timing every callback

    def uninstall(self) -> None:
        if self._original is not None:
            asyncio.Handle._run = self._original  # type: ignore[method-assign,assignment]  # put back as found
            self._original = None


@dataclass
class Mark:
    """CPU (per side), Azure and Kubernetes request counts, and both times at one instant of the run."""

    emulated: datetime
    wall: float
    cpu_total: float
    cpu_emulators: float
    cpu_callbacks: float
    azure_requests: int
    kube_requests: Counter[str]

    @classmethod
    def take(cls, clock: Clock, cpu: tuple[CpuSplit, CallbackTimer], box: Sandbox, probe: KubeProbe) -> Mark:
        split, timer = cpu
        return cls(
            clock.now(),
            time.perf_counter(),
            split.total_s,
            split.emulator_s,
            timer.callbacks_s,
            len(box.emulator.requests),
            Counter(probe.requests_by_verb),
        )

    def operator_cpu_since(self, earlier: Mark) -> float:
        """The operator's callbacks: kopf, the handlers, the reconciler, the SDK and their side of the sockets."""
        return (self.cpu_callbacks - self.cpu_emulators) - (earlier.cpu_callbacks - earlier.cpu_emulators)

    def loop_cpu_since(self, earlier: Mark) -> float:
        """The event loop's own work between callbacks (looptime's clock, the selector)."""
        return (self.cpu_total - self.cpu_callbacks) - (earlier.cpu_total - earlier.cpu_callbacks)

    def emulators_cpu_since(self, earlier: Mark) -> float:
        return self.cpu_emulators - earlier.cpu_emulators

    def kube_since(self, earlier: Mark) -> dict[str, int]:
        return dict(sorted((self.kube_requests - earlier.kube_requests).items()))


def rss_mb() -> float:
    gc.collect()
    return float(psutil.Process().memory_info().rss) / _MB


def heap_split_mb() -> tuple[float, float]:
    """Traced Python heap now (MB): (the operator side, the emulators), by the code in each allocation's stack."""
    gc.collect()
    operator = emulators = 0
    for trace in tracemalloc.take_snapshot().traces:
        if any(marker in frame.filename for frame in trace.traceback for marker in EMULATOR_CODE):
            emulators += trace.size
        else:
            operator += trace.size
    return operator / _MB, emulators / _MB


def heap_figures(points: Sequence[tuple[float, float]], policies: int) -> dict[str, Any]:
    """Heap per policy (start to kill) and its steady-state growth, each side apart; `points`: begin, steady, kill."""
    (op0, em0), (op1, em1), (op2, em2) = points
    return {
        "heap_operator_mb_per_policy": round((op2 - op0) / policies, 4),
        "heap_emulators_mb_per_policy": round((em2 - em0) / policies, 4),
        "heap_operator_steady_growth_mb": round(op2 - op1, 2),
        "heap_emulators_steady_growth_mb": round(em2 - em1, 2),
    }


def azure_calls(box: Sandbox, start: int, end: int | None = None) -> Counter[str]:
    """Azure requests the emulator answered between two marks, by operation."""
    return Counter(r.operation for r in box.emulator.requests[start:end])


def list_calls(box: Sandbox) -> int:
    """List operations the current runtime's Azure adapter made (a list of many pages is one call)."""
    return sum(n for (operation, _), n in box.cloud.stats.calls.items() if operation == "snapshots.list")


async def wait_all_current(probe: KubeProbe, clock: Clock, until: datetime) -> None:
    """Until every expected policy is current, or `until` (emulated) has come."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(probe.all_current.wait(), max(0.0, (until - clock.now()).total_seconds()))


async def sleep_until(clock: Clock, when: datetime) -> None:
    delta = (when - clock.now()).total_seconds()
    if delta > 0:
        await asyncio.sleep(delta)


def _seconds(later: datetime | None, earlier: datetime) -> float | None:
    return None if later is None else round((later - earlier).total_seconds(), 1)


def _wall(later: float | None, earlier: float) -> float | None:
    return None if later is None else round(later - earlier, 2)


async def run(
    policies: int, hours: int, *, throttling: bool = True, pacing: bool = True, trace_memory: bool = False
) -> dict[str, Any]:
    """The whole benchmark on the running (looptime) loop; the figures as a JSON-ready dict.

    `trace_memory` splits the Python heap between the operator and the emulators with `tracemalloc`; it slows the
    run several times, so the CPU figures of such a run are not the operator's.
    """
    heap: list[tuple[float, float]] = []
    clock = LoopClock(EPOCH)
    split, timer = CpuSplit(), CallbackTimer()
    cpu = split, timer
    config = EmulatorConfig(throttling=throttling)
    azure_options = pacer_options(clock) if pacing else {}
    started = time.perf_counter()
    async with contextlib.AsyncExitStack() as stack:
        token = SIDE.set(EMULATOR_SIDE)  # the servers' callbacks inherit this: their CPU is the emulators'
        try:
            kube, probe = await stack.enter_async_context(serve_kube(clock))
            box = await stack.enter_async_context(
                azure_sandbox(clock, config=config, disks=policies, azure_options=azure_options)
            )
        finally:
            SIDE.reset(token)
        rss_before = rss_mb()
        if trace_memory:
            tracemalloc.start(TRACE_FRAMES)
            stack.callback(tracemalloc.stop)
            heap.append(heap_split_mb())
        timer.install()
        stack.callback(timer.uninstall)
        split.install()  # wraps the timer: see CallbackTimer
        stack.callback(split.uninstall)

        # First process: start, apply every policy, run through the hours, then die without a word.
        begin = Mark.take(clock, cpu, box, probe)
        async with run_operator(kube=kube, namespaces=[NAMESPACE], memo=kopf.Memo({MEMO_KEY: box.runtime})) as op:
            probe.expect(policies)
            token = SIDE.set(EMULATOR_SIDE)  # the API server's work of storing them, as if kubectl had sent them
            for i in range(policies):
                kube.apply(manifest(i))
            SIDE.reset(token)
            kill_at = EPOCH + timedelta(hours=hours) + KILL_OFFSET
            await wait_all_current(probe, clock, kill_at)
            first_current_at, first_current_wall = probe.all_current_at, probe.all_current_wall
            first = Mark.take(clock, cpu, box, probe)
            # Steady state: from half past the first hour (kopf's own first writes are done) to the kill.
            await sleep_until(clock, EPOCH + KILL_OFFSET)
            if trace_memory:
                heap.append(heap_split_mb())
            steady = Mark.take(clock, cpu, box, probe)
            rss_steady_start = rss_mb()
            await sleep_until(clock, kill_at)
            before_kill = Mark.take(clock, cpu, box, probe)
            rss_steady = rss_mb()
            if trace_memory:
                heap.append(heap_split_mb())
            await op.kill()
        statuses = [o.get("status") or {} for o in kube.list(API_GROUP, API_VERSION, PLURAL, NAMESPACE)]

        # Second process: a fresh runtime (and a fresh pacer), as after a restart; until every status is current.
        if pacing:
            box.azure_overrides.update(pacer_options(clock))
        runtime = box.restart()
        restart = Mark.take(clock, cpu, box, probe)
        probe.expect(policies)
        async with run_operator(kube=kube, namespaces=[NAMESPACE], memo=kopf.Memo({MEMO_KEY: runtime})):
            await wait_all_current(probe, clock, restart.emulated + CURRENT_WITHIN)
            current = Mark.take(clock, cpu, box, probe)
            restart_writes = sum(probe.status_writes.values())
            restart_lists = list_calls(box)
            await sleep_until(clock, max(current.emulated, restart.emulated) + SETTLE)
            settled = Mark.take(clock, cpu, box, probe)
            settled_writes = sum(probe.status_writes.values())
            settled_lists = list_calls(box)
        requests = box.emulator.requests
        violations = len(box.emulator.violations)

    steady_hours = (before_kill.emulated - steady.emulated).total_seconds() / 3600
    steady_cpu = before_kill.operator_cpu_since(steady)
    steady_azure = azure_calls(box, steady.azure_requests, before_kill.azure_requests)
    restart_azure = azure_calls(box, restart.azure_requests, current.azure_requests)
    done = probe.all_current_at is not None
    figures: dict[str, Any] = {
        "policies": policies,
        "hours": hours,
        "tick_s": policy_handlers.TICK_SECONDS,
        "throttling": throttling,
        "pacing": pacing,
        # Steady state: from half past the first hour (or when every policy was first current, if later) to the kill.
        "steady_hours": round(steady_hours, 2),
        "cpu_s": round(steady_cpu, 2),
        "emulator_cpu_s": round(before_kill.emulators_cpu_since(steady), 2),
        "loop_cpu_s": round(before_kill.loop_cpu_since(steady), 2),
        "cpu_s_per_policy_hour": round(steady_cpu / (policies * steady_hours), 5) if steady_hours > 0 else None,
        "rss_before_mb": round(rss_before, 1),
        "rss_steady_mb": round(rss_steady, 1),
        "rss_mb_per_policy": round((rss_steady - rss_before) / policies, 3),
        "rss_steady_growth_mb": round(rss_steady - rss_steady_start, 1),
        "kube_requests": before_kill.kube_since(steady),
        "kube_requests_per_policy_hour": _per(sum(before_kill.kube_since(steady).values()), policies, steady_hours),
        "azure_calls": dict(sorted(steady_azure.items())),
        # Start-up: operator start and every policy applied, until each status is first current.
        "start_to_current_emulated_s": _seconds(first_current_at, begin.emulated),
        "start_to_current_wall_s": _wall(first_current_wall, begin.wall),
        "start_cpu_s": round(first.operator_cpu_since(begin), 2),
        # The restart: a new process, until every policy's status is written again, current and Ready.
        "restart_to_current_emulated_s": _seconds(probe.all_current_at, restart.emulated),
        "restart_to_current_wall_s": _wall(probe.all_current_wall, restart.wall),
        "restart_all_current": done,
        "restart_cpu_s": round(current.operator_cpu_since(restart), 2),
        "restart_emulator_cpu_s": round(current.emulators_cpu_since(restart), 2),
        "restart_loop_cpu_s": round(current.loop_cpu_since(restart), 2),
        "restart_azure_calls": dict(sorted(restart_azure.items())),
        "list_calls_after_restart": restart_lists,
        "list_pages_after_restart": restart_azure["snapshots.list"],
        "restart_kube_requests": current.kube_since(restart),
        "restart_status_writes": restart_writes,
        # The same counts from the restart to SETTLE after every status was current.
        "settled_azure_calls": dict(sorted(azure_calls(box, restart.azure_requests, settled.azure_requests).items())),
        "settled_kube_requests": settled.kube_since(restart),
        "settled_status_writes": settled_writes,
        "settled_list_calls": settled_lists,
        "settled_cpu_s": round(settled.operator_cpu_since(restart), 2),
        # The whole run.
        "slots_taken": sum(1 for r in requests if r.operation == "snapshots.put" and r.status < 300),
        "missed_slots": sum(int(s.get("missedSlots") or 0) for s in statuses),
        "snapshots_held": sum(int(s.get("snapshotCount") or 0) for s in statuses),
        "throttled_429": sum(1 for r in requests if r.status == 429),
        "violations": violations,
        "peak_rss_mb": round(float(psutil.Process().memory_info().rss) / _MB, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }
    if trace_memory:
        figures.update(heap_figures(heap, policies))
    return figures


def _per(count: int, policies: int, hours: float) -> float | None:
    return round(count / (policies * hours), 3) if hours > 0 else None


def run_on_looptime(coro: Callable[[], Any]) -> Any:
    """Run `coro()` on a fresh looptime event loop (emulated time) and return its result."""
    loop = looptime.new_event_loop(start=0, noop_cycles=NOOP_CYCLES)
    try:
        return loop.run_until_complete(coro())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kopf_overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--policies", type=int, default=200, help="disks, one hourly keepLast-3 policy each")
    parser.add_argument("--hours", type=int, default=6, help="emulated hours before the kill")
    parser.add_argument("--no-throttling", action="store_true", help="switch off the emulator's Azure budgets")
    parser.add_argument("--no-pacing", action="store_true", help="no pacer in the Azure adapter")
    parser.add_argument(
        "--trace-memory", action="store_true", help="split the heap between operator and emulators (slow; CPU off)"
    )
    args = parser.parse_args(argv)
    if args.policies < 1 or args.hours < 1:
        parser.error("--policies and --hours must be at least 1")
    result = run_on_looptime(
        lambda: run(
            args.policies,
            args.hours,
            throttling=not args.no_throttling,
            pacing=not args.no_pacing,
            trace_memory=args.trace_memory,
        )
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
