"""What a claim policy keeps of the disks `status.disks` leaves out, compactly, in `status.diskAccounts`.

`status.disks` shows at most 50 disks. Every other disk is one string of a list,
`<key>=<watermark>[/<missed>][~<incarnation>][!<request>]`: the key is the first 12 hex digits of the SHA-256 of
the disk's ARM ID (lower case), the watermark the Unix time in seconds up to which its slots are accounted for
(0: none yet), `missed` its missed slots, the incarnation the first 8 hex digits of the SHA-256 of the disk's
`uniqueId` (so a disk recreated under the same ARM ID is told, as for a listed disk), and the request the first
8 hex digits of the SHA-256 of the last on-demand token the disk served, only while that is not the policy's
`lastOnDemandToken` (so a request is served once however long another disk cannot serve it). An item is at most
55 bytes of JSON, so ten thousand disks take at most 550 KB of the object. The key is also what finds a disk again whose claim went
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
    "DIGEST_LENGTH",
    "KEY_LENGTH",
    "MAX_ACCOUNT_BYTES",
    "MAX_ITEM_LENGTH",
    "DiskAccount",
    "account_key",
    "decode_accounts",
    "encode_accounts",
    "incarnation_digest",
    "request_digest",
]

#: Characters of the SHA-256 hex digest that name a disk (48 bits: a clash is unlikely below millions of disks).
KEY_LENGTH: Final = 12
#: Characters of the SHA-256 hex digest of a disk's `uniqueId` or of a request (32 bits: one in four billion clashes).
DIGEST_LENGTH: Final = 8
#: The most bytes one disk takes in `status.diskAccounts` as JSON (`"<item>",`).
MAX_ACCOUNT_BYTES: Final = 55
#: The longest item: the key, `=`, ten digits of seconds, `/` and ten digits of missed slots, `~` and the
#: incarnation, `!` and the request.
MAX_ITEM_LENGTH: Final = KEY_LENGTH + 22 + 2 * (1 + DIGEST_LENGTH)


def account_key(disk_id: str) -> str:
    """The disk's key in `status.diskAccounts`."""
    return hashlib.sha256(disk_id.lower().encode()).hexdigest()[:KEY_LENGTH]


def incarnation_digest(unique_id: str) -> str:
    """What `status.diskAccounts` keeps of a disk's `uniqueId`: enough to tell a new incarnation from the last one."""
    return hashlib.sha256(unique_id.lower().encode()).hexdigest()[:DIGEST_LENGTH]


def request_digest(token: str) -> str:
    """What `status.diskAccounts` keeps of an on-demand token (`azsnap.io/snapshot-now`) a disk served."""
    return hashlib.sha256(token.encode()).hexdigest()[:DIGEST_LENGTH]


@dataclass(frozen=True)
class DiskAccount:
    """What a disk left out keeps: its slot watermark and missed slots, its incarnation, the request it served."""

    accounted_until: datetime | None
    missed: int
    #: `incarnation_digest` of the disk's `uniqueId` last seen (None: not known yet).
    incarnation: str | None = None
    #: `request_digest` of the last on-demand token the disk served, when that is not the policy's.
    request: str | None = None

    def entry(self, claim: str, disk_id: str, on_demand_token: str | None = None) -> DiskEntry:
        """The disk's `status.disks` entry as far as the account goes (the reconcile fills in the rest).

        Its last on-demand token is the one asked for now when the disk served it (else the policy's applies).
        """
        served = self.request is not None and on_demand_token and request_digest(on_demand_token) == self.request
        return DiskEntry(
            claim=claim,
            disk=disk_id,
            state="Ready",
            missed=self.missed,
            slots_accounted_until=self.accounted_until,
            last_on_demand_token=on_demand_token if served else None,
        )

    def is_new_incarnation(self, unique_id: str | None) -> bool:
        """True when the disk read now is another incarnation than the one the account last saw."""
        return bool(self.incarnation and unique_id) and incarnation_digest(unique_id or "") != self.incarnation


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def encode_accounts(entries: Iterable[DiskEntry], policy_token: str | None = None) -> list[str] | None:
    """`status.diskAccounts` for the entries `status.disks` leaves out (None when none names a disk).

    `policy_token` is the policy's `lastOnDemandToken` as written with them: a disk's own is kept only when it differs.
    """
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
        if entry.last_on_demand_token and entry.last_on_demand_token != policy_token:
            value += f"!{request_digest(entry.last_on_demand_token)}"
        accounts[account_key(entry.disk)] = value
    return [f"{key}={value}" for key, value in sorted(accounts.items())] or None


def decode_accounts(accounts: Iterable[str] | None) -> dict[str, DiskAccount]:
    """The accounts of `status.diskAccounts` by key; an item that does not parse is left out (that disk starts afresh)."""
    found: dict[str, DiskAccount] = {}
    for item in accounts or ():
        key, _, value = item.partition("=")
        value, _, request = value.partition("!")
        value, _, incarnation = value.partition("~")
        seconds, _, missed = value.partition("/")
        if not key or not seconds.isdigit() or (missed and not missed.isdigit()):
            continue
        if any(d and (len(d) != DIGEST_LENGTH or not _is_hex(d)) for d in (incarnation, request)):
            continue
        until = None if int(seconds) == 0 else datetime.fromtimestamp(int(seconds), UTC)
        found[key] = DiskAccount(until, int(missed or 0), incarnation or None, request or None)
    return found
