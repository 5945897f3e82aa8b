"""The operator-memory benchmark at a small size, so it keeps working: what it counts, no memory figure asserted."""

from __future__ import annotations

import pytest
from bench.operator_rss import AZSNAP, run

pytestmark = pytest.mark.e2e

POLICIES = 3


@pytest.mark.skipif(not AZSNAP.exists(), reason="the azsnap console script is not installed next to python")
async def test_three_policies_each_get_a_snapshot_and_the_operator_process_is_measured() -> None:
    figures = await run(POLICIES, settle=1.0, ready_within=300.0)
    assert figures["policies"] == POLICIES
    assert figures["snapshots"] == POLICIES
    # The RSS is the child process's own: a Python process with kopf and the Azure SDK loaded is not tiny.
    assert figures["operator_rss_start_mb"] > 20
    assert figures["operator_rss_peak_mb"] >= figures["operator_rss_settled_mb"] > 0
    assert figures["operator_rss_peak_mb"] >= figures["operator_rss_start_mb"]
