"""The copy accounting of the claim disks `status.disks` leaves out: a watermark per target each, compactly.

A listed disk keeps its copy accounting per target in its entry (`domain/copy_status.py`). A disk left out keeps
one string in `status.copyAccounts`, `<key>=<target>:<seconds>[,<target>:<seconds>]`: the key as in
`status.diskAccounts` (`domain/disk_accounts.account_key`), per target of the spec the 4 hex digits that end its
copies' names (`domain/copies.target_tag`) and the Unix time, rounded up to the second, up to which the disk's
snapshots are copied or counted missed there. Its next reconcile walks its copies on from there, as a listed
disk's does, so a missed copy is counted once and a copy completed since gives its lag sample; what they add is
kept per target in the policy's `status.copies` (`copiesMissedNotShown`, `lagSecondsNotShown`). A disk without
a watermark (none yet, or an item that does not parse) goes on from its newest complete copy. An item is at most
64 characters (three targets), 67 bytes of JSON; one target, 31. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from azsnap.domain.copies import target_key, target_tag
from azsnap.domain.copy_status import sum_copies
from azsnap.domain.disk_accounts import account_key
from azsnap.domain.models import CopyTarget, parse_disk_id
from azsnap.domain.targets import DiskEntry

__all__ = ["MAX_COPY_ACCOUNT_LENGTH", "copy_fields", "decode_copy_accounts", "encode_copy_accounts", "restored_copies"]

#: The longest item: the key, `=`, and per target (three at most) the tag, `:` and ten digits, comma-separated.
MAX_COPY_ACCOUNT_LENGTH: Final = 12 + 1 + 3 * (4 + 1 + 10) + 2


def _seconds(text: Any) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    # Rounded up: a source created in the same second as the watermark's is not walked again (a disk's snapshots
    # are minutes apart).
    return max(math.ceil(when.timestamp()), 0) if when.tzinfo is not None else None


def encode_copy_accounts(entries: Iterable[DiskEntry]) -> list[str] | None:
    """`status.copyAccounts` for the entries `status.disks` leaves out (None when none has a watermark)."""
    accounts: dict[str, str] = {}
    for entry in entries:
        if entry.disk is None or not entry.copies:
            continue
        parts = []
        for copy in entry.copies:
            seconds = _seconds(copy.get("accountedUntil"))
            sub, group, region = (str(copy.get(k) or "").lower() for k in ("subscriptionId", "resourceGroup", "region"))
            if seconds is not None and sub and group and region:
                parts.append(f"{target_tag((sub, group, region))}:{seconds}")
        if parts:
            accounts[account_key(entry.disk)] = ",".join(parts[:3])
    return [f"{key}={value}" for key, value in sorted(accounts.items())] or None


def decode_copy_accounts(items: Iterable[str] | None) -> dict[str, dict[str, datetime]]:
    """The watermarks by disk key, then by target tag; an item that does not parse is left out."""
    found: dict[str, dict[str, datetime]] = {}
    for item in items or ():
        key, _, value = item.partition("=")
        marks: dict[str, datetime] = {}
        for part in value.split(","):
            tag, _, seconds = part.partition(":")
            if len(tag) == 4 and seconds.isdigit():
                marks[tag] = datetime.fromtimestamp(int(seconds), UTC)
        if key and marks:
            found[key] = marks
    return found


def restored_copies(
    targets: Sequence[CopyTarget] | None, disk_id: str, accounts: Mapping[str, Mapping[str, datetime]]
) -> list[dict[str, Any]] | None:
    """The `copies` a left-out disk's entry starts its reconcile from: a watermark per target its account has."""
    marks = accounts.get(account_key(disk_id))
    if not targets or not marks:
        return None
    default_sub = parse_disk_id(disk_id).subscription_id
    copies = []
    for target in targets:
        key = target_key(target, default_sub)
        mark = marks.get(target_tag(key))
        if mark is not None:
            copies.append(
                {
                    "region": target.region,
                    "resourceGroup": target.resource_group,
                    "subscriptionId": target.subscription_id or default_sub,
                    "accountedUntil": mark.isoformat(),
                }
            )
    return copies or None


def copy_fields(
    targets: Sequence[CopyTarget] | None,
    status_copies: Sequence[Mapping[str, Any]] | None,
    status_accounts: Iterable[str] | None,
    shown: Sequence[DiskEntry],
    left_out: Sequence[DiskEntry],
    carried: Iterable[str] = (),
) -> dict[str, Any]:
    """A claim policy's `copies` (summed, with what the disks left out add) and `copyAccounts` (their watermarks).

    `carried`: the keys of the disks whose accounts are kept as they were (Azure could not tell them this time).
    """
    if not targets:
        return {"copies": None, "copyAccounts": None}
    accounts = encode_copy_accounts(left_out) or []
    keys = set(carried)
    accounts += [item for item in status_accounts or () if item.partition("=")[0] in keys]
    summed = sum_copies(
        targets, (e.copies for e in shown), not_shown=(e.copies for e in left_out), carried=status_copies
    )
    return {"copies": summed, "copyAccounts": sorted(set(accounts)) or None}
