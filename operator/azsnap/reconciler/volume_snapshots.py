"""Publishing a claim policy's snapshots as VolumeSnapshots: one step after each reconcile of a policy that asks.

The step reads what the reconcile already observed (the observer's cached list, so no Azure call of its own), lists
the objects carrying the policy's labels (two requests), creates the missing `VolumeSnapshotContent` (first) and
`VolumeSnapshot` of each usable snapshot, and removes the policy's objects whose snapshot Azure no longer lists
(VolumeSnapshot first). It never fails the backups: a cluster without the snapshot CRDs (the API answers 404), an
operator without the switch or an API refusal is written to `status.volumeSnapshots` with one event when that state
begins; a missing CRD is looked for again after `RECHECK`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError
from azsnap.domain.lifecycle import DeletionPolicy
from azsnap.domain.models import DiskRef, Policy
from azsnap.domain.naming import owns
from azsnap.domain.observed import Snapshot, SnapshotState
from azsnap.domain.targets import ClaimView
from azsnap.domain.volume_snapshot_readiness import Readiness, readiness
from azsnap.domain.volume_snapshots import (
    ANNOTATION_DISK_ID,
    CONTENTS,
    PUBLISH_PER_RECONCILE,
    SNAPSHOTS,
    ObjectPlan,
    Wanted,
    content_manifest,
    object_name,
    owner_selector,
    plan_objects,
    snapshot_manifest,
)
from azsnap.domain.volumes import resolve_targets
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, StatusReport

__all__ = [
    "NEXT_BATCH",
    "RECHECK",
    "PublishReport",
    "Publisher",
    "SnapshotApiError",
    "SnapshotApiMissing",
    "SnapshotObjects",
]

#: How soon a cluster found without the snapshot CRDs is looked at again.
RECHECK: Final = timedelta(minutes=10)
#: How soon a policy with snapshots still to publish (beyond `PUBLISH_PER_RECONCILE`) comes back for the next batch.
NEXT_BATCH: Final = timedelta(seconds=10)
_FIELD: Final = "volumeSnapshots"
_NAMES_IN_EVENT: Final = 5


class SnapshotApiMissing(Exception):
    """The cluster does not serve snapshot.storage.k8s.io/v1 (the API answered 404 for the resource)."""


class SnapshotApiError(Exception):
    """The Kubernetes API refused a request (a missing RBAC rule, a schema refusal); the message says which."""


class SnapshotObjects(Protocol):
    """The snapshot.storage.k8s.io objects as the Kubernetes API serves them (`handlers/volume_snapshots.py`)."""

    async def list(self, plural: str, namespace: str | None, selector: str) -> list[dict[str, Any]]:
        """The objects matching the label selector; `SnapshotApiMissing` when the resource is not served."""
        ...

    async def create(self, plural: str, namespace: str | None, manifest: Mapping[str, Any]) -> bool:
        """Create the object; False when one of that name exists already."""
        ...

    async def delete(self, plural: str, namespace: str | None, name: str) -> None:
        """Delete the object; one already gone is not an error."""
        ...


@dataclass(frozen=True)
class PublishReport:
    """One publishing step: the status field (None removes it), events, and when to come back for pending ones."""

    fields: dict[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    wake: datetime | None = None

    def merged(self, report: StatusReport) -> StatusReport:
        """The policy's report with this step in it (woken sooner while snapshots wait to be published)."""
        wake = report.next_time if self.wake is None else min(report.next_time, self.wake)
        status = {**report.status, **self.fields}
        return replace(report, status=status, events=(*report.events, *self.events), next_time=wake)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: Any) -> datetime | None:
    return None if not value else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


