"""`azsnap simulate` with copy targets: the operator's copy flow against the emulator's copies, and what the report
says of their calls, their concurrency and the copy lag that bounds the RPO in the target region."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from azsnap.domain.models import SnapshotPolicySpec
from azsnap.offline.simulate import SimulationOptions, load_policy_file, simulate
from azsnap.offline.simulate_copies import copies_text
from azsnap.offline.simulate_report import render_text, summarize

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START = datetime(2026, 3, 2, tzinfo=UTC)
SUB = "00000000-0000-0000-0000-000000000000"


def test_the_cross_region_example_copies_each_snapshot_once_and_reports_the_lag() -> None:
    spec, name, errors = load_policy_file(EXAMPLES / "cross-region.yaml")
    assert spec is not None, errors
    run = asyncio.run(simulate(spec, SimulationOptions(start=START, days=3), name=name))
    summary = summarize(run)
    assert summary["ok"], summary["invariants"]
    taken = summary["slots"]["taken"]
    (target,) = summary["copies"]["targets"]
    assert (target["region"], target["resource_group"]) == ("northeurope", "rg-demo-dr")
    # every 4h for 3 days: one CopyStart per snapshot, none failed or missed, each complete in 5.5 minutes
    assert target["copies_started"] == taken == 19 and target["copies_failed"] == target["copies_missed"] == 0
    assert target["copies_complete"] == taken - 1  # the one taken at the run's last instant is still copying
    assert target["lag_p50_s"] == target["lag_max_s"] == 330
    assert 330 <= target["status_lag_p50_s"] <= target["status_lag_max_s"] <= 330 + 120
    # the target's own retention (daily 7) keeps the newest complete copy of each day: 2, 3 and 4 March
    assert (target["copies_held"], target["copies_deleted"]) == (3, target["copies_complete"] - 3)
    assert (target["most_running_in_region"], summary["copies"]["most_running_per_disk"]) == (1, 1)
    # each copy is looked at twice after the reconcile that took its snapshot started it (at 2 minutes, then
    # when its pace says it is done), and no more: about three reconciles per slot in all
    assert summary["copies"]["looks_while_copying"] <= 2 * taken
    assert run.wakeups <= 3 * taken + 3 * 4  # plus at most one idle look per 6 hours
    text = render_text(summary)
    assert "to northeurope/rg-demo-dr: 19 CopyStart PUTs, 18 complete" in text
    assert "RPO in northeurope: the newest completed copy is at most 4h0" in text


def test_the_region_cap_and_one_copy_per_disk_hold_across_disks() -> None:
    spec = SnapshotPolicySpec.model_validate(
        {
            "disk": {"id": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d"},
            "schedule": {"every": "1h"},
            "retention": {"keepLast": 2},
            "copies": [{"region": "northeurope", "resourceGroup": "rg-dr", "retention": {"keepLast": 1}}],
        }
    )
    options = SimulationOptions(start=START, days=1, disks=6)
    run = asyncio.run(simulate(spec, options, name="p"))
    summary = summarize(run)
    assert summary["ok"], summary["invariants"]
    (target,) = summary["copies"]["targets"]
    assert summary["copies"]["most_running_per_disk"] == 1
    assert target["most_running_in_region"] == 6  # the six disks' copies of a slot run side by side
    assert target["copies_started"] == summary["slots"]["taken"] == 6 * 25
    assert target["copies_complete"] == 6 * 24  # the last slot's copies still run at the end
    assert target["copies_held"] == 6 and target["copies_deleted"] == 6 * 23


def test_simulate_runs_the_operators_cap_and_says_which(tmp_path: Path) -> None:
    import json

    import yaml
    from typer.testing import CliRunner

    from azsnap.cli import app

    manifest = {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "p", "namespace": "apps"},
        "spec": {
            "disk": {"id": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d"},
            "schedule": {"every": "1h"},
            "retention": {"keepLast": 2},
            "copies": [{"region": "northeurope", "resourceGroup": "rg-dr", "retention": {"keepLast": 1}}],
        },
    }
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(manifest))
    args = ["simulate", str(path), "--disks", "6", "--days", "1", "--start", START.isoformat()]
    result = CliRunner().invoke(app, [*args, "--json"], env={"AZSNAP_PARALLEL_COPIES": "2"})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    (target,) = summary["copies"]["targets"]
    assert (summary["copies"]["cap"], summary["copies"]["cap_source"]) == (2, "AZSNAP_PARALLEL_COPIES")
    assert target["most_running_in_region"] == 2  # six disks' copies of a slot, two at a time (100 without it)
    assert target["copies_missed"] == 0 and summary["invariants"]["copy_cap_passed"] == 0
    assert "at most 2 in the region (cap 2, AZSNAP_PARALLEL_COPIES)" in "\n".join(copies_text(summary["copies"]))
