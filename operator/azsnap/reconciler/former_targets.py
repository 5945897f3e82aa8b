"""A policy's copy targets removed from `spec.copies`: count the copies each still holds, report them, warn once.

After a reconcile, each target the last status named (`status.copies`, `status.formerCopyTargets`) that the spec
no longer names is listed (the subscription's shared list, by the policy's ownership tags) and kept in
`status.formerCopyTargets` while it holds copies of the policy; a target that just left the spec gets one
`CopyTargetRemoved` warning. The copies are kept (`domain/former_targets.py` says why); `deletionPolicy: Delete`
finds them through this record (`reconciler/finalize_copies.py`). A reconcile that made no Azure call (a bad spec,
a scope refusal) adds none here. A copy still running into such a target keeps its source from retention until it
ends (`running_elsewhere`, read by the copy flow before the disk's deletes).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from azsnap.cloud.errors import CloudError
from azsnap.domain import naming
from azsnap.domain.copies import TAG_COPY_OF, disk_hash, is_copy_of_policy, target_key
from azsnap.domain.former_targets import Place, former_status, is_policy_copy, removed_targets, removed_text
from azsnap.domain.models import Policy
from azsnap.domain.observed import Disk, SnapshotState
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler.claim_events import bounded_events
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, StatusReport

__all__ = ["former_places", "running_elsewhere", "track_former_targets"]

#: Reports of a reconcile that made no Azure call on purpose: nothing is listed for them either.
_NO_CALL: Final = frozenset({"InvalidSpec", "ScopeNotAllowed", "ClaimsUnavailable"})
_RUNNING: Final = frozenset({SnapshotState.COPYING, SnapshotState.CREATING, SnapshotState.UNKNOWN})


def former_places(status: SnapshotPolicyStatus | None) -> list[Place]:
    """Where the copy targets a status names are, for the policy's deletion: the former ones, and those still in
    `status.copies` (a target that left the spec just before the policy was deleted is only there)."""
    if status is None:
        return []
    return [t.place for t in removed_targets([], status.copies, status.former_copy_targets)]


async def running_elsewhere(
    observer: Observer, policy: Policy, status: SnapshotPolicyStatus, disk: Disk
) -> frozenset[str] | None:
    """The sources of the disk's copies still running into a target the spec no longer names: retention keeps them
    until the copy ends (Azure would end it with CopySourceNotFound). From the cached lists of the disk's
    subscription and the removed targets' (former, or leaving now); None when a subscription that holds a removed
    target cannot be listed (which copies run there is unknown, so every source is kept, as for a spec target)."""
    spec = {target_key(t, disk.subscription_id) for t in policy.spec.copies or []}
    groups: dict[str, set[str]] = {disk.subscription_id.lower(): set()}
    # Those that left the spec in this very reconcile too: they are still in `status.copies`, not yet former.
    for target in removed_targets(policy.spec.copies, status.copies, status.former_copy_targets):
        sub, group, _ = target.place
        groups.setdefault(sub, set()).add(group)
    held: set[str] = set()
    for sub, its_groups in groups.items():
        try:
            seen = await observer.copies_of(sub, sorted(its_groups), disk_hash(disk.id), fresh=False)
        except CloudError:
            if its_groups:
                return None
            continue
        for copy in seen:
            place = (sub, copy.resource_group.lower(), copy.location.lower())
            if copy.state in _RUNNING and place not in spec and is_copy_of_policy(copy, policy.ref.uid, disk.id):
                held.add(naming.tag(copy.tags, TAG_COPY_OF) or "")
    return frozenset(held - {""})


async def track_former_targets(
    observer: Observer, policy: Policy, status: SnapshotPolicyStatus, report: StatusReport
) -> StatusReport:
    """The report with `formerCopyTargets` and, for a target that just left the spec, its warning."""
    if report.health.reason in _NO_CALL:
        return report
    candidates = removed_targets(policy.spec.copies, status.copies, status.former_copy_targets)
    if not candidates:
        if status.former_copy_targets:
            return replace(report, status={**report.status, "formerCopyTargets": None})
        return report
    held: dict[Place, int | None] = {}
    for target in candidates:
        sub, group, region = target.place
        try:
            listed = await observer.azsnaps_in_subscription(sub, [group])
        except CloudError:
            held[target.place] = None  # kept as it was; listed again next time
            continue
        held[target.place] = sum(
            1
            for s in listed
            if s.resource_group.lower() == group and s.location.lower() == region and is_policy_copy(s, policy.ref.uid)
        )
    events = [
        Event("Warning", "CopyTargetRemoved", removed_text(t, count, policy.ref.uid))
        for t in candidates
        if t.new and (count := held.get(t.place)) is not None and count > 0
    ]
    fields = {**report.status, "formerCopyTargets": former_status(candidates, held)}
    posted = [*report.events, *events]
    if policy.spec.disk is None and events:  # a claim policy's bound on events holds: the warning goes first
        posted = bounded_events([*events, *(e for e in report.events if e.reason != "MoreEvents")])
    return replace(report, status=fields, events=tuple(posted))
