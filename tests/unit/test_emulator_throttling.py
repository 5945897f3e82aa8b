"""Token buckets on the emulated clock, and fault rules drawn from a seeded RNG."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from azsnap.clock import ManualClock
from azsnap.emulator import BucketSize, FaultRule
from azsnap.emulator.config import DEFAULT_BUCKETS, scaled_buckets
from azsnap.emulator.faults import FaultInjector
from azsnap.emulator.throttling import Throttler, throttled_error

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


# -- fixed windows, Azure's 429 shapes, polls charged, one header line per policy


def _window_throttler(clock: ManualClock, **kwargs: object) -> Throttler:
    sizes = {
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min": BucketSize(3, timedelta(minutes=3)),
        "Microsoft.Compute/HighCostSnapshotCreateHydrate30Min": BucketSize(5, timedelta(minutes=30)),
    }
    return Throttler(clock, sizes, mode="window", **kwargs)  # type: ignore[arg-type]


def test_a_fixed_window_refuses_until_its_end_then_gives_the_whole_budget_back() -> None:
    clock = ManualClock(T0 + timedelta(seconds=30))
    throttler = _window_throttler(clock)
    for _ in range(3):
        assert throttler.charge("snapshots.put", "PUT", "s", "l")[1] is None
    clock.advance(timedelta(seconds=100))  # a token bucket would have refilled more than one call by now
    headers, refused = throttler.charge("snapshots.put", "PUT", "s", "l")
    assert refused is not None and refused.policy.endswith("Hydrate3Min")
    assert refused.retry_after_s == 50  # the 3-minute window began at T0 and ends at T0 + 180 s
    assert refused.start == T0 and refused.end == T0 + timedelta(minutes=3)
    assert refused.allowed == 3 and refused.measured == 4
    assert "HighCostSnapshotCreateHydrate3Min;0" in headers["x-ms-ratelimit-remaining-resource"]
    clock.advance(timedelta(seconds=50))
    assert throttler.charge("snapshots.put", "PUT", "s", "l")[1] is None
    assert throttler.charge("snapshots.put", "PUT", "s", "l")[1] is None
    _, refused = throttler.charge("snapshots.put", "PUT", "s", "l")  # the 30-minute window is spent: 5 calls
    assert refused is not None and refused.policy.endswith("Hydrate30Min")
    assert refused.retry_after_s == 1200  # Azure's longest Retry-After, though the window runs longer


def test_a_fixed_retry_after_is_sent_whatever_the_window() -> None:
    throttler = _window_throttler(ManualClock(T0), retry_after_s=1200)
    for _ in range(3):
        throttler.charge("snapshots.put", "PUT", "s", "l")
    _, refused = throttler.charge("snapshots.put", "PUT", "s", "l")
    assert refused is not None and refused.retry_after_s == 1200
    error = throttled_error(refused)
    assert error.status == 429 and error.code == "OperationNotAllowed" and error.headers == {"Retry-After": "1200"}
    assert error.details is not None
    detail = json.loads(error.details[0]["message"])
    assert detail == {
        "operationGroup": "HighCostSnapshotCreateHydrate3Min",
        "startTime": "2026-03-02T00:00:00+00:00",
        "endTime": "2026-03-02T00:03:00+00:00",
        "allowedRequestCount": 3,
        "measuredRequestCount": 4,
    }


def test_the_front_door_shape_has_no_retry_after_and_no_rate_limit_headers() -> None:
    clock = ManualClock(T0)
    throttler = _window_throttler(clock, shape="subscription")
    for _ in range(3):
        throttler.charge("snapshots.put", "PUT", "sub-1", "l")
    headers, refused = throttler.charge("snapshots.put", "PUT", "sub-1", "l")
    assert refused is not None and not headers
    error = throttled_error(refused)
    assert error.code == "SubscriptionRequestsThrottled" and error.headers == {} and error.details is None
    assert error.message == (
        "Number of requests for subscription 'sub-1' and operation "
        "'PUT/SUBSCRIPTIONS/RESOURCEGROUPS/PROVIDERS/MICROSOFT.COMPUTE/SNAPSHOTS/' exceeded the backend storage "
        "limit. Please try again after '180' seconds."
    )


def test_operation_polls_are_charged_to_get_operation() -> None:
    throttler = Throttler(ManualClock(T0), DEFAULT_BUCKETS)
    headers, refused = throttler.charge("operations.get", "GET", "sub", "westeurope")
    assert refused is None
    assert headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/GetOperation3Min;49999,Microsoft.Compute/GetOperation30Min;399999"
    )


def test_each_policy_can_come_in_its_own_header_line() -> None:
    throttler = Throttler(ManualClock(T0), DEFAULT_BUCKETS, header_lines=True)
    headers, _ = throttler.charge("snapshots.list", "GET", "sub", "westeurope")
    assert headers.getall("x-ms-ratelimit-remaining-resource") == [
        "Microsoft.Compute/HighCostGet3Min;159",
        "Microsoft.Compute/HighCostGet30Min;799",
    ]


def test_budgets_scale_per_policy_and_never_below_one_call() -> None:
    scaled = scaled_buckets(0.25)
    assert scaled["Microsoft.Compute/HighCostSnapshotCreateHydrate3Min"].capacity == 60
    assert scaled["subscription-writes"] == DEFAULT_BUCKETS["subscription-writes"]  # ARM's are the same everywhere
    assert scaled_buckets(1e-9)["Microsoft.Compute/HighCostGet3Min"].capacity == 1
    with pytest.raises(ValueError):
        scaled_buckets(0)
