"""A policy's deletion with `deletionPolicy: Delete`: its cross-region copies go with its snapshots, safely.

The copies, in the targets of the spec or in targets removed from it earlier, are the policy's by their tags
(`domain/copies.is_copy_of_policy`), so Delete deletes them as it deletes the policy's snapshots, except a held one
(`azsnap-hold`); they are looked for in the disk's subscription, the targets' and the former targets' (status
keeps those: `reconciler/former_targets.py`). A copy still running
is never cut short and its source is never deleted under it (Azure would end the copy with CopySourceNotFound):
both wait for a later pass of the finalizer, which goes on until the copy ends. `Retain` leaves everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from azsnap.cloud.errors import CloudError, NotFound
from azsnap.cloud.interface import CloudClient
from azsnap.domain import naming
from azsnap.domain.copies import TAG_COPY_OF, TAG_ROLE, disk_hash, is_copy_of_policy, target_key
from azsnap.domain.former_targets import Place
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


async def finalize_copies(
    policy: Policy, disk_id: str, cloud: CloudClient, observer: Observer, former: Sequence[Place] = ()
) -> CopiesFinalized:
    """Delete the policy's settled, unheld copies of this disk wherever they are; keep what a running copy needs.

    The copies are found by their tags in every subscription they can be in: the disk's, the targets' of the
    spec, and the former targets' (`former`, from `status.formerCopyTargets`), in any resource group and region
    of those subscriptions that azsnap can list (the groups of those targets when only groups can be listed).
    """
    result = CopiesFinalized()
    if policy.spec.deletion_policy is not DeletionPolicy.DELETE:
        return result
    default_sub = (subscription_of(disk_id) or "").lower()
    groups: dict[str, set[str]] = {default_sub: set()} if default_sub else {}
    for sub, rg, _ in [*(target_key(spec, default_sub) for spec in policy.spec.copies or []), *former]:
        groups.setdefault(sub, set()).add(rg)
    for sub, its_groups in sorted(groups.items()):
        try:
            seen = await observer.copies_of(sub, sorted(its_groups), disk_hash(disk_id))
        except CloudError as exc:
            result.error, result.failed_on = exc, f"listing the copies in subscription {sub}"
            return result
        mine = [c for c in seen if is_copy_of_policy(c, policy.ref.uid, disk_id) and not naming.is_held(c)]
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
                    "Normal",
                    "CopyDeleted",
                    f"Deleted copy {copy.name} in {copy.location}/{copy.resource_group}: the policy is being deleted",
                )
            )
    return result
