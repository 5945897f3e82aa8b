"""`azsnap capacity`: demand per subscription against Azure's budget, from policy files."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from azsnap.cli import app
from azsnap.offline.capacity import CapacityError, assess, load_policies

SUB = "00000000-0000-0000-0000-000000000001"
OTHER_SUB = "00000000-0000-0000-0000-000000000002"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def manifest(i: int, *, sub: str = SUB, rgs: int = 10, cron: str = "0 * * * *", **schedule: Any) -> dict[str, Any]:
    disk = f"/subscriptions/{sub}/resourceGroups/rg-{i % rgs}/providers/Microsoft.Compute/disks/disk-{i}"
    return {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": f"p-{i}", "namespace": "apps"},
        "spec": {
            "disk": {"id": disk},
            "schedule": {"cron": cron, **schedule},
            "retention": {"keepLast": 3},
        },
    }


def write_list(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": items}))
    return path


def by_policy(row: Any) -> dict[str, Any]:
    return {use.policy: use for use in row.buckets}


def test_3000_hourly_disks_use_78_percent_of_the_30_minute_create_budget(tmp_path: Path) -> None:
    policies = load_policies([write_list(tmp_path / "fleet.yaml", [manifest(i) for i in range(3000)])])
    (row,) = assess(policies, NOW)
    assert row.policies == 3000
    assert row.resource_groups == 10
    assert row.creates_per_hour == pytest.approx(3000)
    assert row.deletes_per_hour == pytest.approx(3000)  # retention deletes what it creates, in steady state
    uses = by_policy(row)
    assert uses["Microsoft.Compute/HighCostSnapshotCreateHydrate30Min"].utilisation == pytest.approx(3000 / 3840)
    assert uses["Microsoft.Compute/HighCostSnapshotCreateHydrate3Min"].utilisation == pytest.approx(3000 / 4800)
    # One shared list per resource group per hourly round: 300 disks × 3 kept = 900 snapshots, 9 pages of 100.
    assert row.lists_per_hour == pytest.approx(10 * 9)
    assert row.peak_burst == 3000
    assert row.burst_last_wait_s == pytest.approx((3000 - 240) / (240 / 180))
    assert row.fits


def test_more_creates_than_the_budget_does_not_fit_and_the_cli_exits_1(tmp_path: Path) -> None:
    items = [manifest(i, cron="*/2 * * * *") for i in range(150)]
    path = write_list(tmp_path / "too-many.yaml", items)
    (row,) = assess(load_policies([path]), NOW)
    assert row.burst_fits  # 150 at a time: no burst problem ...
    assert not row.fits  # ... but 4,500 creates an hour is over the paced 30-minute budget (3,725)
    assert any("HighCostSnapshotCreateHydrate30Min" in problem for problem in row.problems())
    result = CliRunner().invoke(app, ["capacity", str(path)])
    assert result.exit_code == 1
    assert "DOES NOT FIT" in result.output


def test_a_burst_past_the_starting_deadline_does_not_fit_until_jittered(tmp_path: Path) -> None:
    burst = [manifest(i, startingDeadline="5m") for i in range(1000)]
    (row,) = assess(load_policies([write_list(tmp_path / "burst.yaml", burst)]), NOW)
    assert row.peak_burst == 1000
    assert row.burst_last_wait_s > 300
    assert not row.burst_fits
    assert any("jitter" in problem for problem in row.problems())

    spread = [manifest(i, startingDeadline="5m", jitter="50m") for i in range(1000)]
    (row,) = assess(load_policies([write_list(tmp_path / "spread.yaml", spread)]), NOW)
    assert row.peak_burst < 10
    assert row.burst_fits
    # Spread over 50 minutes, each group's list goes stale between its disks' due times: lists cost more.
    uses = by_policy(row)
    assert uses["Microsoft.Compute/HighCostGet30Min"].needed_per_hour > 10 * 9


def test_json_output_per_subscription_from_files_and_directories(tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    docs = [manifest(i) for i in range(4)]
    (folder / "multi.yaml").write_text(yaml.safe_dump_all(docs))
    (folder / "other.yml").write_text(yaml.safe_dump(manifest(9, sub=OTHER_SUB)))
    (folder / "not-a-policy.yaml").write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap"}))
    result = CliRunner().invoke(app, ["capacity", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["fits"] is True
    subs = {s["subscriptionId"]: s for s in report["subscriptions"]}
    assert subs[SUB]["policies"] == 4
    assert subs[OTHER_SUB]["policies"] == 1
    assert subs[SUB]["createsPerHour"] == pytest.approx(4)
    budgets = {b["policy"]: b for b in subs[SUB]["budgets"]}
    assert budgets["Microsoft.Compute/HighCostSnapshotCreateHydrate3Min"]["azurePerHour"] == pytest.approx(4800)


def test_suspended_policies_need_no_budget(tmp_path: Path) -> None:
    item = manifest(1)
    item["spec"]["suspend"] = True
    assert assess(load_policies([write_list(tmp_path / "s.yaml", [item])]), NOW) == []


def test_the_shipped_examples_fit() -> None:
    result = CliRunner().invoke(app, ["capacity", str(EXAMPLES)])
    assert result.exit_code == 0, result.output
    assert "fits" in result.output


def test_a_bad_policy_names_file_and_field_and_exits_2(tmp_path: Path) -> None:
    bad = manifest(1)
    bad["spec"]["retention"] = {}
    path = write_list(tmp_path / "bad.yaml", [bad])
    with pytest.raises(CapacityError) as info:
        load_policies([path])
    assert "bad.yaml" in info.value.problems[0]
    assert "spec.retention" in info.value.problems[0]
    result = CliRunner().invoke(app, ["capacity", str(path), str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
