"""Which disks `azsnap snapshots` shows for a policy: the one its spec names, or those it reaches through claims.

A policy that targets claims reaches a disk through a claim: `status.disks` names it (at most 50 of them), or
`status.diskAccounts` keeps its account (the disks left out, by a key made from the ARM ID), or, for a disk whose
claim went away while it was left out, only the policy's own snapshots of it (their ownership tags) still tell.
`--disk` picks the one disk asked for among them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from azsnap.cloud.errors import CloudError
from azsnap.domain.disk_accounts import account_key, decode_accounts
from azsnap.domain.models import Policy
from azsnap.reconciler.gone_disks import is_unnamed, left_out_disks, owned_disks
from azsnap.reconciler.observe import Observer

__all__ = ["disk_of_policy", "disk_targets", "policy_disks", "same_disk"]

Target = tuple[str | None, str]  # (claim, disk ARM ID)


def same_disk(a: str, b: str) -> bool:
    """ARM compares IDs without case, so does this."""
    return a.lower() == b.lower()


async def policy_disks(
    observer: Observer, obj: Mapping[str, Any], policy: Policy, disk: str | None = None
) -> list[Target]:
    """(claim, disk ARM ID) of each disk of the policy to show, or of `disk` alone (empty: not the policy's)."""
    targets = disk_targets(obj, policy)
    if disk is not None:
        return await disk_of_policy(observer, policy, obj.get("status") or {}, targets, disk)
    if policy.spec.disk is None and targets:
        targets += await left_out_disks(observer, policy, [d for _, d in targets])
    return targets


def disk_targets(obj: Mapping[str, Any], policy: Policy) -> list[Target]:
    """(claim, disk ARM ID) of each disk the policy snapshots: its `spec.disk`, else its claims' disks in status.

    A policy that targets claims records the disks it holds snapshots of in `status.disks`, claims that went
    away included; reading them there needs no access to the claims. It lists at most 50: `policy_disks` finds
    the others by the policy's tags on its snapshots. A disk is shown once: under its claim's name where an
    entry whose claim's name was not kept (`(claim of disk …)`) names it too.
    """
    if policy.spec.disk is not None:
        return [(None, policy.spec.disk.id)]
    found: dict[str, Target] = {}
    for entry in (obj.get("status") or {}).get("disks") or []:
        if not isinstance(entry, Mapping) or not entry.get("disk"):
            continue
        claim, disk_id = entry.get("claim"), str(entry["disk"])
        held = found.get(disk_id.lower())
        if held is None or (held[0] is not None and is_unnamed(held[0])):
            found[disk_id.lower()] = (None if claim is None else str(claim), disk_id)
    return list(found.values())


async def disk_of_policy(
    observer: Observer, policy: Policy, status: Mapping[str, Any], targets: Sequence[Target], disk: str
) -> list[Target]:
    """The (claim, disk) of `disk` among the policy's disks; empty when the policy does not snapshot it.

    `targets` are the disks the policy's spec or `status.disks` name. A claim policy's disk left out of them is
    found by its account, else by the policy's snapshots of it in Azure (no claim name is kept for either); when
    Azure cannot be asked, the disk is kept, and reading its snapshots then says what Azure answered.
    """
    named = [t for t in targets if same_disk(t[1], disk)]
    if named or policy.spec.disk is not None:
        return named[:1]
    if account_key(disk) in decode_accounts(status.get("diskAccounts")):
        return [(None, disk)]
    try:
        owned = await owned_disks(observer, policy.ref, [disk], policy.spec.snapshot.resource_group)
    except CloudError:
        return [(None, disk)]  # Azure cannot tell now: reading the disk's snapshots says what it answered
    mine: list[Target] = [(None, found) for found in owned if same_disk(found, disk)]
    return mine[:1]
