"""Creates in flight are bounded; turns go to the earliest deadline, and a cancelled wait gives nothing away."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from azsnap.reconciler.inflight import CreateTurns

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


async def test_no_more_than_the_limit_are_in_flight_and_every_create_gets_its_turn() -> None:
    turns = CreateTurns(limit=3)
    peak, done = 0, []

    async def create(i: int) -> None:
        nonlocal peak
        async with turns.turn(T0):
            peak = max(peak, turns.in_flight)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            done.append(i)

    await asyncio.gather(*(create(i) for i in range(20)))
    assert peak == 3
    assert sorted(done) == list(range(20))
    assert (turns.in_flight, turns.waiting) == (0, 0)


async def test_waiting_creates_get_their_turns_earliest_deadline_first() -> None:
    turns = CreateTurns(limit=1)
    order: list[int] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn(T0):
            await release.wait()

    async def create(minutes: int) -> None:
        async with turns.turn(T0 + timedelta(minutes=minutes)):
            order.append(minutes)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(create(m)) for m in (30, 5, 60, 5, 1)]
    await asyncio.sleep(0)
    assert turns.waiting == 5
    release.set()
    await asyncio.gather(first, *waiters)
    assert order == [1, 5, 5, 30, 60]


async def test_a_cancelled_wait_neither_holds_nor_loses_a_turn() -> None:
    turns = CreateTurns(limit=1)
    release = asyncio.Event()

    async def holder() -> None:
        async with turns.turn(T0):
            await release.wait()

    async def create() -> str:
        async with turns.turn(T0):
            return "made"

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    gone, later = asyncio.create_task(create()), asyncio.create_task(create())
    await asyncio.sleep(0)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert turns.waiting == 1
    release.set()
    assert await later == "made"
    await first
    assert (turns.in_flight, turns.waiting) == (0, 0)


def test_at_least_one_create_must_be_allowed() -> None:
    with pytest.raises(ValueError, match="at least one"):
        CreateTurns(limit=0)
