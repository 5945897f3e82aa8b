"""What `azsnap simulate` prints: a JSON-ready summary of a run (timeline, retention, counts, calls, invariants, size)."""

from __future__ import annotations

import asyncio
import bisect
import importlib.util
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

from azsnap.domain import retention, schedule
from azsnap.domain.validation import format_errors
from azsnap.offline.simulate import DiskTrace, SimulationOptions, SimulationRun, load_policy_file, simulate
from azsnap.offline.simulate_copies import copies_summary, copies_text, copy_invariants
from azsnap.offline.simulate_faults import FAULT_PROFILES
from azsnap.offline.simulate_plot import PLOT_SUFFIXES, write_plot

__all__ = ["estimated_used_gb", "render_text", "run_simulate", "slot_accounting", "summarize"]

_DAY: Final = timedelta(days=1)


def estimated_used_gb(times: Sequence[datetime], written_gb: float, change_rate: float) -> float:
    """Billed size of a chain of incremental snapshots taken at `times`.

    The oldest holds the disk's written data; each later one holds what changed since the one before it. A share
    `change_rate` of the written data changes per day, on blocks drawn at random, so over `g` days the changed
    share is `1 - (1 - change_rate) ** g` (blocks changed twice are billed once).
    """
    ordered = sorted(times)
    if not ordered:
        return 0.0
    total = written_gb
    for previous, current in itertools.pairwise(ordered):
        gap_days = (current - previous) / _DAY
        total += written_gb * (1.0 - (1.0 - change_rate) ** gap_days)
    return total


@dataclass(frozen=True)
class SlotAccounting:
    """Every scheduled slot of the run: taken, counted missed, or not settled yet when the run ended.

    A slot is settled once the policy's watermark (`slotsAccountedUntil`) passes it; the slots after it are taken
    or counted missed at the policy's next successful wake-up (e.g. one due within its deadline at the end).
    A suspended policy skips its slots on purpose: they are neither taken nor missed.
    """

    scheduled: int
    skipped: int
    taken: int
    missed: int
    unsettled: int
    #: Slots taken more than once (must be 0).
    duplicates: int
    #: Slots taken that the schedule does not have (must be 0).
    unexpected: int
    #: Settled slots neither taken nor counted missed; negative if more were counted missed than there are.
    unaccounted: int


def slot_accounting(run: SimulationRun, trace: DiskTrace) -> SlotAccounting:
    """Check one disk's slots against the schedule: each one taken once, or counted missed, or not settled yet."""
    sched = trace.policy.spec.schedule
    # A slot is due `offset` after it (`jitter`) and its snapshot keeps the slot's name: the run's slots are those
    # due after the start, and the one under way at the start is the latest slot due by then.
    since = run.options.start - schedule.slot_offset(sched, trace.disk_id)
    taken = [slot for _, _, slot in trace.created if slot is not None]
    taken_set = set(taken)
    expected = schedule.slots_between(sched, since, run.end)
    skipped = 0
    if trace.policy.spec.suspend:
        skipped, expected = len(expected), []
    first = schedule.previous_slot(sched, since)
    if first is not None and first in taken_set:
        expected.insert(0, first)  # the slot under way at the start is taken; earlier ones are not azsnap's to miss
    expected_set = set(expected)
    watermark = trace.status.slots_accounted_until
    not_taken = [s for s in expected if s not in taken_set]
    unsettled = [s for s in not_taken if watermark is None or s > watermark]
    missed = trace.status.missed_slots or 0
    return SlotAccounting(
        scheduled=len(expected) + skipped,
        skipped=skipped,
        taken=len(taken_set & expected_set),
        missed=missed,
        unsettled=len(unsettled),
        duplicates=len(taken) - len(taken_set),
        unexpected=len(taken_set - expected_set),
        unaccounted=len(not_taken) - len(unsettled) - missed,
    )


def _held_at(trace: DiskTrace, when: datetime) -> int:
    """Snapshots of the policy held at `when` (after the wake-ups up to and including it)."""
    index = bisect.bisect_right(trace.samples, when, key=lambda sample: sample[0])
    return trace.samples[index - 1][1] if index else 0


def _steady(trace: DiskTrace, end: datetime) -> float:
    """The time-weighted average held over the last day of the run."""
    since = max(end - _DAY, trace.samples[0][0]) if trace.samples else end
    if since >= end:
        return float(_held_at(trace, end))
    area = 0.0
    level, at = _held_at(trace, since), since
    for when, count in trace.samples:
        if when <= since:
            continue
        area += level * (when - at).total_seconds()
        level, at = count, when
    area += level * (end - at).total_seconds()
    return area / (end - since).total_seconds()


