"""The slot accounting of a claim policy's disks that `status.disks` leaves out, kept compact in `status.diskAccounts`.

`status.disks` shows at most 50 disks. Every other disk's accounting (its slot watermark and its missed slots) is
one string of a list, `<key>=<watermark>/<missed>`: the key is the first 12 hex digits of the SHA-256 of the disk's
ARM ID (lower case), the watermark the Unix time in seconds up to which its slots are accounted for. An item is at
most 40 bytes of JSON, so ten thousand disks take at most 400 KB of the object. A list, not a map: a status patch
(a JSON merge patch) replaces a list whole, where it would keep the keys of a map that are no longer written.
Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from azsnap.domain.targets import DiskEntry

__all__ = [
    "KEY_LENGTH",
    "MAX_ACCOUNT_BYTES",
    "MAX_ITEM_LENGTH",
    "DiskAccount",
    "account_key",
    "decode_accounts",
    "encode_accounts",
]

#: Characters of the SHA-256 hex digest that name a disk (48 bits: a clash is unlikely below millions of disks).
KEY_LENGTH: Final = 12
#: The most bytes one disk takes in `status.diskAccounts` as JSON (`"<key>=<seconds>/<missed>",`).
MAX_ACCOUNT_BYTES: Final = 40
#: The longest item: the key, `=`, ten digits of seconds, a slash, up to ten digits of missed slots.
MAX_ITEM_LENGTH: Final = KEY_LENGTH + 22


def account_key(disk_id: str) -> str:
    """The disk's key in `status.diskAccounts`."""
    return hashlib.sha256(disk_id.lower().encode()).hexdigest()[:KEY_LENGTH]


@dataclass(frozen=True)
class DiskAccount:
    """What slot accounting needs of a disk: up to when its slots are accounted for, and how many it missed."""

    accounted_until: datetime
    missed: int

    def entry(self, claim: str, disk_id: str) -> DiskEntry:
        """The disk's `status.disks` entry as far as accounting goes (the reconcile fills in the rest)."""
        return DiskEntry(
            claim=claim, disk=disk_id, state="Ready", missed=self.missed, slots_accounted_until=self.accounted_until
        )


def encode_accounts(entries: Iterable[DiskEntry]) -> list[str] | None:
    """`status.diskAccounts` for the entries `status.disks` leaves out (None when none has accounting)."""
    accounts: dict[str, str] = {}
    for entry in entries:
        if entry.disk is None or entry.slots_accounted_until is None:
            continue
        seconds = int(entry.slots_accounted_until.timestamp())  # slots are whole seconds: flooring passes none
        missed = entry.missed or 0
        accounts[account_key(entry.disk)] = f"{seconds}/{missed}" if missed else str(seconds)
    return [f"{key}={value}" for key, value in sorted(accounts.items())] or None


def decode_accounts(accounts: Iterable[str] | None) -> dict[str, DiskAccount]:
    """The accounts of `status.diskAccounts` by key; an item that does not parse is left out (that disk starts afresh)."""
    found: dict[str, DiskAccount] = {}
    for item in accounts or ():
        key, _, value = item.partition("=")
        seconds, _, missed = value.partition("/")
        if not key or not seconds.isdigit() or (missed and not missed.isdigit()):
            continue
        found[key] = DiskAccount(datetime.fromtimestamp(int(seconds), UTC), int(missed or 0))
    return found
