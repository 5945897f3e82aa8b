"""Copy accounting of the claim disks `status.disks` leaves out: each keeps a watermark per target in
`status.copyAccounts`, so its missed copies are counted once and its lag samples kept, in `status.copies` (bounded)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from tests.support.crd import schema_errors
from tests.support.status import fold_status as fold
from tests.unit.test_hidden_disks import COUNT, SELECTOR, START, _claims
from tests.unit.test_targets import policy

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.copies import MAX_LAG_SAMPLES, target_key, target_tag
from azsnap.domain.copy_accounts import (
    MAX_COPY_ACCOUNT_LENGTH,
    decode_copy_accounts,
    encode_copy_accounts,
    restored_copies,
)
from azsnap.domain.disk_accounts import account_key
from azsnap.domain.models import CopyTarget
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.targets import MAX_DISK_ENTRIES, DiskEntry
from azsnap.reconciler import Reconciler
from azsnap.reconciler.claims import ClaimStore

SUB = "00000000-0000-0000-0000-000000000000"
TARGET = {"region": "northeurope", "resourceGroup": "rg-dr"}
DISK = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d"


def test_a_watermark_per_target_round_trips_rounded_up_to_the_second() -> None:
    targets = [CopyTarget.model_validate(t) for t in (TARGET, {"region": "westus", "resourceGroup": "rg-us"})]
    copies = [
        {"region": "northeurope", "resourceGroup": "rg-dr", "subscriptionId": SUB, "accountedUntil": "2026-03-02T09:00:30.4+00:00"},
        {"region": "westus", "resourceGroup": "rg-us", "subscriptionId": SUB, "copiesMissed": 2},
    ]  # fmt: skip
    (item,) = encode_copy_accounts([DiskEntry(claim="c", disk=DISK, state="Ready", copies=copies)]) or []
    tag = target_tag(target_key(targets[0], SUB))
    assert item == f"{account_key(DISK)}={tag}:{int(datetime.fromisoformat('2026-03-02T09:00:31+00:00').timestamp())}"
    (restored,) = restored_copies(targets, DISK, decode_copy_accounts([item])) or []
    assert restored["accountedUntil"] == "2026-03-02T09:00:31+00:00" and restored["region"] == "northeurope"
    assert restored_copies(targets, DISK.replace("/d", "/other"), decode_copy_accounts([item])) is None
    assert decode_copy_accounts(["nonsense", f"{account_key(DISK)}=zz:1x"]) == {}
    longest = f"{'a' * 12}=" + ",".join(f"{'b' * 4}:{9_999_999_999}" for _ in range(3))
    assert len(longest) == MAX_COPY_ACCOUNT_LENGTH == 60 and len(json.dumps(longest)) + 1 <= 64


async def _rounds(
    reconciler: Reconciler, store: ClaimStore, status: SnapshotPolicyStatus, clock: ManualClock, end: datetime
) -> SnapshotPolicyStatus:
    the_policy = policy(**SELECTOR, copies=[TARGET])
    while clock.now() < end:
        report = await reconciler.reconcile(the_policy, status, claims=store)
        status = fold(status, report)
        clock.set(min(report.next_time, end))
    return status


async def test_the_disks_left_out_count_their_missed_copies_once_and_keep_their_lags() -> None:
    clock = ManualClock(START)
    cloud = MemoryCloud(clock)
    store, _ = _claims(cloud)
    reconciler = Reconciler(cloud, clock)
    cloud.failing_copies = 3 * COUNT  # every disk's first snapshot: three attempts fail, then it is missed
    status = await _rounds(reconciler, store, SnapshotPolicyStatus(), clock, START + timedelta(hours=2, minutes=30))
    assert cloud.failing_copies == 0 and status.disks_not_shown == COUNT - MAX_DISK_ENTRIES
    (summed,) = status.copies or []
    assert summed["copiesMissed"] == COUNT  # 55: the five disks left out count too
    assert (
        summed["copiesMissedNotShown"]
        + sum(int(c.get("copiesMissed") or 0) for e in status.disks or [] for c in e.copies or [])
        == COUNT
    )
    assert len(status.copy_accounts or []) == COUNT - MAX_DISK_ENTRIES  # a watermark for each disk left out

    status = await _rounds(reconciler, store, status, clock, START + timedelta(hours=6, minutes=30))
    (summed,) = status.copies or []
    assert summed["copiesMissed"] == COUNT  # counted once, however many reconciles since
    hidden_lags = summed.get("lagSecondsNotShown") or []
    # The disks left out completed the copies of 10:00 … 15:00: their lag samples are kept (at most the last 48),
    # each 10 minutes (the in-memory cloud's copy time; a running copy is looked at when its pace says it is done).
    assert len(hidden_lags) == min(MAX_LAG_SAMPLES, 6 * (COUNT - MAX_DISK_ENTRIES)) == 30
    assert set(hidden_lags) == {600} and len(summed["recentLagSeconds"]) == MAX_LAG_SAMPLES
    # Bounded: a disk left out adds at most one 67-byte item to the status, its watermark.
    assert all(len(json.dumps(item)) + 1 <= 67 for item in status.copy_accounts or [])
    the_policy = policy(**SELECTOR, copies=[TARGET])
    doc = {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "pg", "namespace": "shop"},
        "spec": the_policy.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "status": status.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }
    assert schema_errors(doc) == []  # the CRD accepts copyAccounts and the per-target sums of the disks left out
