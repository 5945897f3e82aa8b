"""Acting on a plan: the creates and deletes, paced, with azsnap's own writes applied to the shared observation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, NotFound, SlotMissed, TransientError
from azsnap.cloud.interface import CloudClient, SnapshotRequest
from azsnap.cloud.pacer import pacing, pacing_until
from azsnap.domain import schedule
from azsnap.domain.models import Policy
from azsnap.domain.observed import Disk, SnapshotState
from azsnap.domain.planner import CreateAction, DeleteAction
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event

__all__ = ["Actor", "Outcome", "subscription_of"]


def subscription_of(resource_id: str) -> str:
    """The subscription segment of an ARM resource ID ("" when there is none)."""
    parts = resource_id.split("/")
    return parts[2] if len(parts) > 2 else ""


def iso(when: datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Outcome:
    """What acting did: names created, deleted and failed, the events to post, the error that stopped it."""

    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    #: Names created that Azure already reports `Succeeded` (not still creating or copying in the background).
    usable: set[str] = field(default_factory=set)
    #: Names created that are still copying in the background (Premium SSD v2, Ultra).
    copying: set[str] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)
    error: CloudError | None = None
    #: Slots whose create the pacer never sent (the deadline came first), and why, with the budget's figure.
    missed: list[datetime] = field(default_factory=list)
    over_budget: str = ""


class Actor:
    """Runs one policy's creates and deletes on one disk, recording each write in the observer."""

    def __init__(
        self, cloud: CloudClient, clock: Clock, observer: Observer, policy: Policy, disk: Disk, snapshot_rg: str
    ) -> None:
        self.cloud = cloud
        self.clock = clock
        self.observer = observer
        self.policy = policy
        self.disk = disk
        self.snapshot_rg = snapshot_rg
        self.outcome = Outcome()

    async def creates(self, actions: Sequence[CreateAction]) -> CloudError | None:
        """Create in order; stop at the first error (later creates wait for the next reconcile)."""
        spec, disk, out = self.policy.spec, self.disk, self.outcome
        for action in actions:
            request = SnapshotRequest(
                subscription_id=disk.subscription_id,
                resource_group=self.snapshot_rg,
                name=action.name,
                location=disk.location,
                source_disk_id=disk.id,
                tags=action.tags,
                incremental=spec.snapshot.incremental,
                sku=str(spec.snapshot.sku) if spec.snapshot.sku else None,
                background_copy=disk.copies_in_background,
            )
            # The pacer serves the creates closest to their startingDeadline first, taking turns by disk.
            due = action.slot + schedule.slot_offset(spec.schedule, disk.id) + spec.schedule.starting_deadline
            try:
                # A turn first (creates in flight are bounded), then the pacer's grant.
                async with self.observer.create_turns.turn(due):
                    with pacing_until(due, self.clock.now(), key=disk.id.lower(), hard=True):
                        made = await self.cloud.create_snapshot(request)
            except SlotMissed as exc:
                out.missed.append(action.slot)
                out.over_budget = exc.reason
                out.events.append(Event("Warning", "SlotMissed", f"Slot {iso(action.slot)} missed: {exc.reason}"))
                continue
            except TransientError as exc:
                # The create may have been accepted before the error: look again next time.
                self.observer.invalidate(disk.subscription_id)
                return exc
            except CloudError as exc:
                out.failed.append(action.name)
                out.events.append(Event("Warning", "SnapshotFailed", f"Creating {action.name} failed: {exc.message}"))
                return exc
            self.observer.record_created(disk.subscription_id, made, disk)
            if made.source_unique_id and made.source_unique_id != disk.unique_id:
                # Azure took it from another incarnation than the cached disk (recreated or restored in place):
                # the snapshot is still the policy's (lineage); the disk is read again, and the status tells.
                self.observer.forget_disk(disk.id)
            if made.state is SnapshotState.FAILED:
                out.failed.append(made.name)
                out.events.append(Event("Warning", "SnapshotFailed", f"Snapshot {made.name} ended Failed in Azure"))
                continue
            out.created.append(made.name)
            if made.state is SnapshotState.SUCCEEDED:
                out.usable.add(made.name)
            elif made.state is SnapshotState.COPYING:
                out.copying.add(made.name)
            what = "on-demand snapshot" if action.on_demand else f"snapshot for slot {iso(action.slot)}"
            out.events.append(Event("Normal", "SnapshotCreated", f"Created {what} {made.name} of disk {disk.name}"))
        return None

    async def deletes(self, actions: Sequence[DeleteAction]) -> CloudError | None:
        """Delete in order, never one created by this reconcile; stop at the first error."""
        out = self.outcome
        for action in actions:
            snap = action.snapshot
            if snap.name in out.created:
                continue
            sub = subscription_of(snap.id) or self.disk.subscription_id
            try:
                with pacing(key=self.disk.id.lower()):
                    await self.cloud.delete_snapshot(sub, snap.resource_group, snap.name)
            except NotFound:
                pass
            except CloudError as exc:
                if isinstance(exc, TransientError):
                    self.observer.invalidate(sub)
                return exc
            self.observer.record_deleted(sub, snap.resource_group, snap.name)
            out.deleted.append(snap.name)
            out.events.append(Event("Normal", "SnapshotDeleted", f"Deleted {snap.name}: {action.reason}"))
        return None
