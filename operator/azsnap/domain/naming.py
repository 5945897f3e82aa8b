"""Snapshot names (deterministic, from disk, policy and slot) and the ownership tags that prove a snapshot is ours."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from azsnap.domain.models import Policy, PolicyRef
from azsnap.domain.observed import Disk, Snapshot

__all__ = [
    "KIND_ON_DEMAND",
    "KIND_SCHEDULED",
    "MANAGED_BY_VALUE",
    "MAX_ATTEMPTS",
    "MAX_NAME",
    "TAG_DISK_UID",
    "TAG_HOLD",
    "TAG_KIND",
    "TAG_MANAGED_BY",
    "TAG_POLICY",
    "TAG_POLICY_UID",
    "TAG_REQUEST",
    "TAG_SLOT",
    "format_slot",
    "incarnation_of",
    "is_held",
    "is_on_demand",
    "is_owned",
    "name_matches_owner",
    "ownership_tags",
    "owns",
    "parse_slot",
    "policy_hash",
    "request_hash",
    "slot_of",
    "snapshot_name",
    "snapshot_tags",
    "tag",
]

TAG_MANAGED_BY: Final = "azsnap-managed-by"
MANAGED_BY_VALUE: Final = "azsnap"
TAG_POLICY_UID: Final = "azsnap-policy-uid"
#: `namespace/name` of the policy, for people reading the portal; ownership never rests on it.
TAG_POLICY: Final = "azsnap-policy"
TAG_DISK_UID: Final = "azsnap-disk-uid"
#: The scheduled slot in UTC, `2026-11-23T14:00:00Z`.
TAG_SLOT: Final = "azsnap-slot"
TAG_KIND: Final = "azsnap-kind"
KIND_SCHEDULED: Final = "scheduled"
KIND_ON_DEMAND: Final = "on-demand"
#: Any value: azsnap never deletes a snapshot carrying this tag.
TAG_HOLD: Final = "azsnap-hold"
#: A short hash of the on-demand request that made the snapshot, so a retried request is recognised.
TAG_REQUEST: Final = "azsnap-request"

#: Azure snapshot names: 1-80 characters.
MAX_NAME: Final = 80
_MAX_TAG_VALUE: Final = 256
_SLOT_FORMAT: Final = "%Y-%m-%dT%H:%M:%SZ"
_NAME_TIME_FORMAT: Final = "%Y%m%dT%H%MZ"
_ON_DEMAND_SUFFIX: Final = "-od"
#: At most this many snapshots are asked for one scheduled slot (a retry after one ended `Failed`).
MAX_ATTEMPTS: Final = 3
#: `-<8 hex>-<YYYYMMDDTHHMMZ>-od`: what follows the disk name at most.
_SUFFIX_LENGTH: Final = 1 + 8 + 1 + 14 + len(_ON_DEMAND_SUFFIX)
_BAD_NAME_CHARS: Final = re.compile(r"[^A-Za-z0-9_.-]")
_SLOT_TEXT: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def policy_hash(policy_uid: str) -> str:
    """Eight hex characters standing for the policy in snapshot names."""
    return hashlib.sha256(policy_uid.encode()).hexdigest()[:8]


def request_hash(token: str) -> str:
    """A short, tag-safe stand-in for an on-demand request token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def format_slot(slot: datetime) -> str:
    """The slot as the UTC ISO-8601 text written in the slot tag."""
    return slot.astimezone(UTC).strftime(_SLOT_FORMAT)


def parse_slot(text: str) -> datetime | None:
    """The slot written by `format_slot`, or None for anything else."""
    if not _SLOT_TEXT.match(text):
        return None
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return None


def _name_prefix(disk_name: str) -> str:
    prefix = _BAD_NAME_CHARS.sub("-", disk_name).lstrip("-_.")
    prefix = prefix[: MAX_NAME - _SUFFIX_LENGTH]
    return prefix or "disk"


def snapshot_name(disk_name: str, policy_uid: str, slot: datetime, *, on_demand: bool = False, attempt: int = 1) -> str:
    """`<disk name, truncated>-<policy hash>-<YYYYMMDDTHHMMZ>[-od|-rN]`: the same inputs always give the same name.

    `attempt` 2..9 names a retry of a scheduled slot whose first snapshot ended `Failed` (`-r2`, ...). The result
    keeps Azure's rules: 1-80 characters of letters, digits, `_`, `-`, `.`, starting with a letter or digit and
    ending with a letter or digit.
    """
    if not 1 <= attempt <= MAX_ATTEMPTS:
        raise ValueError(f"attempt must be 1-{MAX_ATTEMPTS}, not {attempt}")
    stamp = slot.astimezone(UTC).strftime(_NAME_TIME_FORMAT)
    name = f"{_name_prefix(disk_name)}-{policy_hash(policy_uid)}-{stamp}"
    if on_demand:
        return name + _ON_DEMAND_SUFFIX
    return name if attempt == 1 else f"{name}-r{attempt}"


