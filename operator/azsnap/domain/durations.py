"""Parse and format the short durations used in policies (`90m`, `4h`, `7d`, `1w2d`)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Final

__all__ = ["DURATION_PATTERN", "format_duration", "parse_duration"]

#: The pattern the CRD schema uses too: one or more `<integer><unit>` groups, units w, d, h, m, s.
DURATION_PATTERN: Final = r"^([0-9]{1,6}[wdhms])+$"

_UNITS: Final = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_GROUP: Final = re.compile(r"([0-9]{1,6})([wdhms])")
_WHOLE: Final = re.compile(DURATION_PATTERN)


def parse_duration(text: str) -> timedelta:
    """Turn `1d12h` into a timedelta; raise ValueError naming the accepted format otherwise."""
    if not isinstance(text, str) or not _WHOLE.match(text.strip()):
        raise ValueError(
            f"{text!r} is not a duration; use whole numbers with units w, d, h, m or s, e.g. '30m', '4h', '7d', '1d12h'"
        )
    seconds = sum(int(n) * _UNITS[u] for n, u in _GROUP.findall(text.strip()))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """Format a timedelta in the same short notation (the inverse of `parse_duration`)."""
    seconds = int(value.total_seconds())
    if seconds <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS.items():
        if unit == "w" and seconds % size:
            continue  # prefer `10d` over `1w3d`
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
