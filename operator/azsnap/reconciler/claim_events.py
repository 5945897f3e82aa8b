"""The events of one reconcile of a claim policy: at most `MAX_EVENTS`, the most telling first.

A policy over many claims makes an event per disk in a normal round (a snapshot created, one deleted), so the
bound keeps warnings first, then the rarer news (a recreated disk, a gone claim's snapshots retired), and the
routine creates and deletes last; one more event says how many were left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from azsnap.reconciler.report import Event

__all__ = ["MAX_EVENTS", "bounded_events"]

#: At most this many events per reconcile of a claim policy (the last says how many more there were).
MAX_EVENTS: Final = 10
#: Events every disk posts in a normal round: the first left out.
_ROUTINE: Final = frozenset({"SnapshotCreated", "SnapshotDeleted"})


def bounded_events(events: Sequence[Event]) -> list[Event]:
    """The events to post: all of them up to `MAX_EVENTS`, else the most telling and a `MoreEvents` count."""
    if len(events) <= MAX_EVENTS:
        return list(events)
    ordered = sorted(events, key=lambda e: (e.type != "Warning", e.reason in _ROUTINE))
    left = len(ordered) - (MAX_EVENTS - 1)
    summary = Event("Normal", "MoreEvents", f"{left} more event(s) of this reconcile are not posted; see status.disks.")
    return [*ordered[: MAX_EVENTS - 1], summary]
