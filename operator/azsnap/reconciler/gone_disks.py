"""A claim policy's disks that no claim names any more: found by the policy's ownership tags, kept or retired.

A disk `status.disks` lists keeps its ARM ID there; one it leaves out keeps only a short key in
`status.diskAccounts` (`domain/disk_accounts.py`). When the claim of such a disk goes away, the disk's ARM ID is
read back from the policy's own snapshots: Azure reports each one's source disk, and the tags (managed-by and the
policy's UID) prove it is the policy's. The same search finds, when the policy is deleted with `deletionPolicy:
Delete`, every disk the policy ever snapshotted in the subscriptions of the disks it knows, whatever its status
remembers. A gone claim's disk gets no new snapshot; its snapshots are kept, or retired by retention under
`onSourceDiskDelete: ApplyRetention`, as for a deleted disk (`reconciler/orphans.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError
from azsnap.cloud.interface import CloudClient
from azsnap.domain import naming
from azsnap.domain.disk_accounts import DiskAccount, account_key
from azsnap.domain.models import DiskRef, OnSourceDiskDelete, Policy, PolicyRef, parse_disk_id
from azsnap.domain.observed import Limits, Snapshot
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.targets import DiskEntry
from azsnap.domain.volumes import ClaimProblem
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.orphans import disk_missing
from azsnap.reconciler.report import Event
from azsnap.reconciler.verdicts import Verdicts

__all__ = ["GoneDisks", "disk_of", "is_unnamed", "left_out_disks", "owned_disks", "rediscover", "unnamed_claim"]

_DISKS: Final = "/providers/microsoft.compute/disks/"
#: The `claim` of an entry for a disk whose claim went away while `status.disks` left it out (its name was not kept).
_UNNAMED: Final = "(claim of disk {})"


def unnamed_claim(disk_id: str) -> str:
    """What `status.disks` says of a claim whose name was not kept: never a claim's name (those have no brackets)."""
    return _UNNAMED.format(disk_id.rpartition("/")[2])


def is_unnamed(claim: str) -> bool:
    """True for an entry `unnamed_claim` made."""
    return claim.startswith("(")


def disk_of(snapshot: Snapshot, policy: PolicyRef) -> str | None:
    """The disk ARM ID a snapshot was taken from, when its tags prove the policy made it (as `naming.owns` does)."""
    source = snapshot.source_resource_id or ""
    if _DISKS not in source.lower():
        return None  # a cross-region copy's source is a snapshot: its disk's own snapshots name the disk
    if not naming.owns(snapshot, policy, source):
        return None
    return source


async def owned_disks(
    observer: Observer, policy: PolicyRef, known: Iterable[str], snapshot_group: str | None
) -> dict[str, int]:
    """Every disk the policy holds snapshots of, in the subscriptions of the `known` disks, with how many.

    By ARM ID as Azure spells it. The subscriptions are listed whole (a list the observer shares and caches), or
    the known disks' groups and the snapshot group when the identity may only list groups.
    """
    groups: dict[str, set[str]] = {}
    for disk_id in known:
        coords = parse_disk_id(disk_id)
        groups.setdefault(coords.subscription_id.lower(), set()).update(
            {coords.resource_group, snapshot_group or coords.resource_group}
        )
    found: dict[str, tuple[str, int]] = {}
    for subscription, its_groups in sorted(groups.items()):
        for snapshot in await observer.azsnaps_in_subscription(subscription, sorted(its_groups)):
            source = disk_of(snapshot, policy)
            if source is not None:
                spelled, count = found.get(source.lower(), (source, 0))
                found[source.lower()] = (spelled, count + 1)
    return dict(found.values())


async def left_out_disks(observer: Observer, policy: Policy, known: list[str]) -> list[tuple[str | None, str]]:
    """(None, ARM ID) of each disk the policy holds snapshots of besides the `known` ones (as `status.disks` lists
    them); none when Azure cannot be asked (the known disks' own reads then say what it answered)."""
    try:
        found = await owned_disks(observer, policy.ref, known, policy.spec.snapshot.resource_group)
    except CloudError:
        return []
    seen = {disk.lower() for disk in known}
    return [(None, disk) for disk in sorted(found) if disk.lower() not in seen]