class Publisher:
    """Keeps each publishing claim policy's VolumeSnapshots in line with its usable snapshots."""

    def __init__(
        self, observer: Observer, clock: Clock, objects: SnapshotObjects | None, *, batch: int = PUBLISH_PER_RECONCILE
    ) -> None:
        self.observer, self.clock, self.objects, self.batch = observer, clock, objects, batch

    async def step(self, policy: Policy, status: Mapping[str, Any], claims: ClaimView | None) -> PublishReport:
        """Publish, or remove, after the policy's reconcile; `status` is the status that reconcile leaves."""
        now = self.clock.now()
        spec = policy.spec.volume_snapshots
        previous: Mapping[str, Any] = status.get(_FIELD) or {}
        if policy.spec.disk is not None:
            return PublishReport()  # the CRD and the model take volumeSnapshots with claim targets only
        if spec is None or not spec.enabled:
            return await self._withdraw(policy, previous)
        if self.objects is None:
            message = (
                "spec.volumeSnapshots asks for VolumeSnapshots, but this operator does not publish them: install the "
                "chart with volumeSnapshots.enabled=true (AZSNAP_VOLUME_SNAPSHOTS), which grants the RBAC for them. "
                "The backups go on."
            )
            return self._state(previous, now, "Unavailable", "NotEnabled", message)
        checked = _time(previous.get("checkedTime"))
        if previous.get("reason") == "SnapshotCRDsMissing" and checked is not None and now < checked + RECHECK:
            return PublishReport()  # looked a moment ago: the next reconcile after RECHECK looks again
        selector = owner_selector(policy.ref)
        try:
            snapshots = await self.objects.list(SNAPSHOTS, policy.ref.namespace, selector)
            contents = await self.objects.list(CONTENTS, None, selector)
            desired, in_azure = await self._desired(policy, status, claims, contents)
            plan = plan_objects(desired, snapshots, contents, in_azure, self.batch)
            made, removed, taken = await self._act(policy, plan)
        except SnapshotApiMissing:
            message = (
                "The cluster does not serve snapshot.storage.k8s.io/v1 (no VolumeSnapshot CRDs), so azsnap publishes "
                "no VolumeSnapshots; the backups go on. Install the external-snapshotter's CRDs and snapshot "
                f"controller; azsnap looks again every {int(RECHECK.total_seconds() // 60)} minutes."
            )
            return self._state(previous, now, "Unavailable", "SnapshotCRDsMissing", message)
        except SnapshotApiError as exc:
            message = f"Publishing VolumeSnapshots failed: {exc}. The backups go on; azsnap tries again next time."
            return self._state(previous, now, "Failed", "KubernetesApiRefused", message)
        except CloudError:
            return PublishReport()  # Azure could not be listed: the reconcile's own status says so; try next time
        kept = {str(o["metadata"]["name"]) for o in snapshots} - set(plan.delete_snapshots)
        published = kept | set(made)  # a name taken by an object azsnap did not make publishes nothing
        ready = readiness(snapshots, published, now)
        pending = len(plan.pending)
        state = "Publishing" if pending else "Published"
        message = _message(policy.ref.namespace, len(published), ready, pending, self.batch)
        counts = {"published": len(published), "pending": pending, "ready": ready.ready,
                  "notReady": len(ready.not_ready)}  # fmt: skip
        report = self._state(previous, now, state, state, message, counts=counts, quiet=True)
        events = list(report.events)
        if made:
            progress = f" {pending} more pending: the next {self.batch} in about {_seconds(NEXT_BATCH)} s."
            if not pending:
                progress = " Every usable snapshot is published." if previous.get("pending") else ""
            events.append(Event("Normal", "VolumeSnapshotsPublished", _names("published", made) + progress))
        if ready.not_ready and len(ready.not_ready) != previous.get("notReady"):
            events.append(Event("Warning", "VolumeSnapshotsNotReady", _not_ready(ready)))
        if removed:
            events.append(Event("Normal", "VolumeSnapshotsRemoved", _names("removed (snapshot gone)", removed)))
        if taken:
            what = "not published: the name is taken by an object azsnap did not make (rename or remove it)"
            events.append(Event("Warning", "VolumeSnapshotNameTaken", _names(what, taken)))
        return PublishReport(report.fields, tuple(events), now + NEXT_BATCH if pending else None)

    async def _desired(
        self, policy: Policy, status: Mapping[str, Any], claims: ClaimView | None, contents: Sequence[Mapping[str, Any]]
    ) -> tuple[list[Wanted], set[str]]:
        """The snapshots to publish, and the ARM IDs Azure lists for every disk concerned (lower case)."""
        disks: dict[str, str] = {}  # by the disk's ARM ID in lower case: the ID as written
        claim_of: dict[str, str] = {}  # by the same key: the claim's name
        if claims is not None:
            for target in resolve_targets(policy.spec, policy.ref.namespace, claims):
                if target.disk_id is not None:
                    disks.setdefault(target.disk_id.lower(), target.disk_id)
                    claim_of.setdefault(target.disk_id.lower(), target.claim.rpartition("/")[2])
        for entry in status.get("disks") or []:  # a gone claim's disk keeps its snapshots, so its restore points
            if isinstance(entry, Mapping) and entry.get("disk"):
                disks.setdefault(str(entry["disk"]).lower(), str(entry["disk"]))
                claim_of.setdefault(str(entry["disk"]).lower(), str(entry.get("claim") or ""))
        known = set(disks)
        for obj in contents:  # the disks of what is published: their snapshots' end is seen too
            disk = str(((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_DISK_ID) or "")
            if disk and disk.lower() not in disks:
                disks[disk.lower()] = disk
        desired: list[Wanted] = []
        in_azure: set[str] = set()
        for key, disk_id in disks.items():
            found = await self._snapshots(policy, disk_id)
            in_azure.update(s.id.lower() for s in found)
            if key in known:
                desired += _usable(policy, claim_of.get(key, ""), disk_id, found)
        return desired, in_azure

    async def _snapshots(self, policy: Policy, disk_id: str) -> list[Snapshot]:
        try:
            ref = DiskRef(id=disk_id)
        except ValueError:
            return []
        coords = ref.coordinates
        groups = {coords.resource_group, policy.spec.snapshot.resource_group or coords.resource_group}
        # Not fresh: the reconcile that ran just before read the list; azsnap's own writes are in it since.
        return await self.observer.of_disk(ref.stand_in(location="", unique_id=""), groups, fresh=False)

    async def _act(self, policy: Policy, plan: ObjectPlan) -> tuple[list[str], list[str], list[str]]:
        """Write the plan; the VolumeSnapshots made, removed, and not made because their name was taken."""
        assert self.objects is not None  # checked by the caller
        spec = policy.spec.volume_snapshots
        assert spec is not None
        namespace = policy.ref.namespace
        made: list[str] = []
        taken: list[str] = []
        for item in plan.create_contents:  # the content first: a VolumeSnapshot never waits on a missing one
            if not await self.objects.create(CONTENTS, None, content_manifest(policy.ref, spec, item)):
                taken.append(item.name)  # someone else's content: no VolumeSnapshot of ours may bind to it
        for item in plan.create_snapshots:
            if item.name in taken:
                continue
            if await self.objects.create(SNAPSHOTS, namespace, snapshot_manifest(policy.ref, spec, item)):
                made.append(item.name)
            else:  # not among the policy's listed objects, yet the name exists: someone else's
                taken.append(item.name)
        for name in plan.delete_snapshots:  # the VolumeSnapshot first: it is what people and claims use
            await self.objects.delete(SNAPSHOTS, namespace, name)
        for name in plan.delete_contents:
            await self.objects.delete(CONTENTS, None, name)
        return made, list(plan.delete_snapshots), taken

    async def finalize(self, policy: Policy, status: Mapping[str, Any]) -> PublishReport:
        """The policy is deleted: with `deletionPolicy: Delete` its snapshots went, so its objects go too.

        With `Retain` the snapshots stay, and so do their VolumeSnapshots: they are still restore points.
        """
        if policy.spec.deletion_policy is not DeletionPolicy.DELETE:
            return PublishReport()
        return await self._withdraw(policy, status.get(_FIELD) or {})

    async def _withdraw(self, policy: Policy, previous: Mapping[str, Any]) -> PublishReport:
        """The policy no longer publishes: remove what azsnap published for it, then the status field."""
        if not previous:
            return PublishReport()  # it never published: no request at all
        if self.objects is None:
            return PublishReport({_FIELD: None})
        selector = owner_selector(policy.ref)
        try:
            snapshots = await self.objects.list(SNAPSHOTS, policy.ref.namespace, selector)
            contents = await self.objects.list(CONTENTS, None, selector)
            plan = plan_objects((), snapshots, contents, None)
            _made, removed, _taken = await self._act(policy, plan)
        except SnapshotApiMissing:
            return PublishReport({_FIELD: None})
        except SnapshotApiError as exc:
            message = f"Removing the policy's VolumeSnapshots failed: {exc}. azsnap tries again next time."
            return self._state(previous, self.clock.now(), "Failed", "KubernetesApiRefused", message)
        events = (Event("Normal", "VolumeSnapshotsRemoved", _names("removed (publishing off)", removed)),)
        return PublishReport({_FIELD: None}, events if removed else ())

    def _state(
        self,
        previous: Mapping[str, Any],
        now: datetime,
        state: str,
        reason: str,
        message: str,
        *,
        counts: Mapping[str, int] | None = None,
        quiet: bool = False,
    ) -> PublishReport:
        """The status field; one event when the state or reason changes (never one per reconcile)."""
        fields: dict[str, Any] = {"state": state, "reason": reason, "message": message, "checkedTime": _iso(now)}
        fields.update(counts or {})
        changed = (previous.get("state"), previous.get("reason")) != (state, reason)
        events: tuple[Event, ...] = ()
        if changed and not quiet:
            events = (Event("Warning", f"VolumeSnapshots{reason}", message),)
        return PublishReport({_FIELD: fields}, events)


def _usable(policy: Policy, claim: str, disk_id: str, snapshots: Sequence[Snapshot]) -> list[Wanted]:
    """The snapshots of the disk the policy made and Azure reports usable, as the objects to publish."""
    return [
        Wanted(object_name(s), s.id, disk_id, claim, s.time_created)
        for s in snapshots
        if s.time_created is not None and s.state is SnapshotState.SUCCEEDED and owns(s, policy.ref, disk_id)
    ]


def _seconds(delta: timedelta) -> int:
    return int(delta.total_seconds())


def _message(namespace: str, published: int, ready: Readiness, pending: int, batch: int) -> str:
    """The status message: how far publishing is, and how many of the published are ready to restore from."""
    text = (
        f"{published} VolumeSnapshot(s) in namespace {namespace}, one per usable snapshot; {ready.ready} ready to use"
    )
    if ready.unreported and ready.unreported == published:
        text += " (no snapshot controller has reported on them yet)"
    if ready.not_ready:
        text += f"; {len(ready.not_ready)} not ready with an error (see the VolumeSnapshotsNotReady event)"
    if pending:
        text += (
            f"; {pending} snapshot(s) pending: at most {batch} are published per reconcile, the next "
            f"batch in about {_seconds(NEXT_BATCH)} s"
        )
    return text + "."


def _not_ready(ready: Readiness) -> str:
    first = ready.not_ready[0]
    return (
        _names("stay not ready with an error", [n.name for n in ready.not_ready])
        + f" The snapshot controller says about {first.name}: {first.message[:300]} A restore from them waits: check "
        "that the Azure snapshot exists and the snapshot controller and CSI driver are running."
    )


def _names(what: str, names: Sequence[str]) -> str:
    shown = ", ".join(names[:_NAMES_IN_EVENT])
    more = f" and {len(names) - _NAMES_IN_EVENT} more" if len(names) > _NAMES_IN_EVENT else ""
    return f"{len(names)} VolumeSnapshot(s) {what}: {shown}{more}."
