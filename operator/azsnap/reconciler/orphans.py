"""A policy whose disk does not exist: its snapshots are counted, kept or retired by `spec.onSourceDiskDelete`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError
from azsnap.cloud.interface import CloudClient
from azsnap.domain import naming, retention
from azsnap.domain.models import OnSourceDiskDelete, Policy
from azsnap.domain.observed import Disk, Limits, Snapshot
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.retention import DeleteAction
from azsnap.domain.volumes import disk_ref
from azsnap.reconciler.accounting import restore_points_field
from azsnap.reconciler.act import Actor
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, StatusReport
from azsnap.reconciler.verdicts import Verdicts

__all__ = ["disk_missing", "orphan_deletes"]


def orphan_deletes(policy: Policy, owned: list[Snapshot], now: datetime, limits: Limits) -> list[DeleteAction]:
    """What `ApplyRetention` deletes of a gone disk's snapshots: retention's verdict, never the newest good one.

    Retention already keeps held snapshots, `minKeep` and the newest good snapshot of each incarnation; a snapshot
    whose name does not carry its policy's hash (tags changed by hand) is never deleted on its tags alone.
    """
    spec = policy.spec
    if spec.suspend or spec.on_source_disk_delete is not OnSourceDiskDelete.APPLY_RETENTION:
        return []
    decision = retention.decide_retention(spec.retention, spec.schedule.zone, owned, now, limits)
    doomed = [s for s in owned if s.name in decision.delete and naming.name_matches_owner(s)]
    doomed.sort(key=lambda s: (retention.snapshot_time(s) or now, s.name))
    return [DeleteAction(s, f"{decision.delete[s.name]}; the disk is gone") for s in doomed]


def _placeholder(policy: Policy) -> Disk:
    """The disk as the spec names it, for pacing and resource coordinates; it has no incarnation."""
    return disk_ref(policy.spec).stand_in(location="", unique_id="")


async def disk_missing(
    policy: Policy,
    status: SnapshotPolicyStatus,
    base: dict[str, Any],
    *,
    cloud: CloudClient,
    clock: Clock,
    observer: Observer,
    verdicts: Verdicts,
    limits: Limits,
    recheck_minutes: int,
) -> StatusReport:
    """The report (and, under `ApplyRetention`, the deletes) for a policy whose disk Azure says does not exist."""
    spec = policy.spec
    now = clock.now()
    disk = _placeholder(policy)
    groups = (disk.resource_group, spec.snapshot.resource_group or disk.resource_group)
    gone = f"Disk {disk.id} does not exist or azsnap's identity cannot read it."
    fix = (
        f"Fix spec.disk.id, restore the disk, or grant Microsoft.Compute/disks/read; azsnap checks again every "
        f"{recheck_minutes} minutes."
    )
    events: list[Event] = []
    previous = next((c.reason for c in status.conditions if c.type == "Ready"), None)
    try:
        of_arm_id = await observer.of_disk(disk, groups)
    except CloudError as exc:
        # the disk's absence is the news; what azsnap holds of it is told once Azure answers the list
        message = f"{gone} azsnap could not list its snapshots ({exc.message}). {fix}"
        if previous != "DiskNotFound":
            events.append(Event("Warning", "DiskNotFound", gone))
        return verdicts.stalled("DiskNotFound", message, now, base, events=events)
    owned = [s for s in of_arm_id if naming.owns(s, policy.ref, disk.id)]
    actor = Actor(cloud, clock, observer, policy, disk, groups[1])
    error = await actor.deletes(orphan_deletes(policy, owned, now, limits))
    events.extend(actor.outcome.events)
    deleted = set(actor.outcome.deleted)
    owned = [s for s in owned if s.name not in deleted]
    kept = len(owned)
    if spec.on_source_disk_delete is OnSourceDiskDelete.APPLY_RETENTION:
        then = (
            "onSourceDiskDelete is ApplyRetention: azsnap goes on deleting them by retention, never the newest good "
            "one, a held one or one minKeep keeps."
        )
    else:
        then = "onSourceDiskDelete is Keep: azsnap keeps them all until the policy is deleted."
    message = f"{gone} azsnap holds {kept} snapshot(s) of it; {then} {fix}"
    if previous != "DiskNotFound":
        events.append(Event("Warning", "DiskNotFound", f"{gone} azsnap holds {kept} snapshot(s) of it; {then}"))
    fields: dict[str, Any] = {
        **base,
        "snapshotCount": kept,
        "earlierIncarnations": kept,
        "diskSnapshotCount": len(of_arm_id) - len(deleted),
        "diskSnapshotLimit": limits.per_disk_cap,
        "nextSnapshotTime": None,
        "pendingDeletions": 0,
        "restorePoints": restore_points_field(owned, now),
    }
    if error is not None:
        return verdicts.failed(
            error, now, fields, what=f"deleting snapshots of missing disk {disk.name}", events=events
        )
    return verdicts.stalled("DiskNotFound", message, now, fields, events=events)
