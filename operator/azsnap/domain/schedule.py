"""Scheduled slots of a policy: cron or `every`, evaluated on the wall clock of the schedule's time zone.

A slot is a wall-clock time of the zone that the schedule names (`30 2 * * *` means 02:30 local). Turning a
wall-clock time into an instant follows one rule everywhere, for cron and `every` alike:

- a time that exists once is that instant;
- a time that exists twice (clocks go back) fires once, at its first occurrence;
- a time that does not exist (clocks go forward) fires at the first valid instant after the gap, so a daily
  02:30 slot still fires on the day of the change. Several skipped times collapse into that one instant.

cronsim iterates the wall-clock times (on naive datetimes, where it does no zone arithmetic); the mapping to
instants is done here, because cronsim's own zone handling fires a repeated hour twice for expressions whose
hour field starts with `*` (`0 * * * *`).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Final
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from azsnap.domain.models import ScheduleSpec

__all__ = [
    "MACROS",
    "next_slot",
    "previous_slot",
    "slot_offset",
    "slots_between",
    "validate_schedule",
]

#: Cron macros and the five-field expressions they stand for.
MACROS: Final = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}

#: `previous_slot` looks back no further than this.
LOOKBACK: Final = timedelta(days=400)
#: `next_slot` gives up (ValueError) when a schedule does not fire within this.
LOOKAHEAD: Final = timedelta(days=5 * 366)
#: Windows tried in turn by `previous_slot`, so a frequent schedule is not walked for 400 days.
_LOOKBACK_STEPS: Final = (timedelta(hours=2), timedelta(days=1), timedelta(days=8), timedelta(days=35), LOOKBACK)
#: Windows tried in turn by `next_slot`.
_LOOKAHEAD_STEPS: Final = (timedelta(days=1), timedelta(days=35), timedelta(days=400), LOOKAHEAD)
#: A calendar never spans more than this (a longer question is walked without it), and at most this many are kept.
_CALENDAR_SPAN: Final = timedelta(days=401)
_CALENDARS_KEPT: Final = 256
#: Wall-clock iteration starts this much before the instant asked for; UTC offsets differ by less.
_MARGIN: Final = timedelta(hours=3)
_EPOCH_DAY: Final = date(1970, 1, 1)
_DAY_SECONDS: Final = 86400
#: What cronsim raises for a malformed expression (odd input can slip past its own checks).
_CRON_ERRORS: Final = (CronSimError, ValueError, IndexError, AssertionError)


def expand_cron(expr: str) -> str:
    """The five-field expression for `expr` (macros expanded, whitespace normalised)."""
    text = " ".join(expr.split())
    return MACROS.get(text.lower(), text)


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("schedule instants must be timezone-aware")
    return when.astimezone(UTC)


def _offset_at(instant: datetime, zone: ZoneInfo) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    return offset if offset is not None else timedelta(0)


def to_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the naive wall-clock time `wall` of `zone` fires (see the module docstring)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first  # exists; fold=0 is the first occurrence of a repeated time
    # In a gap: fold=0 read the time with the offset before the change, fold=1 with the one after. The change
    # itself lies between the two readings; find the first instant that has the new offset.
    later = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = sorted((first, later))
    after = _offset_at(high, zone)
    while high - low > timedelta(seconds=1):
        middle = (low + (high - low) / 2).replace(microsecond=0)
        if _offset_at(middle, zone) == after:
            high = middle
        else:
            low = middle
    return high


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _cron_walls(expr: str, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock times matching `expr`, strictly after the naive `start`."""
    it = CronSim(expand_cron(expr), start)
    while True:
        try:
            yield next(it)
        except StopIteration:
            return


