from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azsnap.domain import schedule
from azsnap.domain.models import ScheduleSpec
from azsnap.domain.schedule import (
    next_slot,
    previous_slot,
    slot_offset,
    slots_between,
    to_instant,
    validate_schedule,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def iso(slots: list[datetime]) -> list[str]:
    return [s.strftime("%Y-%m-%dT%H:%MZ") for s in slots]


# (schedule, zone, window start, window end, expected slots in UTC)
DST_CASES = [
    pytest.param(
        {"cron": "30 2 * * *"},
        "Europe/Berlin",
        utc(2026, 3, 28),
        utc(2026, 3, 31),
        # 02:30 does not exist on 29 March: it fires at 03:00 CEST, the first instant after the gap
        ["2026-03-28T01:30Z", "2026-03-29T01:00Z", "2026-03-30T00:30Z"],
        id="berlin-cron-spring-gap",
    ),
    pytest.param(
        {"cron": "30 2 * * *"},
        "Europe/Berlin",
        utc(2026, 10, 24),
        utc(2026, 10, 27),
        # 02:30 happens twice on 25 October: it fires once, at the first (CEST) occurrence
        ["2026-10-24T00:30Z", "2026-10-25T00:30Z", "2026-10-26T01:30Z"],
        id="berlin-cron-autumn-repeat",
    ),
    pytest.param(
        {"cron": "0 * * * *"},
        "Europe/Berlin",
        utc(2026, 10, 24, 22),
        utc(2026, 10, 25, 3),
        # the repeated 02:00 fires once (cronsim alone would fire it twice for a `*` hour field)
        ["2026-10-24T23:00Z", "2026-10-25T00:00Z", "2026-10-25T02:00Z", "2026-10-25T03:00Z"],
        id="berlin-hourly-autumn-repeat",
    ),
    pytest.param(
        {"cron": "0 * * * *"},
        "Europe/Berlin",
        utc(2026, 3, 28, 23),
        utc(2026, 3, 29, 3),
        # 02:00 local does not exist; it collapses into the first instant after the gap (03:00 CEST)
        ["2026-03-29T00:00Z", "2026-03-29T01:00Z", "2026-03-29T02:00Z", "2026-03-29T03:00Z"],
        id="berlin-hourly-spring-gap",
    ),
    pytest.param(
        {"every": "4h"},
        "Europe/Berlin",
        utc(2026, 3, 28, 22),
        utc(2026, 3, 29, 12),
        # aligned to local midnight: 00, 04, 08 local; 04:00 CEST is only 3 real hours after 00:00 CET
        ["2026-03-28T23:00Z", "2026-03-29T02:00Z", "2026-03-29T06:00Z", "2026-03-29T10:00Z"],
        id="berlin-every-4h-spring",
    ),
    pytest.param(
        {"cron": "30 2 * * *"},
        "America/New_York",
        utc(2026, 3, 7),
        utc(2026, 3, 10),
        # 8 March 02:30 EST does not exist: fires at 03:00 EDT = 07:00Z
        ["2026-03-07T07:30Z", "2026-03-08T07:00Z", "2026-03-09T06:30Z"],
        id="new-york-cron-spring-gap",
    ),
    pytest.param(
        {"cron": "30 1 * * *"},
        "America/New_York",
        utc(2026, 10, 31),
        utc(2026, 11, 3),
        # 1 November 01:30 happens twice: once, at 01:30 EDT = 05:30Z
        ["2026-10-31T05:30Z", "2026-11-01T05:30Z", "2026-11-02T06:30Z"],
        id="new-york-cron-autumn-repeat",
    ),
    pytest.param(
        {"every": "1h"},
        "America/New_York",
        utc(2026, 11, 1, 4),
        utc(2026, 11, 1, 8),
        # 01:00 local is repeated: only its first occurrence (05:00Z) fires, then 02:00 EST = 07:00Z
        ["2026-11-01T05:00Z", "2026-11-01T07:00Z", "2026-11-01T08:00Z"],
        id="new-york-every-1h-autumn",
    ),
    pytest.param(
        {"every": "2d"},
        "America/New_York",
        utc(2026, 3, 6),
        utc(2026, 3, 12),
        # whole days count from 1970-01-01 local (6 March is day 20518); midnight moves from 05:00Z to 04:00Z
        ["2026-03-06T05:00Z", "2026-03-08T05:00Z", "2026-03-10T04:00Z"],
        id="new-york-every-2d",
    ),
    pytest.param(
        {"cron": "15 2 * * *"},
        "Australia/Lord_Howe",
        utc(2026, 10, 2),
        utc(2026, 10, 5),
        # 4 October: clocks go from 02:00 (+10:30) to 02:30 (+11); 02:15 fires at 02:30 = 15:30Z on the 3rd
        ["2026-10-02T15:45Z", "2026-10-03T15:30Z", "2026-10-04T15:15Z"],
        id="lord-howe-cron-spring-gap",
    ),
    pytest.param(
        {"cron": "45 1 * * *"},
        "Australia/Lord_Howe",
        utc(2026, 4, 3),
        utc(2026, 4, 6),
        # 5 April: clocks go from 02:00 (+11) back to 01:30 (+10:30); 01:45 fires once, at +11 = 14:45Z
        ["2026-04-03T14:45Z", "2026-04-04T14:45Z", "2026-04-05T15:15Z"],
        id="lord-howe-cron-autumn-repeat",
    ),
    pytest.param(
        {"every": "1h"},
        "Australia/Lord_Howe",
        utc(2026, 10, 3, 13),
        utc(2026, 10, 3, 17),
        # 02:00 local does not exist: fires at 02:30 (+11) = 15:30Z, half an hour before the 03:00 slot
        ["2026-10-03T13:30Z", "2026-10-03T14:30Z", "2026-10-03T15:30Z", "2026-10-03T16:00Z", "2026-10-03T17:00Z"],
        id="lord-howe-every-1h-spring",
    ),
    pytest.param(
        {"every": "1h"},
        "Australia/Lord_Howe",
        utc(2026, 4, 4, 13),
        utc(2026, 4, 4, 17),
        # the half hour 01:30-02:00 repeats; 01:00 and 02:00 exist once each: 14:00Z, 15:30Z
        ["2026-04-04T14:00Z", "2026-04-04T15:30Z", "2026-04-04T16:30Z"],
        id="lord-howe-every-1h-autumn",
    ),
]


@pytest.mark.parametrize(("fields", "zone", "start", "end", "expected"), DST_CASES)
def test_slots_around_dst(
    fields: dict[str, str], zone: str, start: datetime, end: datetime, expected: list[str]
) -> None:
    spec = ScheduleSpec.model_validate({**fields, "timeZone": zone})
    assert iso(slots_between(spec, start, end)) == expected


@pytest.mark.parametrize(("fields", "zone", "start", "end", "expected"), DST_CASES)
def test_slots_are_strictly_increasing_and_previous_next_agree(
    fields: dict[str, str], zone: str, start: datetime, end: datetime, expected: list[str]
) -> None:
    spec = ScheduleSpec.model_validate({**fields, "timeZone": zone})
    slots = slots_between(spec, start, end)
    assert slots == sorted(set(slots))
    for slot in slots:
        assert previous_slot(spec, slot) == slot
        assert previous_slot(spec, slot + timedelta(seconds=59)) == slot
        assert next_slot(spec, slot - timedelta(seconds=1)) == slot
    for a, b in pairwise(slots):
        assert next_slot(spec, a) == b


def test_window_is_open_at_start_and_closed_at_end() -> None:
    spec = ScheduleSpec(cron="0 * * * *")
    assert iso(slots_between(spec, utc(2026, 1, 1, 0), utc(2026, 1, 1, 2))) == [
        "2026-01-01T01:00Z",
        "2026-01-01T02:00Z",
    ]
    assert slots_between(spec, utc(2026, 1, 1, 2), utc(2026, 1, 1, 1)) == []


@pytest.mark.parametrize(
    ("cron", "now", "previous", "following"),
    [
        ("@hourly", utc(2026, 5, 5, 10, 30), utc(2026, 5, 5, 10), utc(2026, 5, 5, 11)),
        ("@daily", utc(2026, 5, 5, 10, 30), utc(2026, 5, 5), utc(2026, 5, 6)),
        ("@weekly", utc(2026, 5, 5, 10, 30), utc(2026, 5, 3), utc(2026, 5, 10)),  # Sundays
        ("@monthly", utc(2026, 5, 5, 10, 30), utc(2026, 5, 1), utc(2026, 6, 1)),
        ("@yearly", utc(2026, 5, 5, 10, 30), utc(2026, 1, 1), utc(2027, 1, 1)),
        ("@annually", utc(2026, 5, 5, 10, 30), utc(2026, 1, 1), utc(2027, 1, 1)),
        ("0 0 29 2 *", utc(2026, 5, 5), None, utc(2028, 2, 29)),  # beyond the 400-day look-back
    ],
)
def test_macros_previous_and_next(cron: str, now: datetime, previous: datetime | None, following: datetime) -> None:
    spec = ScheduleSpec(cron=cron)
    assert previous_slot(spec, now) == previous
    assert next_slot(spec, now) == following


def test_every_whole_days_count_from_the_epoch_in_local_time() -> None:
    spec = ScheduleSpec.model_validate({"every": "7d", "timeZone": "Europe/Berlin"})
    slots = slots_between(spec, utc(2026, 1, 1), utc(2026, 2, 1))
    # 1970-01-01 was a Thursday: every 7 days from it is every Thursday, local midnight
    assert all(s.astimezone(spec.zone).weekday() == 3 for s in slots)
    assert all(s.astimezone(spec.zone).hour == 0 for s in slots)
    assert len(slots) == 4


def test_next_slot_raises_when_the_cron_does_not_fire_for_years() -> None:
    spec = ScheduleSpec(cron="0 0 * 2 SUN#5")  # a fifth Sunday in February: 2004, 2032, ...
    with pytest.raises(ValueError, match="five years"):
        next_slot(spec, utc(2026, 1, 1))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        slots_between(ScheduleSpec(cron="@daily"), datetime(2026, 1, 1), utc(2026, 1, 2))


def test_to_instant_of_a_wall_time_in_the_gap_is_the_end_of_the_gap() -> None:
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    assert to_instant(datetime(2026, 3, 29, 2, 0), berlin) == utc(2026, 3, 29, 1)
    assert to_instant(datetime(2026, 3, 29, 2, 59), berlin) == utc(2026, 3, 29, 1)
    assert to_instant(datetime(2026, 3, 29, 3, 0), berlin) == utc(2026, 3, 29, 1)
    assert to_instant(datetime(2026, 3, 29, 1, 59), berlin) == utc(2026, 3, 29, 0, 59)


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("* * * * *", "more than once an hour"),
        ("*/5 * * * *", "more than once an hour"),
        ("0,30 * * * *", "more than once an hour"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6 *", "never fires"),
        ("0 0 * 2 SUN#5", "every 28 years"),
        ("61 * * * *", "not a valid cron expression"),
        ("0 0 * *", "has 4 fields"),
        ("0 0 0 * * *", "has 6 fields"),
        ("@often", "unknown macro"),
        ("0 25 * * *", "not a valid cron expression"),
    ],
)
def test_validate_schedule_rejects_with_the_field_named(cron: str, fragment: str) -> None:
    problems = validate_schedule(ScheduleSpec(cron=cron))
    assert len(problems) == 1
    assert problems[0].startswith("spec.schedule.cron: ")
    assert fragment in problems[0]


