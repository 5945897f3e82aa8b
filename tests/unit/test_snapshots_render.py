from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from tests.unit.test_retention import DISK, LIMITS, NOW, REF, UTC_ZONE, snap, spec

from azsnap.domain import naming
from azsnap.domain.explain import explain, restore_points
from azsnap.tools.cluster import Selection, select
from azsnap.tools.snapshots import PolicySnapshots, parse_policy, render, render_table


def row(**fields: object) -> PolicySnapshots:
    snaps = [
        replace(snap(NOW), size_bytes=64 * 1024**3),
        replace(snap(NOW - timedelta(hours=1), copying=True), size_bytes=512 * 1024**2),
        # taken ten minutes after midnight for the 23:50 slot of the day before
        replace(snap(NOW - timedelta(hours=12, minutes=10), created=NOW - timedelta(hours=12)), size_bytes=0),
    ]
    on_demand = snap(NOW - timedelta(minutes=30))
    tags = {**on_demand.tags, naming.TAG_KIND: naming.KIND_ON_DEMAND}
    snaps.append(replace(on_demand, tags=tags))
    base = PolicySnapshots(
        "prod",
        "db",
        DISK.id,
        disk_snapshots=6,
        snapshots=tuple(explain(spec(keepLast=2), UTC_ZONE, snaps, NOW, LIMITS)),
        points=restore_points(snaps, NOW),
    )
    return replace(base, **fields)


def test_the_table_shows_slot_state_size_and_the_reason() -> None:
    lines = render_table([row()]).splitlines()
    assert lines[0] == (
        "prod/db  disk data: 4 snapshot(s), 3 restore point(s) from 2026-06-15 00:00 to 2026-06-15 12:00; "
        "2 other snapshot(s) of the disk azsnap does not manage for this policy"
    )
    cells = [line.split("  ") for line in lines[2:]]
    text = "\n".join(lines[2:])
    assert "on demand" in lines[3] and "64 GiB" in lines[2]
    assert "Copying 40%" in text and "512 MiB" in text
    assert lines[-1].split()[3:5] == ["2026-06-14", "23:50"]  # a slot on another day than the time is written in full
    assert "deleted at the next reconcile: kept by no retention rule (keepLast 2, minKeep 1)" in lines[-1]
    assert all(len(c) > 1 for c in cells)


def test_a_policy_that_cannot_be_read_says_why_and_json_carries_it() -> None:
    broken = PolicySnapshots("prod", "bad", DISK.id, problem="the policy is invalid: spec.schedule: required")
    assert render_table([broken]) == "prod/bad  disk data: the policy is invalid: spec.schedule: required\n"
    (policy,) = json.loads(render([broken], as_json=True))["policies"]
    assert policy["problem"].startswith("the policy is invalid")
    assert policy["snapshots"] == [] and policy["restorePoints"] == {"count": 0, "newest": None, "oldest": None}
    assert render_table([]) == "No SnapshotPolicy matched.\n"


def test_selection_by_namespace_name_and_disk() -> None:
    def obj(ns: str, name: str, disk: str) -> dict[str, object]:
        return {"metadata": {"namespace": ns, "name": name}, "spec": {"disk": {"id": disk}}}

    objects = [obj("b", "y", DISK.id), obj("a", "x", DISK.id.upper()), obj("a", "z", "/other")]
    assert [o["metadata"]["name"] for o in select(objects, Selection(None))] == ["x", "z", "y"]
    assert [o["metadata"]["name"] for o in select(objects, Selection("a"))] == ["x", "z"]
    assert [o["metadata"]["name"] for o in select(objects, Selection(None, disk=DISK.id))] == ["x", "y"]
    assert [o["metadata"]["name"] for o in select(objects, Selection("a", policy="z"))] == ["z"]


def test_parse_policy_names_the_bad_field() -> None:
    good = {
        "metadata": {"namespace": REF.namespace, "name": REF.name, "uid": REF.uid},
        "spec": {"disk": {"id": DISK.id}, "schedule": {"every": "1h"}, "retention": {"keepLast": 1}},
    }
    policy, problem = parse_policy(good)
    assert policy is not None and policy.ref == REF and problem == ""
    bad = {**good, "spec": {**good["spec"], "schedule": {"every": "soon"}}}
    policy, problem = parse_policy(bad)
    assert policy is None and "spec.schedule.every" in problem
