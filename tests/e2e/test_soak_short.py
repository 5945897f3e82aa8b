"""The soak, short: three emulated days of six disks under the seeded fault schedule, every invariant held."""

from __future__ import annotations

import pytest
from bench.soak import run_soak

pytestmark = pytest.mark.e2e


def test_three_days_under_faults_lose_nothing_and_delete_nothing_wrong() -> None:
    figures = run_soak(days=3, disks=6, seed=11, rgs=2)

    assert figures["duplicate_slots"] == 0
    assert figures["wrong_deletes"] == 0
    assert figures["limit_breaches"] == 0
    assert figures["unhandled_exceptions"] == 0
    assert figures["final_set_matches"] is True
    assert figures["slots_missed_unreported"] == 0
    assert figures["slots_missed_overreported"] == 0
    assert figures["slots_missed_while_up"] == 0
    assert figures["slots_due"] == figures["slots_taken"] + figures["slots_missed"]
    assert figures["slots_failed"] <= figures["slots_missed"]
    assert figures["slots_taken"] >= 0.9 * figures["slots_due"]

    # the schedule really did throw everything at it
    faults = figures["faults"]
    for kind in ("429", "500", "503", "drop", "lro_failed", "failed_after_limit", "latency"):
        assert faults.get(f"faults_{kind}", 0) > 0, f"no {kind} fault was injected"
    assert figures["restarts_mid_create"] >= 1 and figures["restarts_mid_delete"] >= 1
    assert figures["restarts"] >= 3
    assert figures["disks_recreated"] >= 1 and figures["disks_gone_for_a_while"] == 1
    assert figures["policies_deleted"] >= 1
    assert figures["holds"] >= 1 and figures["foreign_seeded"] >= 1
    assert figures["deletes"] > 0
