"""Copy status of a policy over claims: each disk's copy accounting in its `status.disks` entry, summed per target.

Each disk of a claim policy is copied as a policy of its own would be (domain/copies.py): its watermark, missed
copies and lag samples per target live in its entry's `copies`, read back by its next reconcile. The policy's
`status.copies` sums them per target: copies held, running and missed over the disks, the oldest of the disks'
newest copied slots (every disk has a copy at least that recent) and watermarks, and the lag over every disk's
samples. A disk the bounded `status.disks` leaves out keeps only a watermark per target (`domain/copy_accounts.py`):
the missed copies and lag samples its reconciles add are kept per target in `copiesMissedNotShown` and
`lagSecondsNotShown`, part of the sums. Pure: no I/O.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from azsnap.domain.copies import MAX_LAG_SAMPLES
from azsnap.domain.models import CopyTarget

__all__ = ["disk_copies", "sum_copies"]

#: What a disk's entry keeps of its report's `status.copies` (p50 and max are derived again from the samples).
_DISK_KEYS: Final = (
    "region",
    "resourceGroup",
    "subscriptionId",
    "copiesHeld",
    "copiesRunning",
    "copiesMissed",
    "newestCopiedSlot",
    "accountedUntil",
    "recentLagSeconds",
)


def disk_copies(entries: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]] | None:
    """A disk's `copies` for its `status.disks` entry, from its reconcile's `status.copies` (None: nothing new)."""
    if not entries:
        return None
    return [{k: entry[k] for k in _DISK_KEYS if entry.get(k) is not None} for entry in entries]


def _same(entry: Mapping[str, Any], target: CopyTarget) -> bool:
    return entry.get("region") == target.region and entry.get("resourceGroup") == target.resource_group


def _matching(entries: Iterable[Sequence[Mapping[str, Any]] | None], target: CopyTarget) -> list[Mapping[str, Any]]:
    return [e for disk in entries if disk for e in disk if _same(e, target)]


def _lags(entries: Iterable[Mapping[str, Any]], key: str = "recentLagSeconds") -> list[int]:
    return [int(x) for e in entries for x in e.get(key) or () if isinstance(x, int | float)]


def sum_copies(
    targets: Sequence[CopyTarget] | None,
    per_disk: Iterable[Sequence[Mapping[str, Any]] | None],
    *,
    not_shown: Iterable[Sequence[Mapping[str, Any]] | None] = (),
    carried: Sequence[Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]] | None:
    """The policy's `status.copies`: per target of the spec, its disks' entries summed (None without targets).

    `per_disk`: the copies of the disks `status.disks` shows; `not_shown`: of those it leaves out, whose missed
    copies and lags are added to what `carried` (the last `status.copies`) kept of such disks, since their entries
    are not kept (a left-out disk's reconcile counts only what is new since its watermark).
    """
    if not targets:
        return None
    shown, hidden = list(per_disk), list(not_shown)
    summed: list[dict[str, Any]] = []
    for target in targets:
        listed, left_out = _matching(shown, target), _matching(hidden, target)
        found = listed + left_out
        before = next((e for e in carried or () if _same(e, target)), {})
        missed_not_shown = int(before.get("copiesMissedNotShown") or 0) + sum(
            int(e.get("copiesMissed") or 0) for e in left_out
        )
        lags_not_shown = [*_lags([before], "lagSecondsNotShown"), *_lags(left_out)][-MAX_LAG_SAMPLES:]
        lags = [*lags_not_shown, *_lags(listed)]
        newest = [str(e["newestCopiedSlot"]) for e in found if e.get("newestCopiedSlot")]
        until = [str(e["accountedUntil"]) for e in found if e.get("accountedUntil")]
        subscription = target.subscription_id or next(
            (e["subscriptionId"] for e in found if "subscriptionId" in e), None
        )
        entry: dict[str, Any] = {
            "region": target.region,
            "resourceGroup": target.resource_group,
            "subscriptionId": subscription,
            "copiesHeld": sum(int(e.get("copiesHeld") or 0) for e in found),
            "copiesRunning": sum(int(e.get("copiesRunning") or 0) for e in found),
            "copiesMissed": sum(int(e.get("copiesMissed") or 0) for e in listed) + missed_not_shown,
            # Same-format UTC instants: the text order is the time order.
            "newestCopiedSlot": min(newest) if newest and len(newest) == len(found) else None,
            "accountedUntil": min(until) if until and len(until) == len(found) else None,
            "lagP50Seconds": int(statistics.median(lags)) if lags else None,
            "lagMaxSeconds": max(lags) if lags else None,
            "recentLagSeconds": lags[-MAX_LAG_SAMPLES:],
            "copiesMissedNotShown": missed_not_shown or None,
            "lagSecondsNotShown": lags_not_shown or None,
        }
        summed.append({k: v for k, v in entry.items() if v is not None})  # a null inside a list item is invalid
    return summed
