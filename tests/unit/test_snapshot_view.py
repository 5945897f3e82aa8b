"""The observer's view of a subscription's list: settled snapshots of others kept compact, and given back whole."""

from __future__ import annotations

import gc
import json
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from azsnap.cloud.mapping import snapshot_from_azure
from azsnap.domain import naming
from azsnap.domain.observed import Snapshot
from azsnap.reconciler.snapshot_view import SnapshotView

SUB = "11111111-2222-3333-4444-555555555555"
NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def disk_id(i: int) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Compute/disks/pg-{i}"


def listed(
    name: str,
    disk: int = 0,
    *,
    tags: dict[str, str] | None = None,
    state: str = "Succeeded",
    option: str = "Copy",
    percent: float | None = None,
    hours_ago: int = 1,
) -> Snapshot:
    """One snapshot as a list page carries it, parsed from its own JSON text (as each page is)."""
    props: dict[str, Any] = {
        "creationData": {"createOption": option, "sourceResourceId": disk_id(disk), "sourceUniqueId": f"u-{disk}"},
        "incremental": True,
        "provisioningState": state,
        "timeCreated": (NOW - timedelta(hours=hours_ago)).isoformat(),
        "diskSizeBytes": 137438953472,
    }
    if percent is not None:
        props["completionPercent"] = percent
    raw = {
        "id": f"/subscriptions/{SUB}/resourceGroups/RG-Data/providers/Microsoft.Compute/snapshots/{name}",
        "name": name,
        "location": "westeurope",
        "tags": {"owner": "someone-else"} if tags is None else tags,
        "properties": props,
    }
    return snapshot_from_azure(json.loads(json.dumps(raw)))


def azsnaps(name: str, disk: int = 0) -> Snapshot:
    tags = {naming.TAG_MANAGED_BY: naming.MANAGED_BY_VALUE, naming.TAG_POLICY_UID: "uid-1", naming.TAG_SLOT: name}
    return listed(name, disk, tags=tags)


def test_a_disks_snapshots_come_back_equal_to_what_azure_listed_whatever_their_kind() -> None:
    snapshots = [
        listed("other-settled"),
        listed("other-untagged", tags={}),
        listed("other-creating", state="Creating"),
        listed("other-copying", percent=40.0),
        listed("other-failed", state="Failed"),
        listed("a-copy", option="CopyStart"),
        azsnaps("mine"),
        listed("of-another-disk", disk=1),
    ]
    view = SnapshotView(NOW, None)
    view.add_listed(snapshots[:4])
    view.add_listed(snapshots[4:])  # a second page
    view.listed()

    assert view.of_disk(disk_id(0).lower()) == snapshots[:7]
    assert view.of_disk(disk_id(1).lower()) == snapshots[7:]
    assert [s.id for s in view.of_disk(disk_id(0).lower())] == [s.id for s in snapshots[:7]]
    assert sorted(s.name for s in view.every()) == sorted(s.name for s in snapshots)
    assert [s.name for s in view.azsnaps()] == ["mine"]
    assert len(view) == 8


def test_settled_snapshots_of_others_share_one_record_of_what_they_have_in_common() -> None:
    view = SnapshotView(NOW, None)
    view.add_listed([listed(f"manual-{k}", hours_ago=k + 1) for k in range(3)] + [azsnaps("mine")])
    a, b, c, mine = view.of_disk(disk_id(0).lower())
    assert a.tags is b.tags is c.tags  # one read-only mapping for the family
    assert a.time_created != b.time_created
    assert mine.tags is not a.tags


def test_azsnaps_own_writes_replace_and_remove_listed_entries() -> None:
    view = SnapshotView(NOW, None)
    view.add_listed([listed("manual-0"), azsnaps("mine")])
    view.listed()
    view.remove(("rg-data", "manual-0"))
    view.add(azsnaps("mine-2"))
    assert [s.name for s in view.of_disk(disk_id(0).lower())] == ["mine", "mine-2"]
    assert sorted(s.name for s in view.azsnaps()) == ["mine", "mine-2"]


def _traced_view(compact: bool) -> tuple[SnapshotView, int]:
    """A view of 200 disks' 24 settled snapshots of others each, and the bytes it holds once the pages are gone.

    Earlier tests' garbage is collected first and the collector is off while tracing, so no finalizer of an
    earlier test's object allocates inside the window.
    """
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        view = SnapshotView(NOW, None)
        for d in range(200):
            page = [listed(f"manual-{d}-{k}", d, hours_ago=k + 1) for k in range(24)]
            if compact:
                view.add_listed(page)
            else:
                for snapshot in page:
                    view.add(snapshot)  # as azsnap's own writes are kept: whole
        view.listed()
        return view, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
        gc.enable()


def test_a_settled_snapshot_of_others_costs_less_than_half_of_a_whole_one() -> None:
    whole, whole_bytes = _traced_view(compact=False)
    # tracemalloc counts every thread's allocations: a thread an earlier test left running can only add bytes to
    # a window, so the view's own cost is the smallest of up to three windows.
    compact, compact_bytes = _traced_view(compact=True)
    for _ in range(2):
        if compact_bytes < whole_bytes / 2:
            break
        compact, retry_bytes = _traced_view(compact=True)
        compact_bytes = min(compact_bytes, retry_bytes)
    assert len(compact) == len(whole) == 4800
    assert compact.of_disk(disk_id(7).lower()) == whole.of_disk(disk_id(7).lower())
    assert compact_bytes < whole_bytes / 2
