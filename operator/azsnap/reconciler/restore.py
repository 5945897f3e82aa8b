"""The reconcile flow of a SnapshotRestore: check scope, observe the target disk, choose and pin a snapshot, make the
disk, wait until it is usable, then the volume and claim; and its deletion (the disk goes only when told and ours).

Idempotent and level-based: the chosen snapshot is pinned in status, the disk is found again by its name and proved
the restore's own by its tags. A disk of that name without them is never written to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, NotFound
from azsnap.cloud.interface import CloudClient, DiskRequest
from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.models import DeletionPolicy, Policy
from azsnap.domain.observed import Disk, Snapshot, SnapshotState
from azsnap.domain.restore import (
    Phase,
    RestoreRef,
    SnapshotRestoreSpec,
    choose_snapshot,
    disk_phase,
    disk_status,
    made_by,
    pinned,
    restore_tags,
    snapshot_coordinates,
)
from azsnap.domain.volumes import disk_ref
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, FinalizeReport, StatusReport
from azsnap.reconciler.verdicts import Verdicts

__all__ = ["RestoreReconciler", "RestoreScope", "VolumeWriter"]

_GIB = 1024**3


@runtime_checkable
class RestoreScope(Protocol):
    """The tenancy allow-list, asked about a restore: may `namespace` read snapshots in `source_rg` and write a disk
    in `target_rg` of `subscription_id`? None when allowed, else a message for a person."""

    def check_restore(self, namespace: str, subscription_id: str, target_rg: str, source_rg: str) -> str | None: ...


class VolumeWriter(Protocol):
    """Creates the PersistentVolume and claim of a restored disk (the Kubernetes side, given by the handlers)."""

    async def ensure_volume(self, restore: RestoreRef, spec: SnapshotRestoreSpec, disk: Disk) -> list[str]:
        """Create what the spec asks for if absent; returns what was created now (for events)."""
        ...


@dataclass(frozen=True)
class _Source:
    subscription_id: str
    #: The snapshot's resource group as far as it is known before Azure is asked (the pinned or named one, or the
    #: policy's snapshot group).
    resource_group: str


class RestoreReconciler:
    """Brings one SnapshotRestore to a usable disk; safe to call any time, any number of times."""

    def __init__(
        self,
        cloud: CloudClient,
        clock: Clock,
        observer: Observer,
        verdicts: Verdicts,
        *,
        scope: RestoreScope | None = None,
        volumes: VolumeWriter | None = None,
        poll: timedelta = timedelta(seconds=30),
    ) -> None:
        self.cloud = cloud
        self.clock = clock
        self.observer = observer
        self.verdicts = verdicts
        self.scope = scope
        self.volumes = volumes
        self.poll = poll

    async def reconcile(
        self, restore: RestoreRef, spec: SnapshotRestoreSpec, status: Mapping[str, Any], policy: Policy | None
    ) -> StatusReport:
        """Never raises for Azure errors: they become the report's health."""
        now = self.clock.now()
        target = spec.target
        fields: dict[str, Any] = {"diskName": target.name}
        source = self._source(spec, status, policy)
        if isinstance(source, str):
            return self.verdicts.stalled("SourceNotFound", source, now, fields)
        if self.scope is not None:
            refusal = self.scope.check_restore(
                restore.namespace, source.subscription_id, target.resource_group, source.resource_group
            )
            if refusal is not None:
                return self.verdicts.stalled("ScopeNotAllowed", refusal, now, fields)
        disk_id = (
            f"/subscriptions/{source.subscription_id}/resourceGroups/{target.resource_group}"
            f"/providers/Microsoft.Compute/disks/{target.name}"
        )
        made_before = (status.get("disk") or {}).get("id")
        if made_before and str(made_before).lower() != disk_id.lower():
            message = (
                f"spec.target was changed after this restore made disk {made_before}; a restore is not changed once "
                "made. Put the target back, or create a new SnapshotRestore for another disk."
            )
            return self.verdicts.stalled("TargetChanged", message, now, fields)
        try:
            disk = await self.cloud.get_disk(disk_id)
        except CloudError as exc:
            return self.verdicts.failed(exc, now, fields, what=f"reading disk {target.name}")
        events: list[Event] = []
        if disk is not None and not made_by(disk, restore.uid):
            message = (
                f"A disk named {target.name} already exists in resource group {target.resource_group} and was not "
                "made by this restore; azsnap never overwrites or changes an existing disk. Choose another "
                "spec.target.name (or resource group), or delete that disk yourself."
            )
            return self.verdicts.stalled(
                "DiskExists", message, now, fields, events=[Event("Warning", "DiskExists", message)]
            )
        if disk is None:
            if status.get("disk"):
                message = (
                    f"The disk {target.name} this restore made is gone (deleted outside azsnap); azsnap does not make "
                    "it again. Delete this SnapshotRestore and create a new one to restore again."
                )
                return self.verdicts.stalled("DiskMissing", message, now, {**fields, "phase": str(Phase.FAILED)})
            made = await self._make(restore, spec, status, policy, source, fields, now)
            if isinstance(made, StatusReport):
                return made
            disk, snapshot = made
            fields["sourceSnapshot"] = _snapshot_ref(snapshot)
            events.append(Event("Normal", "DiskCreating", f"Creating disk {disk.name} from snapshot {snapshot.name}."))
        elif "sourceSnapshot" not in fields:
            fields["sourceSnapshot"] = status.get("sourceSnapshot") or _ref_of_disk(disk)
        return await self._report(restore, spec, status, disk, fields, events, now)

    def _source(self, spec: SnapshotRestoreSpec, status: Mapping[str, Any], policy: Policy | None) -> _Source | str:
        """Where the snapshot is, before asking Azure; a message when it cannot be known."""
        chosen = pinned(status) or spec.source.snapshot_id
        if chosen is not None:
            subscription_id, resource_group, _ = snapshot_coordinates(chosen)
            return _Source(subscription_id, resource_group)
        if policy is None:
            return (
                f"No SnapshotPolicy {spec.source.policy!r} in this namespace. Name a policy of the namespace in "
                "spec.source.policy, or a snapshot by its ARM ID in spec.source.snapshotId; azsnap made no Azure call."
            )
        if policy.spec.disk is None:
            return (
                f"SnapshotPolicy {spec.source.policy!r} targets PersistentVolumeClaims, so several disks: name the "
                "snapshot by its ARM ID in spec.source.snapshotId (the policy's status.disks lists its disks); azsnap "
                "made no Azure call."
            )
        coords = policy.spec.disk.coordinates
        return _Source(coords.subscription_id, policy.spec.snapshot.resource_group or coords.resource_group)

    async def _make(
        self,
        restore: RestoreRef,
        spec: SnapshotRestoreSpec,
        status: Mapping[str, Any],
        policy: Policy | None,
        source: _Source,
        fields: dict[str, Any],
        now: datetime,
    ) -> tuple[Disk, Snapshot] | StatusReport:
        """Choose (or re-read the pinned) snapshot, check it, and ask Azure for the disk."""
        try:
            snapshot = await self._snapshot(spec, status, policy)
        except CloudError as exc:
            return self.verdicts.failed(exc, now, fields, what="reading the source snapshot")
        if isinstance(snapshot, str):
            return self.verdicts.stalled("SnapshotNotFound", snapshot, now, fields)
        fields["sourceSnapshot"] = _snapshot_ref(snapshot)
        target = spec.target
        if self.scope is not None and snapshot.resource_group.lower() != source.resource_group.lower():
            refusal = self.scope.check_restore(
                restore.namespace, source.subscription_id, target.resource_group, snapshot.resource_group
            )
            if refusal is not None:
                return self.verdicts.stalled("ScopeNotAllowed", refusal, now, fields)
        if snapshot.state is not SnapshotState.SUCCEEDED:
            message = (
                f"The snapshot {snapshot.name} is {snapshot.state} in Azure, not yet usable for a restore; "
                "azsnap looks again shortly."
            )
            health = Health(HealthState.RETRYING, "SnapshotNotReady", message)
            return self.verdicts.report(health, {**fields, "phase": str(Phase.PENDING)}, (), now + self.poll)
        source_gb = -(-snapshot.size_bytes // _GIB)
        if target.size_gb is not None and snapshot.size_bytes and target.size_gb < source_gb:
            message = (
                f"spec.target.sizeGB {target.size_gb} is smaller than the snapshot {snapshot.name} ({source_gb} GB); "
                "a restored disk is at least as large as its snapshot. Fix the spec; azsnap made no disk."
            )
            return self.verdicts.stalled("InvalidSpec", message, now, fields)
        request = DiskRequest(
            subscription_id=source.subscription_id,
            resource_group=target.resource_group,
            name=target.name,
            location=snapshot.location,
            source_snapshot_id=snapshot.id,
            sku=str(target.sku),
            tags=restore_tags(restore, snapshot),
            size_gb=target.size_gb,
            zone=target.zone,
        )
        try:
            disk = await self.cloud.create_disk(request)
        except CloudError as exc:
            if exc.code == "DiskExists":
                return self.verdicts.stalled("DiskExists", exc.message, now, fields)
            return self.verdicts.failed(exc, now, fields, what=f"creating disk {target.name}")
        return disk, snapshot

    async def _snapshot(
        self, spec: SnapshotRestoreSpec, status: Mapping[str, Any], policy: Policy | None
    ) -> Snapshot | str:
        chosen = pinned(status) or spec.source.snapshot_id
        if chosen is not None:
            subscription_id, resource_group, name = snapshot_coordinates(chosen)
            found = await self.cloud.get_snapshot(subscription_id, resource_group, name)
            if found is None:
                return f"The snapshot {name} (in resource group {resource_group}) does not exist in Azure."
            return found
        assert policy is not None  # `_source` answered with a message otherwise
        ref = disk_ref(policy.spec)  # `_source` refused a policy over claims
        coords = ref.coordinates
        groups = {coords.resource_group, policy.spec.snapshot.resource_group or coords.resource_group}
        stand_in = ref.stand_in(location="", unique_id="")
        observed = await self.observer.of_disk(stand_in, groups)
        at = spec.source.at_or_before
        found = choose_snapshot(observed, policy.ref, ref.id, at)
        if found is None:
            when = f" taken at or before {at.isoformat()}" if at is not None else ""
            return (
                f"The policy {policy.ref.name} has no usable snapshot of disk {coords.name}{when}. Pick another time, "
                "or wait for the policy's next snapshot."
            )
        return found

    async def _report(
        self,
        restore: RestoreRef,
        spec: SnapshotRestoreSpec,
        status: Mapping[str, Any],
        disk: Disk,
        fields: dict[str, Any],
        events: list[Event],
        now: datetime,
    ) -> StatusReport:
        phase = disk_phase(disk)
        fields |= {"phase": str(phase), "disk": disk_status(disk)}
        if phase is Phase.FAILED:
            message = f"Azure reports the disk {disk.name} {disk.provisioning_state}. Delete it and the restore, retry."
            return self.verdicts.stalled("DiskFailed", message, now, fields, events=events)
        if phase is not Phase.READY:
            percent = f" ({disk.completion_percent:g}% hydrated)" if disk.completion_percent is not None else ""
            reason = "Hydrating" if phase is Phase.HYDRATING else "Creating"
            message = f"The disk {disk.name} is {phase.lower()}{percent}; it is Ready once Azure reports it usable."
            health = Health(HealthState.RETRYING, reason, message)
            return self.verdicts.report(health, fields, events, now + self.poll)
        if spec.persistent_volume is not None:
            if self.volumes is None:
                message = (
                    "spec.persistentVolume asks for a PersistentVolume, but this operator runs without permission to "
                    "create volumes (the chart's restore.volumes.enabled). Enable it, or remove the field."
                )
                return self.verdicts.stalled("VolumesDisabled", message, now, fields, events=events)
            try:
                made = await self.volumes.ensure_volume(restore, spec, disk)
            except Exception as exc:  # the Kubernetes API's refusal, whatever its client raises
                message = f"Could not create the volume for disk {disk.name}: {exc}. azsnap retries."
                health = Health(HealthState.RETRYING, "VolumeFailed", message)
                return self.verdicts.report(health, fields, events, now + self.poll)
            events += [Event("Normal", "Created", f"Created {what}.") for what in made]
            fields["persistentVolume"] = spec.persistent_volume.name
            if spec.persistent_volume_claim is not None:
                fields["persistentVolumeClaim"] = spec.persistent_volume_claim.name
        fields["readyTime"] = status.get("readyTime") or now.strftime("%Y-%m-%dT%H:%M:%SZ")
        snapshot = fields.get("sourceSnapshot") or {}
        message = f"Disk {disk.name} restored from snapshot {snapshot.get('name', '?')} and usable."
        if status.get("phase") != str(Phase.READY):
            events.append(Event("Normal", "Restored", message))
        health = Health(HealthState.READY, "Restored", message)
        return self.verdicts.report(health, fields, events, now + self.verdicts.max_sleep)

    async def finalize(
        self, restore: RestoreRef, spec: SnapshotRestoreSpec, status: Mapping[str, Any]
    ) -> FinalizeReport:
        """Retain: nothing to do. Delete: remove the disk if this restore made it (never another's)."""
        if spec.deletion_policy is DeletionPolicy.RETAIN:
            return FinalizeReport(done=True, message="deletionPolicy Retain: the disk stays")
        disk_id = (status.get("disk") or {}).get("id")
        if not disk_id:
            return FinalizeReport(done=True, message="no disk was made")
        try:
            disk = await self.cloud.get_disk(str(disk_id))
            if disk is None:
                return FinalizeReport(done=True, message="the disk is already gone")
            if not made_by(disk, restore.uid):
                return FinalizeReport(done=True, message=f"the disk {disk.name} is not this restore's: left alone")
            await self.cloud.delete_disk(disk.id)
        except NotFound:
            return FinalizeReport(done=True, message="the disk is already gone")
        except CloudError as exc:
            return FinalizeReport(
                done=False,
                message=f"could not delete disk {disk_id}: {exc.message}",
                retry_after=self.verdicts.retry_delay(exc),
            )
        deleted = Event("Normal", "DiskDeleted", f"Deleted disk {disk.name} (deletionPolicy Delete).")
        return FinalizeReport(done=True, message=f"deleted disk {disk.name}", deleted=(disk.name,), events=(deleted,))


def _snapshot_ref(snapshot: Snapshot) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": snapshot.id, "name": snapshot.name}
    if snapshot.time_created is not None:
        ref["timeCreated"] = snapshot.time_created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ref


def _ref_of_disk(disk: Disk) -> dict[str, Any]:
    source = disk.source_resource_id or ""
    return {"id": source, "name": source.rsplit("/", 1)[-1]}
