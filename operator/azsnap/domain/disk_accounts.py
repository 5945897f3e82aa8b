"""What a claim policy keeps of the disks `status.disks` leaves out, compactly, in `status.diskAccounts`.

`status.disks` shows at most 50 disks. Every other disk is one string of a list,
`<key>=<watermark>[/<missed>][~<incarnation>]`: the key is the first 12 hex digits of the SHA-256 of the disk's
ARM ID (lower case), the watermark the Unix time in seconds up to which its slots are accounted for (0: none yet),
`missed` its missed slots, and the incarnation the first 8 hex digits of the SHA-256 of the disk's `uniqueId`
(so a disk recreated under the same ARM ID is told, as for a listed disk). An item is at most 46 bytes of JSON,
so ten thousand disks take at most 460 KB of the object. The key is also what finds a disk again whose claim went
away while it was left out: its ARM ID is then read from the policy's own snapshots (`reconciler/gone_disks.py`).
A list, not a map: a status patch (a JSON merge patch) replaces a list whole, where it would keep the keys of a map
that are no longer written. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from azsnap.domain.targets import DiskEntry

__all__ = [
    "INCARNATION_LENGTH",
    "KEY_LENGTH",
    "MAX_ACCOUNT_BYTES",
    "MAX_ITEM_LENGTH",
    "DiskAccount",
    "account_key",
    "decode_accounts",
    "encode_accounts",
    "incarnation_digest",
]

#: Characters of the SHA-256 hex digest that name a disk (48 bits: a clash is unlikely below millions of disks).
KEY_LENGTH: Final = 12
#: Characters of the SHA-256 hex digest of a disk's `uniqueId` (32 bits: one recreate in four billion goes untold).
INCARNATION_LENGTH: Final = 8
#: The most bytes one disk takes in `status.diskAccounts` as JSON (`"<item>",`).
MAX_ACCOUNT_BYTES: Final = 46
#: The longest item: the key, `=`, ten digits of seconds, `/` and ten digits of missed slots, `~` and the incarnation.
MAX_ITEM_LENGTH: Final = KEY_LENGTH + 22 + 1 + INCARNATION_LENGTH


def account_key(disk_id: str) -> str:
    """The disk's key in `status.diskAccounts`."""
    return hashlib.sha256(disk_id.lower().encode()).hexdigest()[:KEY_LENGTH]


def incarnation_digest(unique_id: str) -> str:
    """What `status.diskAccounts` keeps of a disk's `uniqueId`: enough to tell a new incarnation from the last one."""
    return hashlib.sha256(unique_id.lower().encode()).hexdigest()[:INCARNATION_LENGTH]


@dataclass(frozen=True)
class DiskAccount:
    """What a disk left out keeps: up to when its slots are accounted for, how many it missed, its incarnation."""

    accounted_until: datetime | None
    missed: int
    #: `incarnation_digest` of the disk's `uniqueId` last seen (None: not known yet).
    incarnation: str | None = None

    def entry(self, claim: str, disk_id: str) -> DiskEntry:
        """The disk's `status.disks` entry as far as the account goes (the reconcile fills in the rest)."""
        return DiskEntry(
            claim=claim, disk=disk_id, state="Ready", missed=self.missed, slots_accounted_until=self.accounted_until
        )

    def is_new_incarnation(self, unique_id: str | None) -> bool:
        """True when the disk read now is another incarnation than the one the account last saw."""
        return bool(self.incarnation and unique_id) and incarnation_digest(unique_id or "") != self.incarnation


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def encode_accounts(entries: Iterable[DiskEntry]) -> list[str] | None:
    """`status.diskAccounts` for the entries `status.disks` leaves out (None when none names a disk)."""
    accounts: dict[str, str] = {}
    for entry in entries:
        if entry.disk is None:
            continue
        # slots are whole seconds: flooring passes none; 0 says "nothing accounted for yet"
        until = entry.slots_accounted_until
        value = str(0 if until is None else max(int(until.timestamp()), 0))
        if entry.missed:
            value += f"/{entry.missed}"
        if entry.disk_unique_id:
            value += f"~{incarnation_digest(entry.disk_unique_id)}"
        accounts[account_key(entry.disk)] = value
    return [f"{key}={value}" for key, value in sorted(accounts.items())] or None


def decode_accounts(accounts: Iterable[str] | None) -> dict[str, DiskAccount]:
    """The accounts of `status.diskAccounts` by key; an item that does not parse is left out (that disk starts afresh)."""
    found: dict[str, DiskAccount] = {}
    for item in accounts or ():
        key, _, value = item.partition("=")
        value, _, incarnation = value.partition("~")
        seconds, _, missed = value.partition("/")
        if not key or not seconds.isdigit() or (missed and not missed.isdigit()):
            continue
        if incarnation and (len(incarnation) != INCARNATION_LENGTH or not _is_hex(incarnation)):
            continue
        until = int(seconds)
        found[key] = DiskAccount(
            None if until == 0 else datetime.fromtimestamp(until, UTC), int(missed or 0), incarnation or None
        )
    return found