def _every_walls(every: timedelta, start: datetime) -> Iterator[datetime]:
    """Naive wall-clock times of an `every` schedule, from the local midnight before `start` on."""
    seconds = int(every.total_seconds())
    day = start.date()
    if seconds < _DAY_SECONDS:
        while True:
            midnight = datetime.combine(day, time())
            for i in range(_DAY_SECONDS // seconds):
                yield midnight + timedelta(seconds=i * seconds)
            day += timedelta(days=1)
    period = seconds // _DAY_SECONDS
    day += timedelta(days=(-(day - _EPOCH_DAY).days) % period)
    while True:
        yield datetime.combine(day, time())
        day += timedelta(days=period)


def _iter_slots(schedule: ScheduleSpec, after: datetime) -> Iterator[datetime]:
    """Slot instants (aware UTC) strictly after `after`, ascending, each once."""
    zone = schedule.zone
    after = _utc(after)
    start = _wall(after - _MARGIN, zone)
    if schedule.cron is not None:
        walls = _cron_walls(schedule.cron, start)
    else:
        assert schedule.every is not None  # the model guarantees exactly one of cron and every
        walls = _every_walls(schedule.every, start)
    last: datetime | None = None
    for wall in walls:
        instant = to_instant(wall, zone)
        if instant <= after or instant == last:
            continue
        last = instant
        yield instant


def _generate(schedule: ScheduleSpec, start: datetime, end: datetime) -> list[datetime]:
    """The scheduled slots with `start < slot <= end`, walked from the schedule itself (no cache)."""
    found: list[datetime] = []
    if end <= start:
        return found
    for slot in _iter_slots(schedule, start):
        if slot > end:
            break
        found.append(slot)
    return found


@dataclass
class _Calendar:
    """Every slot of one schedule in (`low`, `high`], ascending: walked once, then read by bisection."""

    low: datetime
    high: datetime
    slots: list[datetime]


#: Calendars by (cron, every, time zone): a reconcile asks the same schedule for slots several times, and a
#: fleet shares few schedules. Memoisation only: the answers are those of `_generate`.
_CALENDARS: dict[tuple[str | None, timedelta | None, str], _Calendar] = {}


def _calendar(schedule: ScheduleSpec, start: datetime, end: datetime) -> _Calendar:
    """A calendar of `schedule` that covers (`start`, `end`], extended or started afresh as needed."""
    key = (schedule.cron, schedule.every, schedule.time_zone)
    cal = _CALENDARS.get(key)
    if cal is None or end < cal.low or start > cal.high or max(end, cal.high) - min(start, cal.low) > _CALENDAR_SPAN:
        if len(_CALENDARS) >= _CALENDARS_KEPT:
            _CALENDARS.clear()
        cal = _CALENDARS[key] = _Calendar(start, end, _generate(schedule, start, end))
        return cal
    if start < cal.low:
        cal.slots[:0] = _generate(schedule, start, cal.low)
        cal.low = start
    if end > cal.high:
        cal.slots.extend(_generate(schedule, cal.high, end))
        cal.high = end
    return cal


def slots_between(schedule: ScheduleSpec, start: datetime, end: datetime) -> list[datetime]:
    """The scheduled slots (aware UTC) with `start < slot <= end`."""
    start, end = _utc(start), _utc(end)
    if end <= start:
        return []
    if end - start > _CALENDAR_SPAN:
        return _generate(schedule, start, end)
    slots = _calendar(schedule, start, end).slots
    return slots[bisect_right(slots, start) : bisect_right(slots, end)]


def previous_slot(schedule: ScheduleSpec, now: datetime) -> datetime | None:
    """The latest slot at or before `now`, looking back at most 400 days; None if there is none."""
    now = _utc(now)
    for span in _LOOKBACK_STEPS:
        found = slots_between(schedule, now - span, now)
        if found:
            return found[-1]
    return None


def next_slot(schedule: ScheduleSpec, now: datetime) -> datetime:
    """The first slot strictly after `now`; ValueError if the schedule does not fire within five years."""
    now = _utc(now)
    for span in _LOOKAHEAD_STEPS:
        found = slots_between(schedule, now, now + span)
        if found:
            return found[0]
    raise ValueError(
        f"schedule {schedule.cron or schedule.every!s} does not fire within five years after "
        f"{now:%Y-%m-%dT%H:%M:%SZ}; fix spec.schedule"
    )


def slot_offset(schedule: ScheduleSpec, disk_id: str) -> timedelta:
    """A stable per-disk offset in [0, jitter): a slot is due at slot + offset (its name keeps the slot)."""
    if schedule.jitter is None:
        return timedelta(0)
    span = int(schedule.jitter.total_seconds())
    if span <= 0:
        return timedelta(0)
    digest = hashlib.sha256(disk_id.lower().encode()).digest()
    return timedelta(seconds=int.from_bytes(digest[:8], "big") % span)


def validate_schedule(schedule: ScheduleSpec) -> list[str]:
    """Problems the CRD schema cannot catch, each naming the field; empty when the schedule is usable."""
    problems: list[str] = []
    if schedule.cron is not None:
        problems.extend(_cron_problems(schedule.cron))
    if schedule.every is not None and schedule.jitter is not None and schedule.jitter >= schedule.every:
        problems.append(
            f"spec.schedule.jitter: must be shorter than spec.schedule.every ({schedule.every}), "
            "or slots of one disk would overlap"
        )
    return problems


@lru_cache(maxsize=512)
def _cron_problems(expr: str) -> tuple[str, ...]:
    field = "spec.schedule.cron"
    text = expand_cron(expr)
    parts = text.split()
    if text.startswith("@"):
        known = ", ".join(sorted(MACROS))
        return (f"{field}: unknown macro {expr!r}; use one of {known} or five fields",)
    if len(parts) != 5:
        return (
            f"{field}: {expr!r} has {len(parts)} fields; use five (minute hour day-of-month month day-of-week) "
            "or a macro such as @daily",
        )
    reference = datetime(2001, 1, 1)
    try:
        parsed = CronSim(text, reference)
    except _CRON_ERRORS as exc:
        try:
            CronSim(" ".join([*parts[:3], "*", parts[4]]), reference)
        except _CRON_ERRORS:
            return (f"{field}: {expr!r} is not a valid cron expression ({exc})",)
        return (f"{field}: {expr!r} never fires (no month has that day)",)
    if len(parsed.minutes) != 1:
        return (
            f"{field}: {expr!r} fires more than once an hour; azsnap takes at most one snapshot per hour, "
            "so give a single minute, e.g. '0 * * * *'",
        )
    gap = _largest_gap_days(text)
    if gap is None:
        return (f"{field}: {expr!r} never fires",)
    if gap > LOOKAHEAD.days:
        return (
            f"{field}: {expr!r} fires only every {gap // 365} years or so; use a schedule that fires at least "
            "once in five years",
        )
    return ()


def _largest_gap_days(expr: str) -> int | None:
    """The largest gap, in days, between firing days over a 28-year calendar cycle; None if it never fires.

    Weekdays and leap years repeat every 28 years (between 1901 and 2099), so the cycle covers every case.
    A schedule that fires on many days early in the cycle cannot have a multi-year hole later.
    """
    parts = expr.split()
    daily = " ".join(["0", "0", *parts[2:]])
    start = datetime(2001, 1, 1) - timedelta(seconds=1)
    cycle_end = datetime(2029, 1, 1)
    days: list[date] = []
    for wall in _cron_walls(daily, start):
        if wall >= cycle_end:
            break
        days.append(wall.date())
        if len(days) >= 60 and wall < datetime(2006, 1, 1):
            return 1  # frequent: a multi-year hole is impossible for cron day rules
    if not days:
        return None
    wrapped = [*days, days[0] + timedelta(days=(cycle_end.date() - date(2001, 1, 1)).days)]
    return max((b - a).days for a, b in pairwise(wrapped))
