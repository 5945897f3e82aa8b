"""Azure's rate-limit answers: remaining calls per policy, the window a policy's name states, and Retry-After."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Final

from azsnap.cloud.priors import ARM_PREFIX

__all__ = ["RETRY_HEADERS", "parse_remaining", "period_from_policy", "retry_after_seconds"]

#: The headers through which Azure asks a client to wait.
RETRY_HEADERS: Final = frozenset({"retry-after", "retry-after-ms", "x-ms-retry-after-ms"})

_RESOURCE_HEADER: Final = "x-ms-ratelimit-remaining-resource"
_ARM_HEADER_PREFIX: Final = "x-ms-ratelimit-remaining-"
_PERIOD_RE: Final = re.compile(r"(\d+)(Sec|Min|Hour)s?$", re.IGNORECASE)
_PERIOD_UNITS: Final = {"sec": 1.0, "min": 60.0, "hour": 3600.0}


def parse_remaining(headers: Mapping[str, str]) -> dict[str, int]:
    """Remaining calls per policy from the `x-ms-ratelimit-remaining-*` headers (names case-insensitive).

    `x-ms-ratelimit-remaining-resource: Microsoft.Compute/A3Min;239,Microsoft.Compute/A30Min;1919` gives both
    Compute policies; `x-ms-ratelimit-remaining-subscription-writes: 1199` gives `ARM/subscription-writes`.
    Repeated headers may arrive joined by commas. Malformed parts are skipped.
    """
    found: dict[str, int] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == _RESOURCE_HEADER:
            for part in value.split(","):
                policy, sep, count = part.strip().rpartition(";")
                number = _int(count)
                if sep and policy and number is not None:
                    found[policy] = min(number, found.get(policy, number))
        elif lowered.startswith(_ARM_HEADER_PREFIX + "subscription-"):
            number = _int(value.split(",")[0])
            if number is not None:
                found[ARM_PREFIX + lowered.removeprefix(_ARM_HEADER_PREFIX)] = number
    return found


def _int(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None


def period_from_policy(policy: str) -> float | None:
    """The window a Compute policy's name states (`...3Min` → 180), or None."""
    match = _PERIOD_RE.search(policy)
    if match is None or int(match.group(1)) == 0:
        return None
    return int(match.group(1)) * _PERIOD_UNITS[match.group(2).lower()]


def retry_after_seconds(headers: Mapping[str, str], now: datetime | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds or HTTP date).

    An HTTP date is measured against the answer's own `Date` header, else against `now`; None if neither.
    """
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0), ("retry-after", 1.0)):
        text = lower.get(name)
        if text is None:
            continue
        try:
            seconds = float(text) / scale
        except ValueError:
            seconds = None
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            return seconds
        if name == "retry-after":
            return _seconds_until(text, lower.get("date"), now)
    return None


def _seconds_until(when_text: str, date_text: str | None, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(when_text)
        reference = parsedate_to_datetime(date_text) if date_text else now
    except (TypeError, ValueError, IndexError):
        return None
    if reference is None or when.tzinfo is None or reference.tzinfo is None:
        return None
    return max(0.0, (when - reference).total_seconds())
