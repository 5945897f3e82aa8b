"""`azsnap preview`: validate a SnapshotPolicy file, then walk the pure core through simulated days and print it."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Final, TextIO

import yaml
from pydantic import ValidationError

from azsnap.domain import naming, retention
from azsnap.domain.durations import format_duration
from azsnap.domain.models import API_GROUP, API_VERSION, KIND, DiskRef, Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk, Limits, Snapshot
from azsnap.domain.planner import as_made, plan
from azsnap.domain.schedule import to_instant, validate_schedule

__all__ = [
    "PREVIEW_START",
    "PreviewDay",
    "PreviewResult",
    "load_policy",
    "preview_disk",
    "run_preview",
    "simulate",
    "stand_in_ref",
]

#: Simulated time starts on this day (a Monday), at midnight in the schedule's zone, so a file always previews alike.
PREVIEW_START: Final = date(2026, 1, 5)
_API_VERSION: Final = f"{API_GROUP}/{API_VERSION}"
_WIDTH: Final = 100


class PolicyFileError(ValueError):
    """The file is not a valid SnapshotPolicy; `problems` name the fields."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass
class PreviewDay:
    """What happened on one simulated day (in the schedule's time zone)."""

    day: date
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    missed: int = 0
    blocked: set[str] = field(default_factory=set)
    held_at_end: int = 0


@dataclass(frozen=True)
class PreviewResult:
    """A whole simulated run: the days, and at the end the snapshots held and the rules keeping each."""

    days: list[PreviewDay]
    held: list[Snapshot]
    decision: retention.RetentionDecision
    end: datetime


def _error_text(err: Any) -> str:
    message = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def load_policy(path: Path) -> Policy:
    """Read and validate a SnapshotPolicy manifest; PolicyFileError lists every problem with its field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyFileError([f"{path}: cannot read the file ({exc.strerror or exc})"]) from exc
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise PolicyFileError([f"{path}: not valid YAML ({exc})"]) from exc
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise PolicyFileError([f"{path}: expected exactly one SnapshotPolicy object, found {len(documents)} documents"])
    body: dict[str, Any] = documents[0]
    problems: list[str] = []
    if body.get("apiVersion") != _API_VERSION:
        problems.append(f"apiVersion: must be {_API_VERSION}, got {body.get('apiVersion')!r}")
    if body.get("kind") != KIND:
        problems.append(f"kind: must be {KIND}, got {body.get('kind')!r}")
    metadata = body.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str) or not metadata["name"]:
        problems.append("metadata.name: required")
        metadata = {}
    spec: SnapshotPolicySpec | None = None
    raw_spec = body.get("spec")
    if not isinstance(raw_spec, dict):
        problems.append("spec: required, a mapping with disk, schedule and retention")
    else:
        try:
            spec = SnapshotPolicySpec.model_validate(raw_spec)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                where = ".".join(["spec", *(str(part) for part in err["loc"])])
                problems.append(f"{where}: {_error_text(err)}")
    if spec is not None:
        problems.extend(validate_schedule(spec.schedule))
    if problems or spec is None:
        raise PolicyFileError(problems)
    namespace = str(metadata.get("namespace") or "default")
    name = str(metadata["name"])
    uid = str(metadata.get("uid") or uuid.uuid5(uuid.NAMESPACE_URL, f"azsnap-preview/{namespace}/{name}"))
    return Policy(ref=PolicyRef(namespace=namespace, name=name, uid=uid), spec=spec)


def stand_in_ref(spec: SnapshotPolicySpec) -> DiskRef:
    """`spec.disk`, or for a claim target a stand-in disk named after the claim (its disk is known only in a cluster)."""
    if spec.disk is not None:
        return spec.disk
    name = spec.volume_claim or "claim"
    return DiskRef(
        id=f"/subscriptions/{uuid.UUID(int=0)}/resourceGroups/preview/providers/Microsoft.Compute/disks/{name}"
    )


def preview_disk(policy: Policy) -> Disk:
    """A stand-in for the policy's disk, named after its ARM ID (or after the claim, for one disk of a claim target)."""
    ref = stand_in_ref(policy.spec)
    return ref.stand_in("preview", str(uuid.uuid5(uuid.NAMESPACE_URL, ref.id.lower())))


