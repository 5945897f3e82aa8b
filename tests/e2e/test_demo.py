"""`azsnap demo` end to end: the command's summary after a short emulated run, and the invariant checks it rests on."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result
from typer.testing import CliRunner

from azsnap.cli import app
from azsnap.clock import ManualClock
from azsnap.domain import naming
from azsnap.domain.copies import ROLE_COPY, TAG_ROLE
from azsnap.emulator import DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, Emulator, EmulatorConfig
from azsnap.emulator.arm import ArmError
from azsnap.offline.demo import Witness, load_policies, seed_unowned
from azsnap.offline.sandbox import disk_id

pytestmark = [pytest.mark.e2e]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example_policies() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "SnapshotPolicy":
                found[f"{doc['metadata'].get('namespace', 'default')}/{doc['metadata']['name']}"] = doc
    return found


def demo(*args: str) -> Result:
    return CliRunner().invoke(app, ["demo", "--examples", str(EXAMPLES), *args], catch_exceptions=False)


def test_six_emulated_hours_every_example_acts_and_no_invariant_breaks() -> None:
    result = demo("--hours", "6", "--speed", "0", "--json")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, "--json prints exactly one line on stdout"
    summary = json.loads(lines[0])

    examples = example_policies()
    assert set(summary["policies"]) == set(examples)
    assert summary["hours"] == 6
    for key, doc in examples.items():
        got = summary["policies"][key]
        assert set(got) == {"held", "created", "deleted", "missed"}
        if doc["spec"].get("suspend"):
            assert got == {"held": 0, "created": 0, "deleted": 0, "missed": 0}, key
        else:
            assert got["created"] > 0, key
            assert got["missed"] == 0, key
            # Nothing outside the demo touches these snapshots: what is held is what was created less what went.
            assert got["held"] == got["created"] - got["deleted"], key
    # Hourly on the hour from 00:00 to 06:00 (the 06:00 slot may fall in the last emulated minute).
    assert summary["policies"]["default/minimal-hourly"]["created"] in (6, 7)
    # 02:30 in Berlin (CET) is 01:30 UTC; Premium SSD v2 every 6 h in New York (EDT): 04:00 UTC.
    assert summary["policies"]["default/nightly-berlin"]["created"] == 1
    assert summary["policies"]["default/premium-v2"]["created"] == 1
    # Three claims hourly from 00:00, and a fourth added at 02:30, which takes its 02:00 slot at once (within the
    # starting deadline) and the later ones: without it, at most 3 x 7.
    assert summary["policies"]["default/postgres-cluster"]["created"] >= 3 * 6 + 4

    # minimal-hourly's daily drill: at 00:00, from its first snapshot. gfs's newest snapshot restored 15 minutes after
    # the middle hour (03:15): the 03:00 one, to a new disk that became Ready.
    assert set(summary["drills"]) == {"default/minimal-hourly"}
    drill = summary["drills"]["default/minimal-hourly"]
    assert drill["result"] == "Succeeded"
    assert drill["message"].startswith("1 succeeded in the run; last: disk-0-") and "20260327T0000Z" in drill["message"]
    assert set(summary["restores"]) == {"default/restore-gfs"}
    restored = summary["restores"]["default/restore-gfs"]
    assert restored["ready"] == "True"
    assert "disk-2-restored" in restored["message"] and "20260327T0300Z" in restored["message"]

    # postgres-data (one claim) publishes each snapshot as a VolumeSnapshot, which the snapshot controller makes ready.
    (published,) = summary["volumeSnapshots"]
    count = summary["policies"]["default/postgres-data"]["held"]
    assert published.startswith(f"VolumeSnapshots of postgres-data: {count} in namespace default, {count} ready to use")

    totals = summary["totals"]
    assert totals["invariant_violations"] == 0
    assert totals["throttled"] == 0
    assert totals["azure_calls"] == sum(totals["azure_calls_by_operation"].values())
    created = sum(p["created"] for p in summary["policies"].values())
    assert totals["azure_calls_by_operation"]["snapshots.put"] >= created


def test_plain_output_shows_the_table_and_the_summary_and_extra_disks_get_hourly_policies() -> None:
    result = demo("--hours", "2", "--speed", "0", "--disks", "5")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "POLICY" in out and "COUNT/CAP" in out and "NEXT SNAPSHOT" in out
    assert "hourly-disk-4" in out
    assert "Summary" in out
    assert "Invariants: all held" in out
    # The drill and the restore (applied at 01:15) print a line each as they happen, and one in the summary.
    assert re.search(r"^03-27 00:00  RestoreVerified  minimal-hourly +Restore drill of snapshot disk-0-", out, re.M)
    assert re.search(r"^03-27 01:15  Restored +restore-gfs +Disk disk-2-restored restored from snapshot", out, re.M)
    assert "Restore drill of minimal-hourly: Succeeded (1 succeeded in the run; last: disk-0-" in out
    assert "SnapshotRestore restore-gfs: Ready True, Disk disk-2-restored restored from snapshot disk-2-" in out


def test_a_missing_examples_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--examples", str(tmp_path / "none"), "--hours", "1"])
    assert result.exit_code == 2
    assert "no SnapshotPolicy examples" in result.output


def test_extra_disks_get_a_copy_of_the_hourly_example() -> None:
    policies = load_policies(EXAMPLES, 6)
    extra = {
        p["metadata"]["name"]: p["spec"]["disk"]["id"] for p in policies if p["metadata"]["name"].startswith("hourly-")
    }
    assert extra == {"hourly-disk-4": disk_id("disk-4"), "hourly-disk-5": disk_id("disk-5")}
    # One drill in the demo: the copies of minimal-hourly do not drill their disks.
    drilled = [p["metadata"]["name"] for p in policies if "restoreDrill" in p["spec"]]
    assert drilled == ["minimal-hourly"]
    assert len(load_policies(EXAMPLES, 2)) == len(example_policies())


# ---- the invariant checks themselves ---------------------------------------------------------------------------

START = datetime(2026, 3, 27, tzinfo=UTC)


def emulator() -> tuple[Emulator, ManualClock]:
    clock = ManualClock(START)
    emu = Emulator(clock, EmulatorConfig(lro_duration=timedelta(0)))
    for i in range(3):
        emu.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, f"disk-{i}")
    return emu, clock


def put(emu: Emulator, clock: ManualClock, name: str, disk: str, tags: dict[str, str]) -> None:
    body = {
        "location": "westeurope",
        "tags": tags,
        "properties": {
            "creationData": {"createOption": "Copy", "sourceResourceId": disk_id(disk)},
            "incremental": True,
        },
    }
    emu.store.create_snapshot(clock.now(), DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, name, body)


def ours(uid: str, slot: str) -> dict[str, str]:
    return {
        naming.TAG_MANAGED_BY: naming.MANAGED_BY_VALUE,
        naming.TAG_POLICY_UID: uid,
        naming.TAG_SLOT: slot,
        naming.TAG_KIND: naming.KIND_SCHEDULED,
    }


def test_a_clean_history_breaks_nothing() -> None:
    emu, clock = emulator()
    witness = Witness(emu, seed_unowned(emu, clock.now(), disks=3))
    assert len(witness.unowned) == 3
    put(emu, clock, "a-1", "disk-1", ours("uid-a", "2026-03-27T00:00:00Z"))
    clock.advance(timedelta(hours=1))
    put(emu, clock, "a-2", "disk-1", ours("uid-a", "2026-03-27T01:00:00Z"))
    assert witness.violations({"default/a": "uid-a"}) == []


def test_two_snapshots_for_one_slot_are_a_duplicate_even_after_one_is_gone() -> None:
    emu, clock = emulator()
    witness = Witness(emu)
    put(emu, clock, "a-1", "disk-1", ours("uid-a", "2026-03-27T00:00:00Z"))
    witness.sample()
    clock.advance(timedelta(minutes=10))
    emu.store.delete_snapshot(clock.now(), DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "a-1")
    put(emu, clock, "a-1-again", "disk-1", ours("uid-a", "2026-03-27T00:00:00Z"))
    # The same slot for another policy is no duplicate.
    put(emu, clock, "b-1", "disk-2", ours("uid-b", "2026-03-27T00:00:00Z"))
    # Nor is the same slot of one policy on another disk (a policy over claims snapshots each of its disks).
    put(emu, clock, "a-1-disk-2", "disk-2", ours("uid-a", "2026-03-27T00:00:00Z"))
    broken = witness.violations({"default/a": "uid-a", "default/b": "uid-b"})
    assert broken == ["duplicate slot: 2 snapshots for slot 2026-03-27T00:00:00Z of default/a (disk-1)"]


def test_a_copy_in_another_region_is_no_second_snapshot_of_its_slot() -> None:
    emu, clock = emulator()
    witness = Witness(emu)
    slot = "2026-03-27T00:00:00Z"
    put(emu, clock, "a-1", "disk-1", ours("uid-a", slot))
    emu.store.settle(clock.now())
    emu.add_resource_group(DEMO_SUBSCRIPTION, "rg-dr", "northeurope")
    source = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{DEMO_RESOURCE_GROUP}/providers/Microsoft.Compute/snapshots/a-1"
    body = {
        "location": "northeurope",
        "tags": {**ours("uid-a", slot), TAG_ROLE: ROLE_COPY},
        "properties": {"creationData": {"createOption": "CopyStart", "sourceResourceId": source}, "incremental": True},
    }
    emu.store.create_snapshot(clock.now(), DEMO_SUBSCRIPTION, "rg-dr", "a-1-c0000", body)
    assert witness.violations({"default/a": "uid-a"}) == []


def test_an_unowned_snapshot_deleted_and_a_limit_exceeded_are_reported() -> None:
    emu, clock = emulator()
    witness = Witness(emu, seed_unowned(emu, clock.now(), disks=3))
    clock.advance(timedelta(seconds=1))
    emu.store.delete_snapshot(clock.now(), DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-2-manual")
    clock.advance(timedelta(seconds=1))
    emu.snapshots()  # settles the delete
    with pytest.raises(ArmError, match="at most 7 incremental snapshots"):
        for i in range(8):
            put(emu, clock, f"burst-{i}", "disk-1", {})
    broken = witness.violations({})
    assert broken[0] == "unowned snapshot deleted: disk-2-manual"
    assert len(broken) == 2 and broken[1].startswith("limit exceeded: ") and "disk-1" in broken[1]


def test_a_disk_made_and_deleted_again_is_fine_but_one_there_before_deleted_is_reported() -> None:
    emu, _ = emulator()
    witness = Witness(emu)
    witness.disks = [str(d["id"]) for d in emu.disks()]
    emu.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-0-drill-scratch")  # as a drill or a restore makes
    assert witness.violations({}) == []
    emu.delete_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-0-drill-scratch")
    assert witness.violations({}) == []
    emu.delete_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-1")
    assert witness.violations({}) == ["disk deleted: disk-1"]


def test_snapshots_at_the_end_list_what_each_policy_holds() -> None:
    result = demo("--hours", "3", "--speed", "0", "--json", "--snapshots")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    listed: dict[str, list[dict[str, Any]]] = {}  # a policy over claims lists one row per disk
    for row in summary["snapshots"]:
        listed.setdefault(f"{row['namespace']}/{row['name']}", []).append(row)
    assert set(listed) == set(summary["policies"])
    assert len(listed["default/postgres-cluster"]) == 4  # the three first claims' disks and the one added
    for key, got in summary["policies"].items():
        assert sum(len(row["snapshots"]) for row in listed[key]) == got["held"], key
        assert sum(row["restorePoints"]["count"] for row in listed[key]) <= got["held"], key
    hourly = listed["default/minimal-hourly"][0]["snapshots"]
    assert hourly[0]["notes"][-1] == "newest good" and hourly[0]["held"]
    plain = demo("--hours", "1", "--speed", "0", "--snapshots")
    assert plain.exit_code == 0, plain.output
    tail = plain.stdout.split("$ azsnap snapshots -A\n", 1)[1]
    assert tail.startswith("default/count-and-age  disk disk-3: ")
    assert "NAME" in tail and "KEPT BY" in tail