async def rediscover(
    observer: Observer,
    policy: Policy,
    accounts: Mapping[str, DiskAccount],
    known: Iterable[str],
    *,
    every: bool = False,
) -> list[DiskEntry] | None:
    """Entries for the disks in `accounts` (none of them named by a claim now), their ARM IDs read from the snapshots.

    With `every` (a status with nothing of the policy's disks: lost, or never written), an entry for each disk
    the policy holds snapshots of besides the `known` ones. An account whose disk holds no snapshot of the policy is
    dropped, as a listed gone claim's entry is once its count is 0. None when Azure could not be asked (the
    accounts are then kept as they are).
    """
    known = list(known)
    if not accounts and not every:
        return []
    try:
        owned = await owned_disks(observer, policy.ref, known, policy.spec.snapshot.resource_group)
    except CloudError:
        return None
    named = {account_key(disk) for disk in known}
    entries = []
    for disk_id, count in sorted(owned.items()):
        key = account_key(disk_id)
        account = accounts.get(key) or (DiskAccount(None, 0) if every and key not in named else None)
        if account is not None:
            entry = account.entry(unnamed_claim(disk_id), disk_id)
            entries.append(entry.model_copy(update={"state": "Unresolved", "count": count}))
    return entries


@dataclass(frozen=True)
class GoneDisks:
    """The reconcile of a claim policy's gone claims' disks: no new snapshot, the old ones kept or retired."""

    cloud: CloudClient
    clock: Clock
    observer: Observer
    verdicts: Verdicts
    limits: Limits
    recheck_minutes: int

    async def entry(
        self, policy: Policy, status: SnapshotPolicyStatus, previous: DiskEntry, events: list[Event]
    ) -> tuple[DiskEntry, dict[str, Any]]:
        """The gone claim's entry, and the disk's status fields (its restore points, what it holds)."""
        assert previous.disk is not None  # the caller keeps only entries with a disk
        report = await disk_missing(
            Policy(ref=policy.ref, spec=policy.spec.model_copy(update={"disk": DiskRef(id=previous.disk)})),
            _disk_status(status, previous),
            {},
            cloud=self.cloud,
            clock=self.clock,
            observer=self.observer,
            verdicts=self.verdicts,
            limits=self.limits,
            recheck_minutes=self.recheck_minutes,
        )
        events.extend(e for e in report.events if e.reason != "DiskNotFound")
        kept = int(report.status.get("snapshotCount", previous.count or 0))
        if policy.spec.on_source_disk_delete is OnSourceDiskDelete.APPLY_RETENTION:
            then = "deletes them by retention, never the newest good one, a held one or one minKeep keeps"
        else:
            then = "keeps them all (onSourceDiskDelete: Keep) until the policy is deleted"
        if is_unnamed(previous.claim):
            what = (
                f"A PersistentVolumeClaim of namespace {policy.ref.namespace} that named disk {previous.disk} is gone "
                "or no longer selected (its name was not kept: status.disks left the disk out)"
            )
        else:
            what = f"PersistentVolumeClaim {policy.ref.namespace}/{previous.claim} is gone or no longer selected"
        message = (
            f"{what}: azsnap takes no new snapshot of disk {previous.disk} and holds {kept} snapshot(s) of it; "
            f"it {then}."
        )
        update = {"state": "Unresolved", "reason": ClaimProblem.CLAIM_NOT_FOUND.value, "message": message}
        return previous.model_copy(update={**update, "count": kept}), report.status


def _disk_status(status: SnapshotPolicyStatus, entry: DiskEntry) -> SnapshotPolicyStatus:
    """What the gone disk's flow reads of its status: the policy's conditions (for its events), the disk's count."""
    return SnapshotPolicyStatus(conditions=status.conditions, schedule=status.schedule, snapshot_count=entry.count)
