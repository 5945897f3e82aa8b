"""Turns for creates in flight: at most so many snapshot creates of one operator are under way at once.

At the top of the hour every policy's slot comes due together: 10,000 policies are 10,000 creates. Each one under
way holds its request, its answer and its long-running operation's poller; one waiting for a turn holds only its
reconcile. Azure takes creates at its budget's pace anyway (the pacer spreads them; without it, Azure throttles),
so a bound well above what the budget grants in a create's lifetime costs no time: 256 creates of 5 to 15 s each
are 17 to 50 a second, against a budget of about 1.7 a second. Turns go to the earliest deadline first (the
pacer's order), then first come, first served.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Final

__all__ = ["MAX_CREATES_IN_FLIGHT", "CreateTurns"]

MAX_CREATES_IN_FLIGHT: Final = 256


class CreateTurns:
    """A bound on creates under way, handed out by deadline."""

    def __init__(self, limit: int = MAX_CREATES_IN_FLIGHT) -> None:
        if limit < 1:
            raise ValueError(f"at least one create must be allowed in flight, not {limit}")
        self.limit = limit
        self.in_flight = 0
        self._waiting: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        #: Waiters not yet handed a turn nor cancelled (the heap may still hold cancelled ones).
        self.waiting = 0

    @asynccontextmanager
    async def turn(self, deadline: datetime) -> AsyncIterator[None]:
        """Hold one of the turns for the block; wait for one first when all are taken."""
        if self.in_flight < self.limit and not self.waiting:
            self.in_flight += 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (deadline, next(self._order), future))
            self.waiting += 1
            try:
                await future  # handed over by a create that ended: `in_flight` counted it all along
            except BaseException:
                if future.done() and not future.cancelled():
                    self._release()  # handed over just as this wait was cancelled: pass it on
                else:
                    future.cancel()
                    self.waiting -= 1
                raise
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        while self._waiting:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():
                self.waiting -= 1
                future.set_result(None)  # the turn passes on directly: `in_flight` is unchanged
                return
        self.in_flight -= 1
