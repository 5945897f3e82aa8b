"""Copies of the claim disks `status.disks` leaves out, through the real SDK against the emulator (the list bound
lowered to one disk, so two of three are left out): their missed copies are counted once and their lag samples
kept, from their watermarks in `status.copyAccounts`, and `status.copies` sums every disk."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.e2e.test_copies_azure import NOW, TARGET, make_config, make_rig
from tests.e2e.test_copies_claims import DISKS, claims
from tests.support.status import fold_status as fold

from azsnap.domain import targets
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.emulator import FaultRule
from azsnap.reconciler import Reconciler

pytestmark = pytest.mark.e2e


async def test_the_disks_left_out_keep_their_copy_accounting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "MAX_DISK_ENTRIES", 1)
    spec = {
        "volumeClaimSelector": {"matchLabels": {"app": "pg"}},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 1},
        "copies": [{**TARGET, "retention": {"keepLast": 2}, "copyDeadline": "40m"}],
    }
    policy = Policy(PolicyRef("shop", "pg", "uid-pg", 1), SnapshotPolicySpec.model_validate(spec))
    async with make_rig(make_config(), DISKS) as rig:
        rig.emulator.add_fault(FaultRule(operation="snapshots.put", kind="copy_failed"))
        store, status = claims(), SnapshotPolicyStatus()
        reconciler = Reconciler(rig.cloud, rig.clock)

        async def until(end_minutes: int) -> None:
            nonlocal status
            end = NOW + timedelta(minutes=end_minutes)
            while rig.clock.now() < end:
                report = await reconciler.reconcile(policy, status, claims=store)
                status = fold(status, report)
                rig.clock.set(min(report.next_time, end))

        await until(50)  # 09:00's copies fail three times each and are counted missed
        rig.emulator.clear_faults()
        await until(3 * 60 + 30)  # 10:00, 11:00 and 12:00 are copied
        (summed,) = status.copies or []
        assert status.disks_not_shown == DISKS - 1 and len(status.copy_accounts or []) == DISKS - 1
        assert summed["copiesMissed"] == DISKS  # one per disk, the two left out included, each once
        listed = sum(int(c.get("copiesMissed") or 0) for e in status.disks or [] for c in e.copies or [])
        assert summed.get("copiesMissedNotShown", 0) + listed == DISKS
        assert len(summed["lagSecondsNotShown"]) == 3 * (DISKS - 1)  # 10:00 … 12:00 of each disk left out
        assert len(summed["recentLagSeconds"]) == 3 * DISKS
        assert rig.emulator.violations == []
