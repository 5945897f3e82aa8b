"""What the handlers share, built once at start-up and kept in kopf's memo."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from azsnap.clock import Clock
from azsnap.cloud.interface import CloudClient
from azsnap.metrics import Metrics, MetricsServer
from azsnap.reconciler import Reconciler
from azsnap.reconciler.claims import ClaimInterest
from azsnap.reconciler.drill import Driller
from azsnap.reconciler.restore import RestoreReconciler, VolumeWriter
from azsnap.reconciler.volume_snapshots import Publisher, SnapshotObjects
from azsnap.settings import Settings

__all__ = ["MEMO_KEY", "Runtime"]

#: The key under which the runtime lives in kopf's memo.
MEMO_KEY = "azsnap"


@dataclass
class Runtime:
    """Clients and per-policy bookkeeping of one operator process."""

    settings: Settings
    clock: Clock
    cloud: CloudClient
    reconciler: Reconciler
    metrics: Metrics
    metrics_server: MetricsServer | None = None
    #: When each policy (by UID) should be reconciled next; the timer does nothing before then.
    wakeups: dict[str, datetime] = field(default_factory=dict)
    #: The status azsnap last wrote per policy UID: newer than a body that has not caught up yet.
    written: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: One reconcile at a time per policy (the timer and change handlers run in separate tasks).
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    #: Set when a policy's wake-up time was written, so its sleeping timer looks at the new one.
    nudges: dict[str, asyncio.Event] = field(default_factory=dict)
    #: Policies a claim's change woke since their reconcile last started: one in flight may have read the claims
    #: before the change, so it keeps the early wake-up instead of writing its own next one over it.
    woken: set[str] = field(default_factory=set)
    #: Whether azsnap owns the cloud client (and so closes it at shutdown).
    owns_cloud: bool = True
    #: The SnapshotRestore flow (made on first use by `handlers/restore.py`), and what creates restored volumes.
    restorer: RestoreReconciler | None = None
    volumes: VolumeWriter | None = None
    #: The restore drills of policies that ask for them (made on first use by `handlers/restore.py`).
    driller: Driller | None = None
    #: VolumeSnapshot publishing (made on first use by `handlers/volume_snapshots.py`) and the objects it writes
    #: (None: the operator's switch is off).
    publisher: Publisher | None = None
    snapshot_objects: SnapshotObjects | None = None
    #: The claim targets of the policies, so that a claim's change wakes the ones that cover it.
    claim_interest: ClaimInterest = field(default_factory=ClaimInterest)

    def lock(self, uid: str) -> asyncio.Lock:
        return self.locks.setdefault(uid, asyncio.Lock())

    def nudge(self, uid: str) -> asyncio.Event:
        return self.nudges.setdefault(uid, asyncio.Event())

    def forget(self, uid: str) -> None:
        for table in (self.wakeups, self.written, self.locks, self.nudges):
            table.pop(uid, None)
        self.woken.discard(uid)
        self.claim_interest.forget(uid)
