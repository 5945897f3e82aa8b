"""The faults `azsnap simulate` injects: the named profiles, and the 429 bursts armed as emulated time passes."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from azsnap.emulator import Emulator, FaultRule

__all__ = ["FAULT_PROFILES", "Bursts", "FaultProfile"]


@dataclass(frozen=True)
class FaultProfile:
    """Faults injected into the emulator: standing rules, plus bursts of 429s starting at random emulated times.

    Burst starts are a Poisson process in emulated time (so retries, which wake the policies more often, do not
    bring more bursts); a burst answers 429 to the next `burst_size` requests, and one runs at a time.
    """

    description: str
    rules: tuple[FaultRule, ...] = ()
    bursts_per_day: float = 0.0
    burst_size: tuple[int, int] = (3, 8)
    burst_retry_after_s: tuple[int, ...] = (5, 15, 30)


FAULT_PROFILES: Final[Mapping[str, FaultProfile]] = {
    "none": FaultProfile("no injected faults; the emulator's throttling buckets still apply"),
    "flaky": FaultProfile(
        "about 2 bursts of 429s a day, 2% 500s, 2% 503s, 1% dropped connections",
        rules=(
            FaultRule(kind="500", probability=0.02),
            FaultRule(kind="503", probability=0.02, retry_after_s=10),
            FaultRule(kind="drop", probability=0.01),
        ),
        bursts_per_day=2.0,
    ),
    "throttled": FaultProfile(
        "25% of requests answered 429, and about 6 long bursts of 429s a day",
        rules=(FaultRule(kind="429", probability=0.25, retry_after_s=20),),
        bursts_per_day=6.0,
        burst_size=(5, 20),
        burst_retry_after_s=(30, 60),
    ),
}


class Bursts:
    """Arms the profile's 429 bursts as emulated time passes, one at a time, from a seeded RNG."""

    def __init__(self, emulator: Emulator, profile: FaultProfile, start: datetime, seed: int) -> None:
        self._emulator = emulator
        self._profile = profile
        self._rng = random.Random(seed)
        self._next: datetime | None = None
        self._armed: FaultRule | None = None
        if profile.bursts_per_day > 0:
            self._next = start + self._gap()

    def _gap(self) -> timedelta:
        return timedelta(days=self._rng.expovariate(self._profile.bursts_per_day))

    def tick(self, now: datetime) -> None:
        """Arm a burst if one is due and none is still running."""
        if self._next is None or now < self._next:
            return
        while self._next <= now:
            self._next += self._gap()
        if self._armed is not None and self._armed in self._emulator.faults.rules:
            return  # the previous burst has not run its course: this one is skipped
        profile = self._profile
        size = self._rng.randint(*profile.burst_size)
        self._armed = FaultRule(kind="429", count=size, retry_after_s=self._rng.choice(profile.burst_retry_after_s))
        self._emulator.add_fault(self._armed)
