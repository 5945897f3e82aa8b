"""`azsnap snapshots` beside cross-region copies: a source a running copy needs is shown held, with the reason, where
the policy's own retention alone would delete it (the copy planner's protection, read as the operator reads it)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.e2e.test_copies_azure import NOW, SUB, Rig, make_config, make_policy, make_rig, run

from azsnap.domain.observed import Limits
from azsnap.reconciler import Reconciler
from azsnap.tools.snapshots import gather

pytestmark = pytest.mark.e2e


async def test_a_source_a_running_copy_needs_is_held() -> None:
    async with make_rig(make_config(), 1) as rig:
        await _check(rig)


async def _check(rig: Rig) -> None:
    policy = make_policy(0)  # keepLast 1 at the source, copies to northeurope
    statuses = await run(Reconciler(rig.cloud, rig.clock), [policy], rig, NOW + timedelta(hours=2, minutes=3))
    assert len(rig.running()) == 1  # the 11:00 snapshot's copy runs; 10:00's is done, the base of the next
    status = statuses[policy.ref.uid].model_dump(by_alias=True, exclude_none=True, mode="json")
    obj = {
        "metadata": {"namespace": policy.ref.namespace, "name": policy.ref.name, "uid": policy.ref.uid},
        "spec": policy.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "status": status,
    }
    (row,) = await gather([obj], rig.cloud, rig.clock, Limits())
    assert row.problem is None
    by_slot = {e.slot.strftime("%H:%M") if e.slot else "": e for e in row.snapshots}
    assert set(by_slot) == {"10:00", "11:00"}  # 09:00 went: retention deleted it once its copy was done
    base = by_slot["10:00"]  # keepLast 1 alone would delete it
    assert base.rules == ("copySource",) and base.holds == ("copySource",) and base.deleting is None
    assert base.notes == ("needed by the copy to northeurope",)
    assert by_slot["11:00"].holds == ("newest", "minKeep", "copySource")
    assert len(rig.emulator.snapshots(SUB, "rg-data")) == len(row.snapshots)
