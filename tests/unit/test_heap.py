"""What a long list freed is given back: a full collection and a heap trim, during and after the list."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.observed import Snapshot
from azsnap.reconciler import heap
from azsnap.reconciler.observe import Observer

SUB = "00000000-0000-0000-0000-000000000000"
START = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)


class PagedCloud(MemoryCloud):
    """The in-memory cloud handing its list over in pages of 100, as Azure does."""

    async def list_snapshots_into(
        self, subscription_id: str, resource_group: str | None, sink: Callable[[list[Snapshot]], None]
    ) -> None:
        found = await self.list_snapshots(subscription_id, resource_group)
        for start in range(0, len(found), 100):
            sink(found[start : start + 100])


class Cycle:
    def __init__(self) -> None:
        self.me = self


def test_release_frees_reference_cycles_at_once() -> None:
    gc.disable()
    try:
        cycle = Cycle()
        gone = weakref.ref(cycle)
        del cycle
        assert gone() is not None, "a cycle outlives its last name until a collection"
        heap.release()
        assert gone() is None
    finally:
        gc.enable()


@pytest.mark.parametrize(("snapshots", "trims", "releases"), [(2500, 2, 1), (1000, 1, 1), (500, 0, 0)])
async def test_a_list_of_many_pages_is_trimmed_as_it_is_read_and_released_after(
    monkeypatch: pytest.MonkeyPatch, snapshots: int, trims: int, releases: int
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(heap, "trim", lambda: calls.append("trim") or True)
    monkeypatch.setattr(heap, "release", lambda: calls.append("release") or True)
    monkeypatch.setattr(heap, "PAGES_PER_TRIM", 10)  # every 1,000 snapshots here; a release after 10 pages
    clock = ManualClock(START)
    cloud = PagedCloud(clock)
    disk = cloud.add_disk(SUB, "rg-demo", "disk-0")
    for i in range(snapshots):
        cloud.seed_snapshot(disk, f"others-{i}", tags={"owner": "team-a"}, incremental=False)
    observer = Observer(cloud, clock)
    assert len(await observer.of_disk(disk, ["rg-demo"])) == snapshots
    assert calls == ["trim"] * trims + ["release"] * releases
