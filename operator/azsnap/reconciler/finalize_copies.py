"""A policy's deletion with `deletionPolicy: Delete` and copy targets: its copies go with its snapshots, safely.

The copies in each target of the spec are the policy's by their tags (`domain/copies.is_copy_of_policy`), so
Delete deletes them as it deletes the policy's snapshots, except a held one (`azsnap-hold`). A copy still running
is never cut short and its source is never deleted under it (Azure would end the copy with CopySourceNotFound):
both wait for a later pass of the finalizer, which goes on until the copy ends. `Retain` leaves everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from azsnap.cloud.errors import CloudError, NotFound
from azsnap.cloud.interface import CloudClient
from azsnap.domain import naming
from azsnap.domain.copies import TAG_COPY_OF, TAG_ROLE, disk_hash, is_copy_of_policy, target_key
from azsnap.domain.models import DeletionPolicy, Policy
from azsnap.domain.observed import Snapshot, SnapshotState
from azsnap.reconciler.act import subscription_of
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event

__all__ = ["CopiesFinalized", "finalize_copies", "is_copy"]

_SETTLED = frozenset({SnapshotState.SUCCEEDED, SnapshotState.FAILED})


def is_copy(snapshot: Snapshot) -> bool:
    """A cross-region copy azsnap made (counted by `finalize_copies`, not as a source still in progress)."""
    return naming.tag(snapshot.tags, TAG_ROLE) == "copy"


@dataclass
class CopiesFinalized:
    """One pass over the policy's copies: what was deleted, what still runs (and the sources it needs)."""

    deleted: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    #: Sources whose copy still runs: the policy's own deletion leaves them for a later pass.
    keep: set[str] = field(default_factory=set)
    running: int = 0
    error: CloudError | None = None
    failed_on: str = ""


async def finalize_copies(policy: Policy, disk_id: str, cloud: CloudClient, observer: Observer) -> CopiesFinalized:
    """Delete the policy's settled, unheld copies of this disk in every target; keep what a running copy needs."""
    result = CopiesFinalized()
    if policy.spec.deletion_policy is not DeletionPolicy.DELETE or not policy.spec.copies:
        return result
    default_sub = subscription_of(disk_id) or ""
    for spec in policy.spec.copies:
        sub, rg, region = target_key(spec, default_sub)
        try:
            seen = await observer.copies_of(sub, [spec.resource_group], disk_hash(disk_id))
        except CloudError as exc:
            result.error, result.failed_on = exc, f"listing the copies in {spec.resource_group}"
            return result
        mine = [
            c
            for c in seen
            if c.resource_group.lower() == rg
            and c.location.lower() == region
            and is_copy_of_policy(c, policy.ref.uid, disk_id)
            and not naming.is_held(c)
        ]
        for copy in sorted(mine, key=lambda c: c.name):
            if copy.state not in _SETTLED:  # running (or unknown): neither it nor its source goes now
                result.running += 1
                result.keep.add(naming.tag(copy.tags, TAG_COPY_OF) or "")
                continue
            try:
                await cloud.delete_snapshot(sub, copy.resource_group, copy.name)
            except NotFound:
                pass
            except CloudError as exc:
                result.error, result.failed_on = exc, f"deleting copy {copy.name}"
                return result
            observer.record_deleted(sub, copy.resource_group, copy.name)
            result.deleted.append(copy.name)
            result.events.append(
                Event(
                    "Normal", "CopyDeleted", f"Deleted copy {copy.name} in {spec.region}: the policy is being deleted"
                )
            )
    return result
