"""Copy targets removed from `spec.copies`: their copies stay, are reported, and go with the policy under Delete.

A target that leaves `spec.copies` keeps the copies azsnap made there. They are not the target's to retire any
more (its retention left the spec with it, and the policy's own could delete copies a person still counts on),
so azsnap keeps them all, and says so: the target moves from `status.copies` to `status.formerCopyTargets`
with how many of the policy's copies it still holds, and a `CopyTargetRemoved` warning says how to remove them
(put the target back, whose retention then applies again; delete them by their tags; or delete the policy with
`deletionPolicy: Delete`, which finds them there). An entry goes once the target holds none of the policy's copies,
or when the target is back in the spec; at most `MAX_FORMER_TARGETS` are kept (the ones removed last). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from azsnap.domain import naming
from azsnap.domain.copies import ROLE_COPY, TAG_ROLE
from azsnap.domain.models import CopyTarget
from azsnap.domain.observed import Snapshot

__all__ = [
    "MAX_FORMER_TARGETS",
    "FormerTarget",
    "Place",
    "former_status",
    "is_policy_copy",
    "removed_targets",
    "removed_text",
]

#: Former targets kept in status (the ones removed last); `spec.copies` holds at most 3 at a time.
MAX_FORMER_TARGETS: Final = 8

#: (subscription, resource group, region), lower-cased.
Place = tuple[str, str, str]


@dataclass(frozen=True)
class FormerTarget:
    """A target the spec no longer names, and the policy's copies it held when last listed (None: not known)."""

    subscription_id: str
    resource_group: str
    region: str
    held: int | None
    #: It left the spec since the last reconcile (it was in `status.copies`, not yet in `formerCopyTargets`).
    new: bool = False

    @property
    def place(self) -> Place:
        return (self.subscription_id.lower(), self.resource_group.lower(), self.region.lower())

    def status(self, held: int | None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "region": self.region,
            "resourceGroup": self.resource_group,
            "subscriptionId": self.subscription_id,
        }
        count = held if held is not None else self.held
        return entry if count is None else {**entry, "copiesHeld": count}


def is_policy_copy(snapshot: Snapshot, policy_uid: str) -> bool:
    """A copy azsnap made for the policy, of any of its disks (tags and name agree; the disk is not asked)."""
    return (
        naming.tag(snapshot.tags, naming.TAG_MANAGED_BY) == naming.MANAGED_BY_VALUE
        and naming.tag(snapshot.tags, naming.TAG_POLICY_UID) == policy_uid
        and naming.tag(snapshot.tags, TAG_ROLE) == ROLE_COPY
        and naming.name_matches_owner(snapshot)
    )


def _named(entry: Mapping[str, Any], targets: Sequence[CopyTarget]) -> bool:
    """The spec names the entry's target (a target without a subscription is the disk's: any subscription)."""
    region, group = str(entry.get("region", "")).lower(), str(entry.get("resourceGroup", "")).lower()
    sub = str(entry.get("subscriptionId") or "").lower()
    return any(
        t.region.lower() == region
        and t.resource_group.lower() == group
        and (t.subscription_id is None or t.subscription_id.lower() == sub)
        for t in targets
    )


def _former(entry: Mapping[str, Any], *, new: bool) -> FormerTarget | None:
    region, group, sub = entry.get("region"), entry.get("resourceGroup"), entry.get("subscriptionId")
    if not (isinstance(region, str) and isinstance(group, str) and isinstance(sub, str)) or not (region and group):
        return None  # not locatable (a claim policy that had no disk): the subscription-wide search still finds it
    held = entry.get("copiesHeld")
    return FormerTarget(sub, group, region, int(held) if isinstance(held, int) else None, new)


def removed_targets(
    targets: Sequence[CopyTarget] | None,
    copies_status: Iterable[Mapping[str, Any]] | None,
    former_status_: Iterable[Mapping[str, Any]] | None,
) -> list[FormerTarget]:
    """The targets of the last status (`status.copies`, `status.formerCopyTargets`) that the spec no longer names.

    Those already former come first (oldest removal first), then those that left the spec since (`new`).
    """
    spec = list(targets or [])
    found: dict[Place, FormerTarget] = {}
    for entries, new in ((former_status_, False), (copies_status, True)):
        for entry in entries or ():
            target = None if _named(entry, spec) else _former(entry, new=new)
            if target is not None and target.place not in found:
                found[target.place] = target
    return list(found.values())


def former_status(candidates: Sequence[FormerTarget], held: Mapping[Place, int | None]) -> list[dict[str, Any]] | None:
    """`status.formerCopyTargets`: the candidates that still hold copies (or could not be listed), the last removed
    `MAX_FORMER_TARGETS`; None when there are none."""
    kept = [t.status(held.get(t.place)) for t in candidates if held.get(t.place, t.held) != 0]
    return kept[-MAX_FORMER_TARGETS:] or None


def removed_text(target: FormerTarget, held: int, policy_uid: str) -> str:
    """The `CopyTargetRemoved` event: what stays, and the three ways to remove it."""
    return (
        f"Copy target {target.region}/{target.resource_group} (subscription {target.subscription_id}) left "
        f"spec.copies: azsnap keeps its {held} copy(ies) of this policy and no retention applies to them any more "
        "(status.formerCopyTargets). To remove them, put the target back in spec.copies (its retention applies "
        "again), delete the policy with deletionPolicy: Delete, or delete them by their tags (azsnap-policy-uid "
        f"{policy_uid}, azsnap-role copy) in resource group {target.resource_group}: see docs/dr.md."
    )
