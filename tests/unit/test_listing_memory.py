"""A large subscription's list is held once in memory: listed snapshots share the strings they repeat."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from azsnap.cloud.mapping import snapshot_from_azure
from azsnap.reconciler.snapshot_view import SnapshotView

SUB = "11111111-2222-3333-4444-555555555555"
DISK_ID = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Compute/disks/pg-0"


def listed(name: str, owner: str = "someone-else") -> dict[str, Any]:
    """One snapshot as a list page carries it, parsed from its own JSON text (as each page is)."""
    raw = {
        "id": f"/subscriptions/{SUB}/resourceGroups/RG-Data/providers/Microsoft.Compute/snapshots/{name}",
        "name": name,
        "location": "westeurope",
        "tags": {"owner": owner},
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": DISK_ID, "sourceUniqueId": "u-1"},
            "incremental": True,
            "provisioningState": "Succeeded",
            "timeCreated": "2026-03-02T12:00:00+00:00",
        },
    }
    parsed: dict[str, Any] = json.loads(json.dumps(raw))
    return parsed


def test_snapshots_of_one_list_share_their_group_region_source_state_and_tags() -> None:
    a, b = snapshot_from_azure(listed("a")), snapshot_from_azure(listed("b"))
    assert (a.resource_group, a.location, a.source_resource_id) == ("RG-Data", "westeurope", DISK_ID)
    for field in ("resource_group", "location", "source_resource_id", "source_unique_id", "provisioning_state"):
        assert getattr(a, field) is getattr(b, field), field
    (key_a, value_a), (key_b, value_b) = next(iter(a.tags.items())), next(iter(b.tags.items()))
    assert key_a is key_b
    assert value_a is value_b
    assert a.name == "a"
    assert b.name == "b"


def test_the_observers_view_keys_a_lower_case_name_by_the_name_itself_and_shares_the_group() -> None:
    view = SnapshotView(datetime(2026, 3, 2, 12, tzinfo=UTC), None)
    snapshots = [snapshot_from_azure(listed(name)) for name in ("lower-case", "Mixed-Case")]
    view.add_listed(snapshots)
    (group_a, name_a), (group_b, name_b) = list(view._entries)  # the keys themselves are what is measured
    assert (group_a, name_a, group_b, name_b) == ("rg-data", "lower-case", "rg-data", "mixed-case")
    assert group_a is group_b
    assert name_a is snapshots[0].name
    assert view.of_disk(DISK_ID.lower()) == snapshots
