"""The copy metrics: per policy and target region, from status.copies, gone with the target or the policy."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from azsnap.metrics import Metrics


def copy_samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "cop" in s.name
    }


ENTRY = {
    "region": "northeurope",
    "copiesRunning": 1,
    "copiesMissed": 2,
    "newestCopiedSlot": "2026-03-02T10:00:00Z",
    "lagP50Seconds": 600,
    "lagMaxSeconds": 900,
}


def test_a_target_gives_its_series_and_loses_them_when_it_goes() -> None:
    metrics = Metrics()
    metrics.copy_state("prod", "db", [ENTRY])
    got = copy_samples(metrics)
    where = (("namespace", "prod"), ("policy", "db"), ("region", "northeurope"))
    assert got[("azsnap_copies_running", where)] == 1.0
    assert got[("azsnap_copies_missed", where)] == 2.0
    assert got[("azsnap_copy_newest_restore_point_timestamp_seconds", where)] == 1772445600.0
    assert got[("azsnap_copy_lag_seconds", tuple(sorted((*where, ("quantile", "0.5")))))] == 600.0
    assert got[("azsnap_copy_lag_seconds", tuple(sorted((*where, ("quantile", "1")))))] == 900.0
    metrics.copy_state("prod", "db", [{**ENTRY, "region": "westus2"}])
    assert not [k for k in copy_samples(metrics) if ("region", "northeurope") in k[1]]
    metrics.forget_policy("prod", "db")
    assert copy_samples(metrics) == {}


def test_a_policy_without_copies_has_no_copy_series() -> None:
    metrics = Metrics()
    metrics.copy_state("prod", "db", [])
    metrics.policy_state("prod", "db", held=1, last_success=1.0, ready=True)
    assert copy_samples(metrics) == {}
