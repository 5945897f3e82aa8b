"""Token buckets on the emulated clock, and fault rules drawn from a seeded RNG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from azsnap.clock import ManualClock
from azsnap.emulator import BucketSize, FaultRule
from azsnap.emulator.config import DEFAULT_BUCKETS
from azsnap.emulator.faults import FaultInjector
from azsnap.emulator.throttling import Throttler

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def test_create_headers_report_both_hydrate_buckets_and_arm_writes() -> None:
    throttler = Throttler(ManualClock(T0), DEFAULT_BUCKETS)
    headers, refused = throttler.charge("snapshots.put", "PUT", "sub", "westeurope")
    assert refused is None
    assert headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;239,Microsoft.Compute/HighCostSnapshotCreateHydrate30Min;1919"
    )
    assert headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"


def test_buckets_are_per_subscription_and_region_and_refill_with_the_clock() -> None:
    clock = ManualClock(T0)
    throttler = Throttler(clock, {"Microsoft.Compute/HighCostGet3Min": BucketSize(3, timedelta(minutes=3))})
    for _ in range(3):
        assert throttler.charge("snapshots.list", "GET", "sub", "westeurope")[1] is None
    _, refused = throttler.charge("snapshots.list", "GET", "sub", "westeurope")
    assert refused is not None and refused.policy == "Microsoft.Compute/HighCostGet3Min" and refused.retry_after_s == 60
    assert throttler.charge("snapshots.list", "GET", "sub", "northeurope")[1] is None
    assert throttler.charge("snapshots.list", "GET", "other", "westeurope")[1] is None
    clock.advance(timedelta(seconds=59))
    assert throttler.charge("snapshots.list", "GET", "sub", "westeurope")[1] is not None
    clock.advance(timedelta(seconds=1))
    headers, refused = throttler.charge("snapshots.list", "GET", "sub", "westeurope")
    assert refused is None and headers["x-ms-ratelimit-remaining-resource"] == "Microsoft.Compute/HighCostGet3Min;0"


def test_a_refused_call_takes_no_token_from_the_other_buckets() -> None:
    sizes = {
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min": BucketSize(1, timedelta(minutes=3)),
        "Microsoft.Compute/HighCostSnapshotCreateHydrate30Min": BucketSize(10, timedelta(minutes=30)),
    }
    throttler = Throttler(ManualClock(T0), sizes)
    throttler.charge("snapshots.put", "PUT", "s", "l")
    headers, refused = throttler.charge("snapshots.put", "PUT", "s", "l")
    assert refused is not None
    assert headers["x-ms-ratelimit-remaining-resource"].endswith("HighCostSnapshotCreateHydrate30Min;9")


def test_switched_off_never_refuses_but_still_counts() -> None:
    throttler = Throttler(
        ManualClock(T0), {"Microsoft.Compute/LowCostGet3Min": BucketSize(1, timedelta(minutes=3))}, enabled=False
    )
    for _ in range(3):
        headers, refused = throttler.charge("disks.get", "GET", "s", "l")
        assert refused is None
    assert headers["x-ms-ratelimit-remaining-resource"] == "Microsoft.Compute/LowCostGet3Min;0"


def test_fault_rules_match_count_and_draw_reproducibly() -> None:
    injector = FaultInjector(seed=7)
    injector.add(FaultRule(operation="snapshots.get", kind="latency", latency_s=0.5))
    injector.add(FaultRule(operation="snapshots.get", kind="500", count=2))
    injector.add(FaultRule(operation="snapshots.get", kind="503"))
    assert [r.kind for r in injector.draw("snapshots.get")] == ["latency", "500"]
    assert [r.kind for r in injector.draw("snapshots.list")] == []
    assert [r.kind for r in injector.draw("snapshots.get")] == ["latency", "500"]
    assert [r.kind for r in injector.draw("snapshots.get")] == ["latency", "503"]

    def pattern(seed: int) -> list[bool]:
        chance = FaultInjector(seed)
        chance.add(FaultRule(kind="429", probability=0.5))
        return [bool(chance.draw("disks.get")) for _ in range(40)]

    assert pattern(1) == pattern(1)
    assert 5 < sum(pattern(1)) < 35


def test_lro_faults_only_apply_to_writes() -> None:
    injector = FaultInjector()
    injector.add(FaultRule(kind="failed_after_limit"))
    injector.add(FaultRule(kind="lro_failed"))
    assert injector.draw("snapshots.get") == []
    assert [r.kind for r in injector.draw("snapshots.delete")] == ["lro_failed"]
    assert [r.kind for r in injector.draw("snapshots.put")] == ["failed_after_limit"]


@pytest.mark.parametrize("kwargs", [{"kind": "explode"}, {"operation": "vms.get"}, {"probability": 2.0}, {"count": -1}])
def test_bad_fault_rules_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        FaultRule(**kwargs)  # type: ignore[arg-type]
