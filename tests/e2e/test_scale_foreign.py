"""The scale benchmark's foreign snapshots: seeded as someone else's, within Azure's limits, and never deleted."""

from __future__ import annotations

import looptime
import pytest
from bench import scale
from bench.common import EPOCH, SUBSCRIPTION, bench_emulator_config, make_fleet, seed_foreign_snapshots

from azsnap.clock import LoopClock
from azsnap.domain import naming
from azsnap.emulator import Emulator

pytestmark = pytest.mark.e2e


async def test_foreign_snapshots_are_copies_of_the_fleets_disks_in_their_group() -> None:
    emulator = Emulator(LoopClock(EPOCH), bench_emulator_config())
    members = make_fleet(emulator, 4, 1, keep_last=3)

    assert seed_foreign_snapshots(emulator, members, 18) == 18

    seeded = emulator.store.list_snapshots(SUBSCRIPTION, "rg-00")
    assert len(seeded) == 18
    per_disk: dict[str, int] = {}
    for record in seeded:
        assert naming.TAG_MANAGED_BY not in record.body["tags"]
        assert record.state == "Succeeded"
        source = record.body["properties"]["creationData"]["sourceResourceId"]
        per_disk[source.lower()] = per_disk.get(source.lower(), 0) + 1
    assert sorted(per_disk.values()) == [4, 4, 5, 5]
    assert emulator.violations == []


def test_a_run_among_foreign_snapshots_deletes_only_what_retention_needs() -> None:
    loop = looptime.new_event_loop(start=0)
    try:
        figures = loop.run_until_complete(scale.run(4, 3, "azsnap", 1, keep_last=1, jitter=None, foreign_snapshots=40))
    finally:
        loop.close()

    assert figures["foreign_snapshots"] == 40
    assert figures["slots_taken"] == figures["slots_due"] == 12
    assert figures["deletes_needed"] == 8
    assert figures["calls_by_kind"]["snapshots.delete"] == 8  # one more would be a foreign snapshot
    assert figures["violations"] == 0