@pytest.mark.parametrize(
    "cron",
    ["@hourly", "@daily", "0 * * * *", "15 */2 * * *", "0 0 29 2 *", "0 3 * * MON-FRI", "0 0 L * *", "0 0 * * 1#5"],
)
def test_validate_schedule_accepts_good_crons(cron: str) -> None:
    assert validate_schedule(ScheduleSpec(cron=cron)) == []


def test_validate_schedule_jitter_must_be_shorter_than_every() -> None:
    assert validate_schedule(ScheduleSpec.model_validate({"every": "1h", "jitter": "30m"})) == []
    problems = validate_schedule(ScheduleSpec.model_validate({"every": "1h", "jitter": "1h"}))
    assert problems and problems[0].startswith("spec.schedule.jitter: ")


def test_slot_offset_is_stable_per_disk_and_within_jitter() -> None:
    spec = ScheduleSpec.model_validate({"cron": "@hourly", "jitter": "30m"})
    disks = [f"/subscriptions/x/resourceGroups/rg/providers/Microsoft.Compute/disks/d{i}" for i in range(200)]
    offsets = [slot_offset(spec, d) for d in disks]
    assert all(timedelta(0) <= o < timedelta(minutes=30) for o in offsets)
    assert len(set(offsets)) > 100  # spread, not all the same
    assert slot_offset(spec, disks[0]) == offsets[0]
    assert slot_offset(spec, disks[0].upper()) == offsets[0]  # ARM IDs ignore case
    assert slot_offset(ScheduleSpec(cron="@hourly"), disks[0]) == timedelta(0)


@given(
    st.sampled_from(
        [
            {"cron": "0 * * * *", "timeZone": "Europe/Berlin"},
            {"cron": "30 2 * * *", "timeZone": "Europe/Berlin"},
            {"cron": "0 */4 * * 1-5", "timeZone": "America/New_York"},
            {"every": "6h", "timeZone": "Australia/Lord_Howe"},
            {"every": "3d"},
        ]
    ),
    st.lists(st.tuples(st.integers(0, 24 * 120), st.integers(0, 24 * 40)), min_size=1, max_size=8),
)
@settings(max_examples=60, deadline=None)
def test_the_slot_calendar_answers_as_a_fresh_walk_does(raw: dict[str, str], windows: list[tuple[int, int]]) -> None:
    spec = ScheduleSpec.model_validate(raw)
    base = utc(2026, 1, 1)
    for start_h, length_h in windows:  # questions in any order, overlapping or not, reuse one calendar
        start = base + timedelta(hours=start_h, minutes=17)
        end = start + timedelta(hours=length_h)
        assert slots_between(spec, start, end) == schedule._generate(spec, start, end)
        assert previous_slot(spec, end) == max(schedule._generate(spec, end - timedelta(days=40), end), default=None)
