"""What a claim policy's reconcile starts from: each disk's last entry, listed in `status.disks` or left out of it.

A listed disk's entry is in `status.disks`. A disk left out has only its account in `status.diskAccounts`
(`domain/disk_accounts.py`): its slot watermark, missed slots, a digest of its incarnation and one of the request
it served; with copy targets, its copy watermark per target in `status.copyAccounts` (`domain/copy_accounts.py`).
Rebuilt here into an entry, it goes on as a listed one would: its missed slots counted once, a new
incarnation told by a `NewDiskIncarnation` event, an on-demand request served once, and, when its claim went away, its ARM ID read back from the policy's snapshots so it
gets the gone claim's entry (`reconciler/gone_disks.py`). A status that holds nothing of the policy's disks (a new
policy, or a status lost) is filled the same way from every disk the policy holds snapshots of.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from azsnap.domain.copy_accounts import decode_copy_accounts, restored_copies
from azsnap.domain.disk_accounts import DiskAccount, account_key, decode_accounts
from azsnap.domain.models import Policy
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.targets import DiskEntry
from azsnap.domain.volumes import ClaimDisk
from azsnap.reconciler.gone_disks import is_unnamed, rediscover
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, StatusReport

__all__ = ["Remembered", "incarnation_events", "remembered"]


def _short(claim: str) -> str:
    return claim.rpartition("/")[2]


@dataclass(frozen=True)
class Remembered:
    """Each disk's last entry by claim name, and what the accounts of the disks left out add to that."""

    before: dict[str, DiskEntry]
    #: The accounts the entries of disks left out were rebuilt from, by the claim (`namespace/name`) naming the disk.
    accounts: dict[str, DiskAccount]
    #: Accounts whose disk could not be found again this time (Azure did not answer): kept as they are.
    carried: tuple[str, ...] = ()


async def remembered(
    observer: Observer,
    policy: Policy,
    status: SnapshotPolicyStatus,
    resolved: Iterable[ClaimDisk],
    on_demand_token: str | None,
) -> Remembered:
    """The entries a reconcile starts from: `status.disks`, and the disks left out rebuilt from their accounts."""
    resolved = list(resolved)
    before = _named_again({e.claim: e for e in status.disks or []}, resolved)
    accounts = decode_accounts(status.disk_accounts)
    copy_marks = decode_copy_accounts(status.copy_accounts)
    rebuilt: dict[str, DiskAccount] = {}
    for t in resolved:
        account = None if t.disk_id is None else accounts.get(account_key(t.disk_id))
        if account is not None and t.disk_id is not None and _short(t.claim) not in before:
            entry = account.entry(_short(t.claim), t.disk_id, on_demand_token)
            copies = restored_copies(policy.spec.copies, t.disk_id, copy_marks)  # its copy watermarks
            before[_short(t.claim)] = entry.model_copy(update={"copies": copies})
            rebuilt[t.claim] = account
    known = [d for d in [*(t.disk_id for t in resolved), *(e.disk for e in before.values())] if d]
    named = {account_key(d) for d in known}
    orphaned = {key: account for key, account in accounts.items() if key not in named}
    # A status that holds nothing of the policy's disks (lost, or never written) is filled from Azure once.
    lost = status.disks is None and status.disk_accounts is None
    if not orphaned and not lost:
        return Remembered(before, rebuilt)
    # A disk left out whose claim went away: its ARM ID is read back from the policy's own snapshots.
    found = await rediscover(observer, policy, orphaned, known, every=lost)
    if found is None:
        carried = tuple(item for item in status.disk_accounts or () if item.partition("=")[0] in orphaned)
        return Remembered(before, rebuilt, carried)
    before.update({e.claim: e for e in found if e.claim not in before})
    return Remembered(before, rebuilt)


def _named_again(before: dict[str, DiskEntry], resolved: Iterable[ClaimDisk]) -> dict[str, DiskEntry]:
    """A disk kept under `(claim of disk …)` that a claim names again goes on as that claim's entry, not twice.

    A claim left out that lost its volume, and got it back, is such a claim: while it named no disk, its disk
    was found again by the policy's snapshots under a name of its own (the claim's was not kept).
    """
    unnamed = {e.disk.lower(): key for key, e in before.items() if e.disk and is_unnamed(key)}
    for target in resolved:
        disk = (target.disk_id or "").lower()
        key = unnamed.pop(disk, None) if disk else None
        if key is None:
            continue
        entry, name = before.pop(key), _short(target.claim)
        own = before.get(name)
        if own is None or (own.disk or "").lower() != disk:
            before[name] = entry.model_copy(update={"claim": name})
    return before


def incarnation_events(rebuilt: Mapping[str, DiskAccount], reports: Mapping[str, StatusReport]) -> list[Event]:
    """`NewDiskIncarnation` for each disk left out that Azure now shows recreated or restored in place.

    A listed disk's event comes from its full unique ID in `status.disks` (`Reconciler.reconcile_disk`); a disk
    left out has only a digest of it, so its event is told here, the same way.
    """
    events = []
    for claim, account in rebuilt.items():
        report = reports.get(claim)
        unique_id = None if report is None else report.status.get("diskUniqueId")
        if report is not None and account.is_new_incarnation(unique_id):
            name = str(report.status.get("diskName") or claim)
            events.append(
                Event(
                    "Normal",
                    "NewDiskIncarnation",
                    f"Disk {name} was recreated or restored in place (unique ID {unique_id}); its earlier "
                    "snapshots stay under this policy's retention.",
                )
            )
    return events