def ownership_tags(
    policy: PolicyRef,
    disk: Disk,
    slot: datetime,
    *,
    on_demand: bool = False,
    request: str | None = None,
) -> dict[str, str]:
    """The tags that make a snapshot ours; within Azure's limits (value <= 256 characters)."""
    tags = {
        TAG_MANAGED_BY: MANAGED_BY_VALUE,
        TAG_POLICY_UID: policy.uid,
        TAG_POLICY: f"{policy.namespace}/{policy.name}"[:_MAX_TAG_VALUE],
        TAG_DISK_UID: disk.unique_id,
        TAG_SLOT: format_slot(slot),
        TAG_KIND: KIND_ON_DEMAND if on_demand else KIND_SCHEDULED,
    }
    if request is not None:
        tags[TAG_REQUEST] = request_hash(request)
    return tags


def snapshot_tags(
    policy: Policy,
    disk: Disk,
    slot: datetime,
    on_demand: bool = False,
    *,
    request: str | None = None,
) -> dict[str, str]:
    """The user's `spec.snapshot.tags` plus the ownership tags (ours win; Azure tag keys ignore case)."""
    ours = ownership_tags(policy.ref, disk, slot, on_demand=on_demand, request=request)
    reserved = {key.lower() for key in ours} | {TAG_HOLD}
    user = {k: v for k, v in policy.spec.snapshot.tags.items() if k.lower() not in reserved}
    return {**user, **ours}


def tag(tags: Mapping[str, str], key: str) -> str | None:
    """The value of tag `key`, compared without case as Azure does."""
    value = tags.get(key)
    if value is not None:
        return value
    wanted = key.lower()
    for k, v in tags.items():
        if k.lower() == wanted:
            return v
    return None


def is_owned(snapshot: Snapshot, policy: PolicyRef, disk: Disk) -> bool:
    """True only when the tags say azsnap made it for this policy and Azure says it is of this disk's ARM ID.

    Lineage: a policy governs every snapshot it made of its disk's ARM ID, whatever incarnation of the disk
    (Azure's `sourceUniqueId`) it was taken from. The disk-UID tag must be there but records only the incarnation
    azsnap meant to copy; ownership never rests on its value, so a disk recreated between a cached read and a create cannot leave a
    snapshot no policy owns.
    """
    return owns(snapshot, policy, disk.id)


def owns(snapshot: Snapshot, policy: PolicyRef, disk_id: str) -> bool:
    """`is_owned` by the disk's ARM ID alone: also when the disk does not exist (deleted, not yet recreated)."""
    return (
        tag(snapshot.tags, TAG_MANAGED_BY) == MANAGED_BY_VALUE
        and tag(snapshot.tags, TAG_POLICY_UID) == policy.uid
        and bool(tag(snapshot.tags, TAG_DISK_UID))
        and (snapshot.source_resource_id or "").lower() == disk_id.lower()
    )


def incarnation_of(snapshot: Snapshot) -> str:
    """The disk incarnation a snapshot was taken from: Azure's `sourceUniqueId`, else the disk-UID tag, else ""."""
    return snapshot.source_unique_id or tag(snapshot.tags, TAG_DISK_UID) or ""


def name_matches_owner(snapshot: Snapshot) -> bool:
    """True when the name carries the hash of the policy UID its tags name, as every name azsnap gives does.

    A policy-UID tag changed by hand to another policy's leaves the name pointing at the first policy: such a
    snapshot is never deleted on the strength of its tags alone.
    """
    uid = tag(snapshot.tags, TAG_POLICY_UID)
    return uid is not None and f"-{policy_hash(uid)}-" in snapshot.name


def slot_of(snapshot: Snapshot) -> datetime | None:
    """The scheduled slot from the slot tag (aware UTC), or None when absent or unreadable."""
    text = tag(snapshot.tags, TAG_SLOT)
    return None if text is None else parse_slot(text)


def is_on_demand(snapshot: Snapshot) -> bool:
    """True for a snapshot made on request rather than for a scheduled slot."""
    return tag(snapshot.tags, TAG_KIND) == KIND_ON_DEMAND


def is_held(snapshot: Snapshot) -> bool:
    """True when the hold tag is present, whatever its value: such a snapshot is never deleted."""
    return tag(snapshot.tags, TAG_HOLD) is not None


#: On a restore drill's scratch disk: the UID of the policy whose drill made it (only such a disk is deleted by it).
TAG_DRILL: Final = "azsnap-drill-policy-uid"
KIND_DRILL: Final = "drill"


def scratch_disk_name(disk_name: str, policy_uid: str, started: datetime) -> str:
    """`<disk>-drill-<policy hash>-<start, UTC>`, within Azure's 80 characters; the same for a retry of one drill."""
    suffix = f"-drill-{policy_hash(policy_uid)}-{started.strftime('%Y%m%dT%H%MZ')}"
    return disk_name[: 80 - len(suffix)].rstrip("-._") + suffix


def drill_tags(policy_uid: str, policy: str, snapshot_name: str) -> dict[str, str]:
    """A scratch disk's tags: azsnap's, the drill's policy UID (what allows deleting it), and the snapshot."""
    return {
        TAG_MANAGED_BY: MANAGED_BY_VALUE,
        TAG_KIND: KIND_DRILL,
        TAG_DRILL: policy_uid,
        TAG_POLICY: policy[:256],
        "azsnap-source-snapshot": snapshot_name,
    }
