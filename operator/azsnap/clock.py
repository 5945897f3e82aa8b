"""Clocks: product code never reads the wall clock directly, it is handed one of these."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Protocol

__all__ = ["Clock", "LoopClock", "ManualClock", "WallClock"]


class Clock(Protocol):
    """Tells the time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class WallClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class LoopClock:
    """Time derived from the running event loop: `epoch` at the moment of creation, then `loop.time()`.

    Under `looptime` the loop's time is emulated, so hours of schedule pass in seconds of real time.
    """

    def __init__(self, epoch: datetime, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._epoch = epoch
        self._start = self._loop.time()

    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self._loop.time() - self._start)


class ManualClock:
    """A clock moved by hand (unit tests, the simulator)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when
