"""`azsnap capacity` counts the copies of `spec.copies`: a create and a delete per snapshot and target."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.test_capacity import NOW, by_policy, manifest, write_list

from azsnap.offline.capacity import assess, load_policies, render_json, render_table
from azsnap.settings import CopyCap

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


def test_copies_of_one_instant_into_one_region_go_in_waves_of_the_cap(tmp_path: Path) -> None:
    items = [manifest(i) for i in range(250)]
    for item in items[:200]:
        item["spec"]["copies"] = [TARGET]
    for item in items[200:]:
        item["spec"]["copies"] = [{"region": "swedencentral", "resourceGroup": "rg-dr-se"}]
    policies = load_policies([write_list(tmp_path / "fleet.yaml", items)])
    (row,) = assess(policies, NOW)
    assert (row.copy_burst, row.copy_cap, row.copy_waves) == (200, 100, 2)  # the other region's 50 go apart
    assert (
        "copies: at most 200 start at once into one region, 100 may run there at once (the operator's default): "
        "2 wave(s)" in render_table([row])
    )
    assert render_json([row])["subscriptions"][0]["copyWaves"] == 2
    (alone,) = assess(policies, NOW, parallel_copies=CopyCap(250, "--parallel-copies"))
    assert alone.copy_waves == 1


def test_the_looks_at_running_copies_are_counted_in_the_lists(tmp_path: Path) -> None:
    plain = [manifest(i) for i in range(10)]
    (without,) = assess(load_policies([write_list(tmp_path / "a.yaml", plain)]), NOW)
    copying = [manifest(i) for i in range(10)]
    for item in copying:
        item["spec"]["copies"] = [TARGET]
    (with_copies,) = assess(load_policies([write_list(tmp_path / "b.yaml", copying)]), NOW)
    assert with_copies.lists_per_hour == pytest.approx(3 * without.lists_per_hour)  # the slot, then two looks