def simulate(
    policy: Policy,
    days: int,
    *,
    start: datetime | None = None,
    limits: Limits | None = None,
) -> PreviewResult:
    """Plan, create and delete from `start` (default: PREVIEW_START, local midnight) for `days` days.

    Every create succeeds at once; the next step is the plan's own `next_time`, as the operator would wake.
    """
    limits = limits or Limits()
    disk = preview_disk(policy)
    zone = policy.spec.schedule.zone
    if start is None:
        start = to_instant(datetime.combine(PREVIEW_START, time()), zone)
    end = to_instant(start.astimezone(zone).replace(tzinfo=None) + timedelta(days=days), zone)  # calendar days
    observed: list[Snapshot] = []
    create_times: list[datetime] = []
    accounted: datetime | None = None
    by_day: dict[date, PreviewDay] = {}
    now = start

    def today(when: datetime) -> PreviewDay:
        key = when.astimezone(zone).date()
        return by_day.setdefault(key, PreviewDay(key))

    while now < end:
        recent = [t for t in create_times if t > now - limits.window]
        the_plan = plan(policy, disk, observed, recent, now, limits, accounted_until=accounted)
        day = today(now)
        doomed = {d.snapshot.name for d in the_plan.deletes}
        observed = [s for s in observed if s.name not in doomed]
        day.deleted.extend(d.snapshot.name for d in the_plan.deletes)
        existing = {s.name for s in observed}
        for action in the_plan.creates:
            if action.name in existing:
                continue
            made = as_made(action, disk, now, policy.spec.snapshot.incremental)
            observed.append(replace(made, id=f"{disk.id}/snapshots/{action.name}"))
            create_times.append(now)
            day.created.append(action.name)
        # every create succeeded, so what they made unnecessary goes at once, as the reconciler does it
        gone = {d.snapshot.name for d in the_plan.deletes_after_creates}
        observed = [s for s in observed if s.name not in gone]
        day.deleted.extend(d.snapshot.name for d in the_plan.deletes_after_creates)
        day.missed += len(the_plan.missed)
        day.blocked.update(b.reason for b in the_plan.blocked)
        day.held_at_end = sum(1 for s in observed if naming.is_owned(s, policy.ref, disk))
        accounted = the_plan.accounted_until
        now = the_plan.next_time

    owned = [s for s in observed if naming.is_owned(s, policy.ref, disk)]
    decision = retention.decide_retention(policy.spec.retention, zone, owned, end, limits)
    held = sorted(
        (s for s in owned if s.name in decision.keep), key=lambda s: retention.snapshot_time(s) or end, reverse=True
    )
    # every day of the run is shown; a day on which nothing ran holds what the day before held
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(zone).date()
    ordered: list[PreviewDay] = []
    held_count = 0
    current = first
    while current <= last:
        entry = by_day.get(current)
        if entry is None:
            entry = PreviewDay(current, held_at_end=held_count)
        held_count = entry.held_at_end
        ordered.append(entry)
        current += timedelta(days=1)
    return PreviewResult(days=ordered, held=held, decision=decision, end=end)


def _wrap(prefix: str, names: Sequence[str]) -> str:
    return textwrap.fill(
        ", ".join(names), width=_WIDTH, initial_indent=f"    {prefix} ", subsequent_indent=" " * (len(prefix) + 5)
    )


def _describe(policy: Policy) -> str:
    sched = policy.spec.schedule
    what = f"cron {sched.cron!r}" if sched.cron else f"every {format_duration(sched.every or timedelta(0))}"
    parts = [f"{what} in {sched.time_zone}", f"starting deadline {format_duration(sched.starting_deadline)}"]
    if sched.jitter:
        parts.append(f"jitter {format_duration(sched.jitter)}")
    return ", ".join(parts)


def _retention_text(policy: Policy) -> str:
    r = policy.spec.retention
    rules: list[str] = []
    for label, value in (
        ("keepLast", r.keep_last),
        ("maxAge", format_duration(r.max_age) if r.max_age else None),
        ("hourly", r.hourly),
        ("daily", r.daily),
        ("weekly", r.weekly),
        ("monthly", r.monthly),
        ("yearly", r.yearly),
    ):
        if value is not None:
            rules.append(f"{label} {value}")
    rules.append(f"minKeep {r.min_keep}")
    return ", ".join(rules)


def render(policy: Policy, result: PreviewResult, out: TextIO) -> None:
    """Print a run: a line per day with what was created and deleted, then the final set by rule."""
    disk = preview_disk(policy)
    zone = policy.spec.schedule.zone
    first = result.days[0].day if result.days else result.end.date()
    print(f"Policy {policy.ref.namespace}/{policy.ref.name} on disk {disk.name}", file=out)
    print(f"  schedule:  {_describe(policy)}", file=out)
    print(f"  retention: {_retention_text(policy)}", file=out)
    if policy.spec.suspend:
        print("  suspended: nothing is created or deleted while spec.suspend is true", file=out)
    stem = naming.snapshot_name(disk.name, policy.ref.uid, result.end)[: -len("YYYYMMDDTHHMMZ")]

    def short(names: Sequence[str]) -> list[str]:
        return [n.removeprefix(stem) for n in names]

    print(f"  simulated: {len(result.days)} day(s) from {first} ({zone.key}), every snapshot succeeding", file=out)
    print(f"  names:     {stem}<slot in UTC>; only <slot> is shown below\n", file=out)
    print(f"{'day':<12}{'created':>9}{'deleted':>9}{'held':>7}  notes", file=out)
    for day in result.days:
        notes: list[str] = []
        if day.missed:
            notes.append(f"{day.missed} slot(s) missed")
        if day.blocked:
            notes.append("blocked: " + ", ".join(sorted(day.blocked)))
        line = f"{day.day!s:<12}{len(day.created):>9}{len(day.deleted):>9}{day.held_at_end:>7}  {'; '.join(notes)}"
        print(line.rstrip(), file=out)
        if day.created:
            print(_wrap("+", short(day.created)), file=out)
        if day.deleted:
            print(_wrap("-", short(day.deleted)), file=out)
    at = result.end.astimezone(zone)
    print(
        f"\nHeld at {at:%Y-%m-%d %H:%M} {zone.key}: {len(result.held)} snapshot(s), by the rule keeping each", file=out
    )
    for rule in retention.RULES:
        names = [s.name for s in result.held if rule in result.decision.keep.get(s.name, ())]
        if names:
            print(_wrap(f"{rule} ({len(names)}):", short(names)), file=out)
    if result.decision.delete:
        print(f"  {len(result.decision.delete)} more snapshot(s) are due for deletion at the next run", file=out)


def run_preview(path: Path, days: int, *, out: TextIO) -> int:
    """Validate `path` and print a simulated run of `days` days; 0 on success, 2 for a bad policy or argument."""
    if days < 1:
        print("--days must be at least 1", file=out)
        return 2
    try:
        policy = load_policy(path)
    except PolicyFileError as exc:
        print(f"{path} is not a valid SnapshotPolicy:", file=out)
        for problem in exc.problems:
            print(f"  {problem}", file=out)
        return 2
    render(policy, simulate(policy, days), out)
    return 0