def _disk_summary(run: SimulationRun, trace: DiskTrace) -> dict[str, Any]:
    spec = trace.policy.spec
    limits = run.options.limits
    decision = retention.decide_retention(spec.retention, spec.schedule.zone, trace.final, run.end, limits)
    by_rule: Counter[str] = Counter(rule for rules in decision.keep.values() for rule in rules)
    times = [retention.snapshot_time(s) or run.end for s in trace.final]
    slots = slot_accounting(run, trace)
    final = sorted(trace.final, key=lambda s: (retention.snapshot_time(s) or run.end, s.name))
    return {
        "disk": trace.name,
        "held": len(trace.final),
        "peak": max((count for _, count in trace.samples), default=0),
        "steady": round(_steady(trace, run.end), 2),
        "cap": limits.per_disk_cap,
        "created": len(trace.created),
        "deleted": len(trace.deleted),
        "missed": slots.missed,
        "reconciles": trace.reconciles,
        "pending_deletions": len(decision.delete),
        "kept_by_rule": {rule: by_rule[rule] for rule in retention.RULES if by_rule[rule]},
        "used_gb": round(estimated_used_gb(times, trace.written_gb, run.options.change_rate), 2),
        "full_copies_gb": round(len(trace.final) * trace.written_gb, 2),
        "slots": asdict(slots),
        "final": [
            {
                "name": s.name,
                "time": (retention.snapshot_time(s) or run.end).isoformat(),
                "rules": list(decision.keep.get(s.name, ())),
            }
            for s in final
        ],
    }


def _timeline(run: SimulationRun) -> list[dict[str, Any]]:
    start = run.options.start
    throttled = [r.time for r in run.requests if r.status == 429]
    rows = []
    for day in range(run.options.days):
        lo, hi = start + day * _DAY, start + (day + 1) * _DAY
        last = day == run.options.days - 1

        def inside(when: datetime, lo: datetime = lo, hi: datetime = hi, last: bool = last) -> bool:
            return lo <= when < hi or (last and when == hi)

        rows.append(
            {
                "day": lo.date().isoformat(),
                "created": sum(1 for t in run.disks for when, _, _ in t.created if inside(when)),
                "deleted": sum(1 for t in run.disks for when, _ in t.deleted if inside(when)),
                "held": sum(_held_at(t, hi) for t in run.disks),
                "throttled": sum(1 for when in throttled if inside(when)),
            }
        )
    return rows


def describe_options(options: SimulationOptions) -> dict[str, Any]:
    """The options as JSON-ready values (for the summary)."""
    return {
        "disks": options.disks,
        "days": options.days,
        "faults": options.faults,
        "start": options.start.isoformat(),
        "change_rate": options.change_rate,
        "written_fraction": options.written_fraction,
        "disk_size_gb": options.disk_size_gb,
        "disk_sku": options.disk_sku,
        "list_every_s": int(options.relist.total_seconds()),
        "seed": options.seed,
    }


def summarize(run: SimulationRun) -> dict[str, Any]:
    """Everything `azsnap simulate` reports, as JSON-ready values (the `--json` line)."""
    disks = [_disk_summary(run, t) for t in run.disks]
    calls = Counter(r.operation for r in run.requests)
    kept: Counter[str] = Counter()
    for d in disks:
        kept.update(d["kept_by_rule"])
    invariants = {
        "duplicate_slots": sum(d["slots"]["duplicates"] for d in disks),
        "unexpected_slots": sum(d["slots"]["unexpected"] for d in disks),
        "unaccounted_slots": sum(abs(d["slots"]["unaccounted"]) for d in disks),
        "limit_violations": len(run.violations),
        "other_snapshots_deleted": len(run.bystanders) - len(run.bystanders_left),
    }
    statuses = [t.status for t in run.disks]
    copies = None if run.copies is None else copies_summary(run.copies, statuses, run.requests, run.spec, run.end)
    invariants |= copy_invariants(copies) if copies is not None else {}
    return {
        "policy": run.name,
        "options": describe_options(run.options),
        "faults": FAULT_PROFILES[run.options.faults].description,
        "end": run.end.isoformat(),
        "wakeups": run.wakeups,
        "timeline": _timeline(run),
        "held": sum(d["held"] for d in disks),
        "kept_by_rule": {rule: kept[rule] for rule in retention.RULES if kept[rule]},
        "disks": disks,
        "calls": dict(sorted(calls.items())),
        "calls_total": len(run.requests),
        "throttled": sum(1 for r in run.requests if r.status == 429),
        "server_errors": sum(1 for r in run.requests if 500 <= r.status < 600),
        "dropped": sum(1 for r in run.requests if r.status == 0),
        "missed": sum(d["missed"] for d in disks),
        "slots": {
            key: sum(d["slots"][key] for d in disks) for key in ("scheduled", "skipped", "taken", "missed", "unsettled")
        },
        "used_gb": round(sum(d["used_gb"] for d in disks), 2),
        "full_copies_gb": round(sum(d["full_copies_gb"] for d in disks), 2),
        "invariants": invariants,
        "violations": run.violations,
        "copies": copies,
        "ok": not any(invariants.values()),
    }


