"""`azsnap capacity` counts the copies of `spec.copies`: a create and a delete per snapshot and target."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.test_capacity import NOW, by_policy, manifest, write_list

from azsnap.offline.capacity import assess, load_policies, render_json, render_table

TARGET = {"region": "northeurope", "resourceGroup": "rg-dr"}


def test_copies_double_the_writes_of_the_policies_that_copy(tmp_path: Path) -> None:
    items = [manifest(i) for i in range(2000)]
    for item in items[:1000]:
        item["spec"]["copies"] = [TARGET]
    (row,) = assess(load_policies([write_list(tmp_path / "fleet.yaml", items)]), NOW)
    assert row.copies_per_hour == pytest.approx(1000)
    assert row.creates_per_hour == pytest.approx(3000) and row.deletes_per_hour == pytest.approx(3000)
    assert row.peak_burst == 2000  # copies follow their snapshots: not in the top-of-hour burst
    uses = by_policy(row)
    assert uses["Microsoft.Compute/HighCostSnapshotCreateHydrate30Min"].utilisation == pytest.approx(3000 / 3840)
    assert "copies to other regions: 1000 creates and deletes" in render_table([row])
    assert render_json([row])["subscriptions"][0]["copiesPerHour"] == 1000


def test_without_copies_nothing_changes(tmp_path: Path) -> None:
    (row,) = assess(load_policies([write_list(tmp_path / "fleet.yaml", [manifest(i) for i in range(10)])]), NOW)
    assert row.copies_per_hour == 0 and "copies" not in render_table([row])
