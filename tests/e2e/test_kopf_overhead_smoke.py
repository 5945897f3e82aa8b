"""The kopf-overhead benchmark at a small size, so it keeps working: counts only, no timing figures asserted."""

from __future__ import annotations

import pytest
from bench.kopf_overhead import run
from bench.kube_probe import is_current, verb_of

from azsnap.domain.models import PLURAL

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

POLICIES = 5


async def test_five_policies_for_one_hour_then_a_restart_bring_every_status_back_current() -> None:
    figures = await run(POLICIES, 1)

    assert figures["policies"] == POLICIES
    assert figures["steady_hours"] == 1.0
    # Slots 00:00 and 01:00 of every policy, none missed, within Azure's limits and budget.
    assert figures["slots_taken"] == 2 * POLICIES
    assert figures["snapshots_held"] == 2 * POLICIES
    assert figures["missed_slots"] == 0
    assert figures["throttled_429"] == 0
    assert figures["violations"] == 0
    # In steady state, one status write per policy per slot, and the one shared list of the resource group.
    assert figures["kube_requests"][f"PATCH {PLURAL}/status"] == POLICIES
    assert figures["azure_calls"]["snapshots.put"] == POLICIES
    assert figures["azure_calls"]["snapshots.list"] == 1
    # The restart: every status written again and current, the group listed once, each disk read once.
    assert figures["restart_all_current"] is True
    assert figures["restart_to_current_emulated_s"] is not None
    assert figures["list_calls_after_restart"] == 1
    assert figures["restart_azure_calls"].get("disks.get") == POLICIES
    assert "snapshots.put" not in figures["settled_azure_calls"]
    assert "snapshots.delete" not in figures["settled_azure_calls"]
    assert figures["restart_status_writes"] >= POLICIES
    assert figures["cpu_s"] > 0
    assert figures["cpu_s_per_policy_hour"] > 0


def test_requests_are_labelled_by_verb_and_resource() -> None:
    base = "/apis/azsnap.io/v1alpha1"
    assert verb_of("GET", f"{base}/namespaces/default/{PLURAL}", {"watch": "true"}) == f"WATCH {PLURAL}"
    assert verb_of("GET", f"{base}/namespaces/default/{PLURAL}", {}) == f"LIST {PLURAL}"
    assert verb_of("PATCH", f"{base}/namespaces/default/{PLURAL}/p-1/status", {}) == f"PATCH {PLURAL}/status"
    assert verb_of("PATCH", f"{base}/namespaces/default/{PLURAL}/p-1", {}) == f"PATCH {PLURAL}"
    assert verb_of("POST", "/api/v1/namespaces/default/events", {}) == "POST events"
    assert verb_of("GET", "/api/v1/namespaces", {}) == "LIST namespaces"
    assert verb_of("GET", "/apis", {}) == "GET discovery"
    assert verb_of("GET", "/version", {}) == "GET discovery"


def test_current_means_the_observed_generation_and_ready() -> None:
    ready = {"type": "Ready", "status": "True"}
    assert is_current({"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": [ready]}})
    assert not is_current({"metadata": {"generation": 3}, "status": {"observedGeneration": 2, "conditions": [ready]}})
    not_ready = {**ready, "status": "False"}
    assert not is_current(
        {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, "conditions": [not_ready]}}
    )
    assert not is_current({"metadata": {"generation": 1}})