def _when(text: str) -> str:
    return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")


def render_text(summary: dict[str, Any]) -> str:
    """The human-readable report."""
    opts = summary["options"]
    lines = [
        f"azsnap simulate: {summary['policy']} on {opts['disks']} disk(s), {opts['days']} day(s) from "
        f"{_when(opts['start'])} UTC; faults: {opts['faults']} ({summary['faults']})",
        "The reconciler, the Azure SDK over HTTPS and the Azure emulator on one emulated clock: "
        f"{summary['wakeups']} wake-ups.",
        "",
        f"{'day':<12}{'created':>9}{'deleted':>9}{'held':>7}{'throttled':>11}",
    ]
    for row in summary["timeline"]:
        lines.append(f"{row['day']:<12}{row['created']:>9}{row['deleted']:>9}{row['held']:>7}{row['throttled']:>11}")
    lines += ["", "Kept at the end, by the rule that keeps each (one snapshot may be kept by several rules):"]
    for rule, count in summary["kept_by_rule"].items():
        times = [f["time"] for d in summary["disks"] for f in d["final"] if rule in f["rules"]]
        lines.append(f"  {rule:<12}{count:>5}   {_when(min(times))} … {_when(max(times))}")
    lines.append(f"  {'held':<12}{summary['held']:>5}")
    lines += ["", f"{'disk':<10}{'held':>6}{'peak':>6}{'steady':>8}{'cap':>6}{'missed':>8}{'used GB':>10}"]
    for d in summary["disks"]:
        lines.append(
            f"{d['disk']:<10}{d['held']:>6}{d['peak']:>6}{d['steady']:>8.1f}{d['cap']:>6}{d['missed']:>8}"
            f"{d['used_gb']:>10.1f}"
        )
    calls = ", ".join(f"{kind} {n}" for kind, n in summary["calls"].items())
    slots = summary["slots"]
    inv = summary["invariants"]
    lines += [
        "",
        f"Azure calls: {summary['calls_total']} ({calls}); throttled (429) {summary['throttled']}, "
        f"server errors {summary['server_errors']}, dropped connections {summary['dropped']}.",
        f"Slots: {slots['scheduled']} scheduled, {slots['taken']} taken, {slots['missed']} missed, "
        + (f"{slots['skipped']} skipped while suspended, " if slots["skipped"] else "")
        + f"{slots['unsettled']} not settled yet at the end (taken or counted missed at the next wake-up).",
        f"Estimated used size: {summary['used_gb']:.1f} GB for {summary['held']} incremental snapshot(s) "
        f"(full copies would hold {summary['full_copies_gb']:.1f} GB); the first holds the disk's written data "
        f"({opts['written_fraction']:.0%} of {opts['disk_size_gb']} GB), then {opts['change_rate']:.1%} of it "
        "changes per day.",
        "Invariants: "
        + ", ".join(f"{name.replace('_', ' ')} {value}" for name, value in inv.items())
        + (": all hold." if summary["ok"] else ": BROKEN."),
    ]
    lines += [f"  {v}" for v in summary["violations"]]
    if summary.get("copies"):
        lines += copies_text(summary["copies"])
    return "\n".join(lines)


def run_simulate(
    policy_file: Path,
    options: SimulationOptions,
    *,
    out: TextIO,
    err: TextIO,
    plot: Path | None = None,
    as_json: bool = False,
    copy_cap_source: str = "the operator's default",
) -> int:
    """The `azsnap simulate` command: 0 when every invariant holds, 1 when one broke, 2 for a bad file or flag."""
    spec, name, errors = load_policy_file(policy_file)
    if spec is None or errors:
        err.write(f"azsnap simulate: {policy_file} is not a valid SnapshotPolicy; fix these fields:\n")
        err.write("  " + format_errors(errors, sep="\n  ") + "\n")
        return 2
    problems = options.problems()
    if plot is not None and plot.suffix.lower() not in PLOT_SUFFIXES:
        problems.append(f"--plot: the file must end in {' or '.join(PLOT_SUFFIXES)}, got {plot.name!r}")
    if plot is not None and importlib.util.find_spec("matplotlib") is None:
        problems.append("--plot: matplotlib is not installed; install azsnap[demo] to draw charts")
    if problems:
        err.write("azsnap simulate: " + "; ".join(problems) + "\n")
        return 2
    run = asyncio.run(simulate(spec, options, name=name))
    summary = summarize(run)
    if summary["copies"] is not None:  # the cap is options.limits': say where it came from
        summary["copies"]["cap_source"] = copy_cap_source
    if plot is not None:
        write_plot(run, plot)
        summary["plot"] = str(plot)
    if as_json:
        out.write(json.dumps(summary, separators=(",", ":")) + "\n")
    else:
        out.write(render_text(summary) + "\n")
        if plot is not None:
            out.write(f"Chart written to {plot}.\n")
    return 0 if summary["ok"] else 1
