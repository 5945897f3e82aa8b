"""OperationTimes: the typical duration of Azure's recent long-running operations, from their status answers."""

from __future__ import annotations

from azsnap.cloud.polling import MAX_FIRST_WAIT, OperationTimes


def _status(start: str, end: str) -> dict[str, str]:
    return {"startTime": start, "endTime": end, "status": "Succeeded", "name": "op"}


def test_nothing_known_before_the_first_finished_operation() -> None:
    assert OperationTimes().typical() is None


def test_the_typical_duration_is_the_median_of_the_latest() -> None:
    times = OperationTimes(keep=3)
    # Azure writes seven fractional digits (recorded answers); the slowest of three is not the typical one.
    times.record(_status("2023-11-06T08:58:19.0000000+00:00", "2023-11-06T08:58:20.5000000+00:00"))
    times.record(_status("2023-11-06T08:58:19+00:00", "2023-11-06T08:58:29+00:00"))
    times.record(_status("2023-11-06T08:58:19+00:00", "2023-11-06T08:58:21+00:00"))
    assert times.typical() == 2.0
    # Only the latest `keep` count: two slow ones push the fast ones out.
    times.record(_status("2023-11-06T08:58:19+00:00", "2023-11-06T08:58:29+00:00"))
    times.record(_status("2023-11-06T08:58:19+00:00", "2023-11-06T08:58:29+00:00"))
    assert times.typical() == 10.0


def test_a_very_slow_kind_waits_at_most_the_cap() -> None:
    times = OperationTimes()
    times.record(_status("2023-11-06T08:00:00+00:00", "2023-11-06T09:00:00+00:00"))
    assert times.typical() == MAX_FIRST_WAIT


def test_answers_without_both_times_teach_nothing() -> None:
    times = OperationTimes()
    times.record({"startTime": "2023-11-06T08:58:19+00:00", "status": "Succeeded"})  # no endTime
    times.record({"startTime": "yesterday", "endTime": "today"})
    times.record({"startTime": 1, "endTime": 2})
    times.record(None)
    times.record(["not", "a", "status"])
    times.record(_status("2023-11-06T08:58:29+00:00", "2023-11-06T08:58:19+00:00"))  # ends before it starts
    assert times.typical() is None
