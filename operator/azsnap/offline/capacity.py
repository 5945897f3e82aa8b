"""Capacity report: the Azure calls a set of policies needs per hour, per subscription, against the request budget."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import ValidationError

from azsnap.cloud.buckets import PacerConfig
from azsnap.cloud.budget import BucketUse, capacity_needed, theoretical_best_lateness
from azsnap.domain import schedule
from azsnap.domain.models import API_GROUP, KIND, Policy, PolicyRef, SnapshotPolicySpec
from azsnap.offline.preview import stand_in_ref
from azsnap.settings import CopyCap, copy_cap

__all__ = [
    "CapacityError",
    "SubscriptionCapacity",
    "assess",
    "load_policies",
    "render_json",
    "render_table",
]

#: How far ahead the schedules are counted to get a sustained hourly rate (a week covers daily and weekly rhythms).
HORIZON: Final = timedelta(days=7)
#: Items per page of a snapshot list (what Azure's Compute RP and the emulator send).
PAGE_SIZE: Final = 100
#: HTTP reads per write besides the write itself: the long-running operation's polls and the final GET.
READS_PER_CREATE: Final = 3
READS_PER_DELETE: Final = 2


#: libyaml's safe loader when PyYAML has it: an estate's worth of policies parses in a fraction of the time.
_LOADER: Final[type[yaml.SafeLoader]] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CapacityError(ValueError):
    """A policy file could not be read; `problems` name the file and the field."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class SubscriptionCapacity:
    """One subscription's demand (all its disks assumed in one region: the conservative case) and its verdict."""

    subscription_id: str
    policies: int
    resource_groups: int
    creates_per_hour: float
    deletes_per_hour: float
    lists_per_hour: float
    gets_per_hour: float
    peak_burst: int  # the most creates due at one instant
    burst_last_wait_s: float  # how long the last of that burst waits under Azure's create buckets
    tightest_deadline_s: float  # the shortest startingDeadline among the policies of that burst
    buckets: tuple[BucketUse, ...] = field(default_factory=tuple)
    #: Of `creates_per_hour` (and as many deletes), the cross-region copies (`spec.copies`): counted in the one
    #: region assumed, the conservative case; they follow their snapshots, never in the burst.
    copies_per_hour: float = 0.0
    #: The most copies due to start at one instant into one target subscription and region, and the cap on the
    #: copies running there at once (`AZSNAP_PARALLEL_COPIES`): past it they go in waves, each adding its copy time.
    copy_burst: int = 0
    copy_cap: int = 100
    #: Where `copy_cap` came from (`settings.copy_cap`): the flag, the operator's variable or its default.
    copy_cap_source: str = "the operator's default"

    @property
    def copy_waves(self) -> int:
        return -(-self.copy_burst // max(1, self.copy_cap))

    @property
    def burst_fits(self) -> bool:
        return self.burst_last_wait_s < self.tightest_deadline_s

    @property
    def fits(self) -> bool:
        return self.burst_fits and all(use.fits for use in self.buckets)

    def problems(self) -> list[str]:
        found = [
            f"{use.policy} needs {use.needed_per_hour:.0f}/h, more than the {use.paced_per_hour:.0f}/h azsnap paces "
            f"to ({use.utilisation:.0%} of Azure's budget): spread the policies over more subscriptions or "
            "snapshot less often"
            for use in self.buckets
            if not use.fits
        ]
        if not self.burst_fits:
            found.append(
                f"{self.peak_burst} creates fall due at one instant; the last would wait {self.burst_last_wait_s:.0f}s, "
                f"past the shortest startingDeadline ({self.tightest_deadline_s:.0f}s): set schedule.jitter "
                "(e.g. 30m) or a longer startingDeadline"
            )
        return found


def load_policies(paths: Iterable[Path]) -> list[Policy]:
    """Every SnapshotPolicy in the files (multi-document YAML, `kind: List` too) and directories (*.yaml, *.yml)."""
    policies: list[Policy] = []
    problems: list[str] = []
    for path in _files(paths, problems):
        try:
            text = path.read_text(encoding="utf-8")
            documents = [d for d in yaml.load_all(text, Loader=_LOADER) if d is not None]
        except (OSError, yaml.YAMLError) as exc:
            problems.append(f"{path}: cannot read it as YAML ({exc})")
            continue
        for index, body in enumerate(_objects(documents)):
            if not isinstance(body, dict) or body.get("kind") != KIND:
                continue
            if not str(body.get("apiVersion", "")).startswith(f"{API_GROUP}/"):
                continue
            raw_metadata = body.get("metadata")
            metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
            name = str(metadata.get("name") or f"document-{index}")
            namespace = str(metadata.get("namespace") or "default")
            try:
                spec = SnapshotPolicySpec.model_validate(body.get("spec"))
            except ValidationError as exc:
                for err in exc.errors(include_url=False):
                    where = ".".join(["spec", *(str(part) for part in err["loc"])])
                    message = str(err["msg"]).removeprefix("Value error, ")  # pydantic's prefix tells a user nothing
                    problems.append(f"{path} ({namespace}/{name}): {where}: {message}")
                continue
            uid = str(metadata.get("uid") or f"{namespace}/{name}")
            policies.append(Policy(PolicyRef(namespace, name, uid), spec))
    if problems:
        raise CapacityError(problems)
    return policies


def _files(paths: Iterable[Path], problems: list[str]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
        elif path.is_file():
            yield path
        else:
            problems.append(f"{path}: no such file or directory")


def _objects(documents: Iterable[Any]) -> Iterator[Any]:
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == "List" and isinstance(document.get("items"), list):
            yield from document["items"]
        else:
            yield document


def _retained(spec: SnapshotPolicySpec, per_hour: float) -> float:
    """Roughly how many snapshots the policy holds in steady state (for the pages a list costs)."""
    rules = spec.retention
    counts = [rules.keep_last, rules.hourly, rules.daily, rules.weekly, rules.monthly, rules.yearly]
    held = float(sum(c for c in counts if c))
    if rules.max_age is not None:
        held = max(held, per_hour * rules.max_age.total_seconds() / 3600)
    return max(held, float(rules.min_keep))


def assess(
    policies: Sequence[Policy],
    now: datetime,
    config: PacerConfig | None = None,
    *,
    list_freshness: timedelta = timedelta(seconds=30),
    parallel_copies: CopyCap | None = None,
) -> list[SubscriptionCapacity]:
    """Per subscription: sustained creates, deletes, lists and gets per hour, the worst burst, and the verdict.

    Creates are the slots over the next week, per hour. In steady state retention deletes as many as it creates.
    Lists follow azsnap's shared observation: one paged list per resource group per distinct due instant, at most
    one per `list_freshness`. Gets: one disk read per due instant per policy, plus each write's operation polls.
    """
    config = config or PacerConfig()
    cap = parallel_copies or copy_cap(None, {})
    hours = HORIZON.total_seconds() / 3600
    by_sub: dict[str, list[Policy]] = {}
    for policy in policies:
        if policy.spec.suspend:
            continue
        by_sub.setdefault(stand_in_ref(policy.spec).coordinates.subscription_id.lower(), []).append(policy)
    slots_of: dict[str, list[datetime]] = {}  # many policies share a schedule: expand each one once
    results = []
    for sub, members in sorted(by_sub.items()):
        creates = copies = 0
        copy_instants: dict[tuple[str, str, datetime], int] = {}  # (target subscription, region, due): copies
        instants: dict[datetime, int] = {}
        deadline_at: dict[datetime, float] = {}
        group_instants: dict[str, set[datetime]] = {}
        group_held: dict[str, float] = {}
        # Policies with the same schedule, offset, deadline and group fall due together: count them once.
        cohorts: dict[tuple[str, timedelta, float, str], int] = {}
        copy_cohorts: dict[tuple[str, timedelta, str, str], int] = {}
        for policy in members:
            spec = policy.spec
            key = spec.schedule.model_dump_json()
            slots = slots_of.get(key)
            if slots is None:
                slots = slots_of[key] = schedule.slots_between(spec.schedule, now, now + HORIZON)
            creates += len(slots)
            copies += len(slots) * len(spec.copies or [])  # one CopyStart per snapshot and target, then its delete
            ref = stand_in_ref(spec)
            group = (spec.snapshot.resource_group or ref.coordinates.resource_group).lower()
            offset = schedule.slot_offset(spec.schedule, ref.id)
            cohort = (key, offset, spec.schedule.starting_deadline.total_seconds(), group)
            cohorts[cohort] = cohorts.get(cohort, 0) + 1
            for target in spec.copies or []:
                where = ((target.subscription_id or sub).lower(), target.region.lower())
                copy_cohorts[(key, offset, *where)] = copy_cohorts.get((key, offset, *where), 0) + 1
            group_held[group] = group_held.get(group, 0.0) + _retained(spec, len(slots) / hours)
        for (key, offset, deadline, group), size in cohorts.items():
            seen = group_instants.setdefault(group, set())
            for slot in slots_of[key]:
                due = slot + offset
                instants[due] = instants.get(due, 0) + size
                deadline_at[due] = min(deadline_at.get(due, math.inf), deadline)
                seen.add(due)
        for (key, offset, target_sub, region), size in copy_cohorts.items():
            for slot in slots_of[key]:
                at = (target_sub, region, slot + offset)
                copy_instants[at] = copy_instants.get(at, 0) + size
        per_hour = (creates + copies) / hours
        lists = 0.0
        max_lists = 3600 / max(1.0, list_freshness.total_seconds())
        # A copy is looked at about twice after the reconcile that starts it (reconciler/copies.py): more rounds.
        looks = 2 * len({when for (_, _, when) in copy_instants}) / hours
        for group, seen in group_instants.items():
            rounds = min(len(seen) / hours + looks, max_lists)
            lists += rounds * max(1, math.ceil(group_held[group] / PAGE_SIZE))
        gets = per_hour + READS_PER_CREATE * per_hour + READS_PER_DELETE * per_hour
        peak_at = max(instants, key=lambda when: (instants[when], -deadline_at[when]), default=None)
        burst = instants.get(peak_at, 0) if peak_at is not None else 0
        last_wait = theoretical_best_lateness(burst, config)[-1] if burst else 0.0
        tightest = deadline_at[peak_at] if peak_at is not None else math.inf
        # The polls among those reads draw on Microsoft.Compute/GetOperation (all but the create's final GET).
        polls = (READS_PER_CREATE - 1) * per_hour + READS_PER_DELETE * per_hour
        report = capacity_needed(per_hour, per_hour, lists, config, gets_per_hour=gets - polls, polls_per_hour=polls)
        results.append(
            SubscriptionCapacity(
                subscription_id=sub,
                policies=len(members),
                resource_groups=len(group_instants),
                creates_per_hour=per_hour,
                deletes_per_hour=per_hour,
                lists_per_hour=lists,
                gets_per_hour=gets,
                peak_burst=burst,
                burst_last_wait_s=last_wait,
                tightest_deadline_s=tightest,
                buckets=report.buckets,
                copies_per_hour=copies / hours,
                copy_burst=max(copy_instants.values(), default=0),
                copy_cap=cap.value,
                copy_cap_source=cap.source,
            )
        )
    return results


def render_table(results: Sequence[SubscriptionCapacity]) -> str:
    """A plain-text table per subscription: demand per hour, each budget's utilisation, and what does not fit."""
    if not results:
        return "No active SnapshotPolicy found: nothing needs Azure's budget.\n"
    lines: list[str] = []
    for row in results:
        verdict = "fits" if row.fits else "DOES NOT FIT"
        lines.append(
            f"subscription {row.subscription_id} (one region assumed): {row.policies} policies in "
            f"{row.resource_groups} resource groups: {verdict}"
        )
        lines.append(
            f"  per hour: {row.creates_per_hour:.0f} creates, {row.deletes_per_hour:.0f} deletes, "
            f"{row.lists_per_hour:.0f} list pages, {row.gets_per_hour:.0f} reads"
            + (
                f" (copies to other regions: {row.copies_per_hour:.0f} creates and deletes)"
                if row.copies_per_hour
                else ""
            )
        )
        lines.append(
            f"  largest burst: {row.peak_burst} creates due at once; the last waits {row.burst_last_wait_s:.0f}s "
            f"(startingDeadline {row.tightest_deadline_s:.0f}s)"
        )
        if row.copy_burst:
            lines.append(
                f"  copies: at most {row.copy_burst} start at once into one region, {row.copy_cap} may run there at "
                f"once ({row.copy_cap_source}): {row.copy_waves} wave(s), each adding a copy's time to the copy lag (docs/dr.md)"
            )
        width = max(len(use.policy) for use in row.buckets)
        lines.append(f"  {'budget'.ljust(width)}  {'needed/h':>9}  {'Azure/h':>9}  {'paced/h':>9}  {'use':>6}")
        for use in sorted(row.buckets, key=lambda u: -u.utilisation):
            mark = "" if use.fits else "  over"
            lines.append(
                f"  {use.policy.ljust(width)}  {use.needed_per_hour:9.0f}  {use.budget_per_hour:9.0f}  "
                f"{use.paced_per_hour:9.0f}  {use.utilisation:6.1%}{mark}"
            )
        lines.extend(f"  problem: {problem}" for problem in row.problems())
    return "\n".join(lines) + "\n"


def render_json(results: Sequence[SubscriptionCapacity]) -> dict[str, Any]:
    return {
        "fits": all(row.fits for row in results),
        "subscriptions": [
            {
                "subscriptionId": row.subscription_id,
                "policies": row.policies,
                "resourceGroups": row.resource_groups,
                "createsPerHour": round(row.creates_per_hour, 2),
                "copiesPerHour": round(row.copies_per_hour, 2),
                "copyBurst": row.copy_burst,
                "copyWaves": row.copy_waves,
                "copyCap": row.copy_cap,
                "copyCapSource": row.copy_cap_source,
                "deletesPerHour": round(row.deletes_per_hour, 2),
                "listsPerHour": round(row.lists_per_hour, 2),
                "getsPerHour": round(row.gets_per_hour, 2),
                "peakBurst": row.peak_burst,
                "burstLastWaitSeconds": round(row.burst_last_wait_s, 1),
                "tightestStartingDeadlineSeconds": row.tightest_deadline_s,
                "fits": row.fits,
                "problems": row.problems(),
                "budgets": [
                    {
                        "policy": use.policy,
                        "neededPerHour": round(use.needed_per_hour, 2),
                        "azurePerHour": round(use.budget_per_hour, 2),
                        "pacedPerHour": round(use.paced_per_hour, 2),
                        "utilisation": round(use.utilisation, 4),
                        "fits": use.fits,
                    }
                    for use in row.buckets
                ],
            }
            for row in results
        ],
    }
