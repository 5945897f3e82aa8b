"""The footprint benchmark at a handful of policies, so it keeps working: counts, never times or memory figures."""

from __future__ import annotations

import pytest
from bench.footprint import run
from bench.operator_rss import AZSNAP

pytestmark = pytest.mark.e2e

POLICIES = 4


@pytest.mark.skipif(not AZSNAP.exists(), reason="the azsnap console script is not installed next to python")
async def test_a_handful_of_policies_start_quietly_and_each_takes_its_round_snapshot() -> None:
    figures = await run(POLICIES, snapshots_per_disk=2, top_of_hour=True, idle_s=3.0, within=600.0)
    assert figures["policies"] == POLICIES
    # Each policy: its finalizer, its status (kopf's bookkeeping in it), one event for its first snapshot.
    assert figures["k8s_writes_at_start"] == {
        "PATCH snapshotpolicies": POLICIES,
        "PATCH snapshotpolicies/status": POLICIES,
        "POST events": POLICIES,
    }
    assert figures["k8s_writes_per_policy_at_start"] == 3
    assert figures["azure_calls_per_policy_at_start"] > 0
    # At INFO: the start-up lines and one line per policy for its first snapshot; nothing while idle.
    assert POLICIES <= figures["log_lines_at_start"] <= POLICIES + 10
    assert figures["log_lines_per_policy_hour"] == 0
    assert figures["metrics_series"] > POLICIES
    assert figures["peak_rss_mib"] >= figures["steady_rss_mib"] > 0
    assert "round_seconds" in figures
