"""The soak's fleet and its seeded schedule: which policies run, and the faults, restarts and disk changes over time."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.emulator import FaultRule
from bench.soak_checks import PolicyLife

__all__ = ["EPOCH", "LOCATION", "QUIET", "SUBSCRIPTION", "Action", "disk_id", "make_lives", "make_schedule"]

SUBSCRIPTION: Final = "5e1f0000-0000-4000-8000-0000000050a4"
LOCATION: Final = "westeurope"
#: A Monday; 30 days from here cross Europe's switch to summer time (29 March).
EPOCH: Final = datetime(2026, 3, 2, tzinfo=UTC)
#: The last hours run without new faults, so the end state is settled before it is judged.
QUIET: Final = timedelta(hours=4)
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
