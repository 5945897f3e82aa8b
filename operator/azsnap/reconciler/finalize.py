"""A policy's deletion: keep (Retain) or delete (Delete) its own snapshots, wherever they are, resumably."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, NotFound
from azsnap.cloud.interface import CloudClient
from azsnap.domain import naming, retention
from azsnap.domain.former_targets import Place
from azsnap.domain.models import DeletionPolicy, Policy
from azsnap.domain.observed import Snapshot, SnapshotState
from azsnap.domain.scope import ScopeCheck
from azsnap.domain.volumes import disk_ref
from azsnap.reconciler.act import subscription_of
from azsnap.reconciler.finalize_copies import finalize_copies, is_copy
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, FinalizeReport
from azsnap.reconciler.verdicts import Verdicts

__all__ = ["finalize"]


def _waiting_for_finalize(policy: Policy, listed: Sequence[Snapshot]) -> list[Snapshot]:
    """The policy's own snapshots still in progress: deletion waits for them."""
    return [
        s
        for s in listed
        if s.tags.get(naming.TAG_MANAGED_BY) == naming.MANAGED_BY_VALUE
        and s.tags.get(naming.TAG_POLICY_UID) == policy.ref.uid
        and not naming.is_held(s)
        and s.state in {SnapshotState.CREATING, SnapshotState.COPYING, SnapshotState.UNKNOWN}
    ]


async def finalize(
    policy: Policy,
    *,
    cloud: CloudClient,
    clock: Clock,
    observer: Observer,
    scope: ScopeCheck | None,
    verdicts: Verdicts,
    default_retry: timedelta,
    former: Sequence[Place] = (),
) -> FinalizeReport:
    """Delete (deletionPolicy Delete) every snapshot of the policy that is not held, in any resource group.

    `former`: the copy targets removed from the spec that status still knows (their copies go too)."""
    spec = policy.spec
    if spec.deletion_policy is DeletionPolicy.RETAIN:
        return FinalizeReport(True, "deletionPolicy is Retain: the snapshots stay, with their ownership tags")
    if scope is not None and scope.check(policy) is not None:
        return FinalizeReport(True, "the policy is outside its namespace's Azure scope: nothing was deleted")
    ref = disk_ref(spec)
    coords = ref.coordinates
    groups = (coords.resource_group, spec.snapshot.resource_group or coords.resource_group)
    retry = verdicts.retry_delay
    try:
        disk = await observer.disk(ref.id)
        listed = await observer.azsnaps_in_subscription(coords.subscription_id, groups)
    except CloudError as exc:
        return FinalizeReport(False, f"Azure answered {exc.message}; retrying", retry_after=retry(exc))
    doomed = retention.plan_finalize(policy, disk, listed, clock.now())
    copies = await finalize_copies(policy, ref.id, cloud, observer, former)  # first: a running copy keeps its source
    deleted, events = list(copies.deleted), list(copies.events)
    if copies.error is not None:
        message = f"{copies.failed_on} failed: {copies.error.message}; retrying"
        return FinalizeReport(False, message, tuple(deleted), retry_after=retry(copies.error), events=tuple(events))
    doomed = [a for a in doomed if a.snapshot.name not in copies.keep]
    for action in doomed:
        snap = action.snapshot
        sub = subscription_of(snap.id) or coords.subscription_id
        try:
            await cloud.delete_snapshot(sub, snap.resource_group, snap.name)
        except NotFound:
            pass
        except CloudError as exc:
            return FinalizeReport(
                False,
                f"deleting {snap.name} failed: {exc.message}; {len(doomed) - len(deleted)} left, retrying",
                deleted=tuple(deleted),
                remaining=len(doomed) - len(deleted),
                retry_after=retry(exc),
                events=tuple(events),
            )
        observer.record_deleted(sub, snap.resource_group, snap.name)
        deleted.append(snap.name)
        events.append(Event("Normal", "SnapshotDeleted", f"Deleted {snap.name}: the policy is being deleted"))
    try:
        still = await observer.azsnaps_in_subscription(coords.subscription_id, groups, fresh=False)
    except CloudError:
        still = []
    left = retention.plan_finalize(policy, disk, still, clock.now())
    waiting = [s for s in _waiting_for_finalize(policy, still) if not is_copy(s)]  # copies: counted apart
    if left or waiting or copies.running:
        running = f"; {copies.running} copy(ies) to other regions still running" if copies.running else ""
        return FinalizeReport(
            False,
            f"{len(left) + len(waiting)} snapshot(s) still to delete (some may still be in progress){running}",
            deleted=tuple(deleted),
            remaining=len(left) + len(waiting) + copies.running,
            retry_after=default_retry.total_seconds(),
            events=tuple(events),
        )
    return FinalizeReport(True, f"deleted {len(deleted)} snapshot(s)", deleted=tuple(deleted), events=tuple(events))
