"""`deletionPolicy: Delete` with copy targets through the real SDK against the emulator, which ends a copy whose
source is deleted under it (CopySourceNotFound, recorded as a violation): the copies go with the snapshots, a
running copy first ends and keeps its source until then."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.e2e.test_copies_azure import NOW, SUB, make_config, make_policy, make_rig, run

from azsnap.reconciler import Reconciler

pytestmark = pytest.mark.e2e


async def test_deleting_a_policy_deletes_its_copies_once_none_runs() -> None:
    async with make_rig(make_config(), 1) as rig:
        policy = make_policy(0, deletionPolicy="Delete", retention={"keepLast": 3})
        reconciler = Reconciler(rig.cloud, rig.clock)
        await run(reconciler, [policy], rig, NOW + timedelta(hours=2, minutes=2))
        assert len(rig.running()) == 1 and len(rig.copies()) == 3  # keepLast 2 complete, and 11:00's running

        first = await reconciler.finalize(policy)
        assert not first.done and first.remaining >= 2  # the running copy, and its source
        assert [c["name"] for c in rig.copies()] == [c["name"] for c in rig.running()]
        assert len(rig.emulator.snapshots(SUB, "rg-data")) == 1  # only the running copy's source is left
        assert rig.emulator.violations == []

        rig.clock.advance(timedelta(minutes=10))
        second = await reconciler.finalize(policy)
        assert second.done, second.message
        assert rig.copies() == [] and rig.emulator.snapshots(SUB, "rg-data") == []
        assert rig.emulator.violations == []  # never a source deleted while its copy ran
