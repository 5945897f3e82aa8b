"""The disks `status.disks` leaves out keep their slot accounting in `status.diskAccounts`: every missed slot counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.support.crd import schema_errors
from tests.support.status import fold_status as fold
from tests.unit.test_targets import NODE_RG, SUB, bound, manifest, policy

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.disk_accounts import (
    MAX_ACCOUNT_BYTES,
    MAX_ITEM_LENGTH,
    DiskAccount,
    account_key,
    decode_accounts,
    encode_accounts,
    incarnation_digest,
    request_digest,
)
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.targets import MAX_DISK_ENTRIES, DiskEntry
from azsnap.reconciler import Reconciler
from azsnap.reconciler.claims import ClaimStore

START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
SELECTOR = {"volumeClaimSelector": {"matchLabels": {"app": "pg"}}}


def test_an_account_is_small_and_reads_back_as_written() -> None:
    disk = f"/subscriptions/{SUB}/resourceGroups/{NODE_RG}/providers/Microsoft.Compute/disks/pvc-0"
    until = datetime(2026, 3, 2, 10, 59, 59, tzinfo=UTC)
    unique = "6f3e5f5e-2b0c-4f7e-9d3a-1c2b3a4d5e6f"
    entries = [
        DiskEntry(
            claim="a",
            disk=disk,
            state="Ready",
            missed=4_000_000_000,
            slots_accounted_until=until,
            disk_unique_id=unique,
            last_on_demand_token="2026-03-02T10:00",  # served by this disk, not yet by all
        ),
        DiskEntry(
            claim="b",
            disk=disk.upper() + "X",
            state="Ready",
            slots_accounted_until=until,
            last_on_demand_token="2026-03-01",  # the policy's: nothing to keep
        ),
        DiskEntry(claim="c", disk=disk + "-new", state="Ready"),  # not accounted yet: kept, so it can be found again
        DiskEntry(claim="d", state="Unresolved"),  # no disk: nothing to keep
    ]
    accounts = encode_accounts(entries, "2026-03-01")
    assert accounts is not None and len(accounts) == 3
    assert all(len(item) <= MAX_ITEM_LENGTH and len(json.dumps(item)) + 1 <= MAX_ACCOUNT_BYTES for item in accounts)
    request = request_digest("2026-03-02T10:00")
    longest = f"{account_key(disk)}=1772449199/4000000000~{incarnation_digest(unique)}!{request}"
    assert longest in accounts and len(longest) == MAX_ITEM_LENGTH
    decoded = decode_accounts(accounts)
    assert decoded[account_key(disk)] == DiskAccount(until, 4_000_000_000, incarnation_digest(unique), request)
    # The request it served is the one asked for now: served already. Another one: not yet.
    assert decoded[account_key(disk)].entry("a", disk, "2026-03-02T10:00").last_on_demand_token == "2026-03-02T10:00"
    assert decoded[account_key(disk)].entry("a", disk, "2026-03-02T11:00").last_on_demand_token is None
    assert decoded[account_key(disk.upper() + "X")] == DiskAccount(until, 0)
    assert decoded[account_key(disk + "-new")] == DiskAccount(None, 0)
    assert decoded[account_key(disk)].is_new_incarnation(unique.upper()) is False  # Azure's IDs compare without case
    assert decoded[account_key(disk)].is_new_incarnation("another-unique-id") is True
    assert decoded[account_key(disk.upper() + "X")].is_new_incarnation(unique) is False  # nothing known to compare
    assert account_key(disk) == account_key(disk.upper())  # ARM IDs compare without case
    unreadable = ["abc=x/1", "def=12/y", "=12", "0123456789ab=12~xyz", "0123456789ab=12~0123456789", "abc=1!xyz"]
    assert decode_accounts(unreadable) == {}  # unreadable: that disk starts afresh
    assert encode_accounts([entries[3]]) is None


def test_the_crd_takes_the_accounts_and_refuses_anything_else() -> None:
    body = manifest(**SELECTOR)
    items = [
        "0123456789ab=1772445599/3~89abcdef!01234567",
        "ba9876543210=1772445599",
        "ba9876543211=0~01234567",
        "ba9876543212=1772445599!89abcdef",
    ]
    body["status"] = {"diskAccounts": items}
    assert schema_errors(body) == []
    wrongs = ("0123456789ab=yesterday", "0123456789ab:1772445599", "xyz=1772445599", "0123456789ab=1~89ABCDEF")
    for wrong in (*wrongs, "0123456789ab=1!0123~89abcdef"):
        body["status"] = {"diskAccounts": [wrong]}
        assert schema_errors(body), wrong


async def test_a_missed_slot_of_a_disk_left_out_is_counted_once_across_reconciles_and_restarts() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store = ClaimStore()
    disks = []
    for i in range(MAX_DISK_ENTRIES + 5):
        disk = cloud.add_disk(SUB, NODE_RG, f"pvc-{i:03}")
        bound(store, f"data-{i:03}", disk.id, labels={"app": "pg"})
        disks.append(disk)
    the_policy = policy(**SELECTOR)
    status = SnapshotPolicyStatus()
    status = fold(status, await Reconciler(cloud, clock).reconcile(the_policy, status, claims=store))
    assert status.disks_not_shown == 5 and status.missed_slots == 0
    last = disks[-1]  # every disk Ready with nothing missed: data-054 sorts last and is left out
    assert "data-054" not in {e.claim for e in status.disks or []}

    # The operator is down from 09:00:30 to 11:00:30: every disk misses its 10:00 slot (past its 1h deadline).
    clock.advance(timedelta(hours=2))
    for hour in range(4):
        reconciler = Reconciler(cloud, clock)  # a restart each time: only the status is remembered
        status = fold(status, await reconciler.reconcile(the_policy, status, claims=store))
        assert status.missed_slots == MAX_DISK_ENTRIES + 5, hour  # each disk's one missed slot, once
        shown = {e.claim: e for e in status.disks or []}
        account = decode_accounts(status.disk_accounts).get(account_key(last.id))
        missed_of_last = shown["data-054"].missed if "data-054" in shown else account.missed if account else None
        assert missed_of_last == 1, hour
        assert status.disks_not_shown == 5 and len(status.disk_accounts or {}) == 5
        clock.advance(timedelta(hours=1))
    assert all(any(s.source_resource_id == d.id for s in cloud.snapshots) for d in disks)
    assert set(decode_accounts(status.disk_accounts)) == {account_key(d.id) for d in disks[MAX_DISK_ENTRIES:]}
