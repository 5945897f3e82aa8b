from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from azsnap.domain import naming
from azsnap.domain.models import Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.observed import Disk, Snapshot

DISK_ID = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.Compute/disks/data"
AZURE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]$|^[A-Za-z0-9]$")
SLOT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
REF = PolicyRef(namespace="prod", name="db", uid="11111111-2222-3333-4444-555555555555")
DISK = Disk(
    id=DISK_ID,
    name="data",
    subscription_id="00000000-0000-0000-0000-000000000001",
    resource_group="rg",
    location="westeurope",
    unique_id="aaaaaaaa-0000-0000-0000-000000000001",
)


def policy(tags: dict[str, str] | None = None) -> Policy:
    spec = SnapshotPolicySpec.model_validate(
        {
            "disk": {"id": DISK_ID},
            "schedule": {"cron": "@hourly"},
            "retention": {"keepLast": 3},
            "snapshot": {"tags": tags or {}},
        }
    )
    return Policy(ref=REF, spec=spec)


def snap(tags: dict[str, str], source: str | None = DISK_ID) -> Snapshot:
    return Snapshot(
        id=f"{DISK_ID}-snap",
        name="s",
        resource_group="rg",
        location="westeurope",
        source_resource_id=source,
        source_unique_id=DISK.unique_id,
        time_created=SLOT,
        provisioning_state="Succeeded",
        tags=tags,
    )


def test_name_shape() -> None:
    name = naming.snapshot_name("data", REF.uid, SLOT)
    assert name == f"data-{naming.policy_hash(REF.uid)}-20261123T1400Z"
    assert naming.snapshot_name("data", REF.uid, SLOT, on_demand=True) == name + "-od"
    assert AZURE_NAME.match(name)


def test_name_is_deterministic_and_uses_utc() -> None:
    berlin_slot = SLOT.astimezone(timezone(timedelta(hours=1)))
    assert naming.snapshot_name("data", REF.uid, SLOT) == naming.snapshot_name("data", REF.uid, berlin_slot)


def test_names_differ_by_policy_slot_and_kind() -> None:
    names = {
        naming.snapshot_name("data", REF.uid, SLOT),
        naming.snapshot_name("data", "another-uid", SLOT),
        naming.snapshot_name("data", REF.uid, SLOT + timedelta(hours=1)),
        naming.snapshot_name("data", REF.uid, SLOT, on_demand=True),
    }
    assert len(names) == 4


@pytest.mark.parametrize(
    "disk_name",
    ["x" * 80, "a" * 200, "_leading-underscore", "..dots..", "-", "weird name/with:chars", "ünïcode-disk"],
)
def test_long_and_odd_disk_names_stay_within_azure_rules(disk_name: str) -> None:
    for on_demand in (False, True):
        name = naming.snapshot_name(disk_name, REF.uid, SLOT, on_demand=on_demand)
        assert 1 <= len(name) <= naming.MAX_NAME
        assert AZURE_NAME.match(name), name
        assert name.endswith("-od") == on_demand


@settings(max_examples=200)
@given(disk_name=st.text(min_size=1, max_size=120), uid=st.uuids(), minutes=st.integers(0, 10**7))
def test_names_always_valid(disk_name: str, uid: object, minutes: int) -> None:
    slot = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    name = naming.snapshot_name(disk_name, str(uid), slot)
    assert len(name) <= naming.MAX_NAME
    assert AZURE_NAME.match(name)


def test_ownership_tags() -> None:
    tags = naming.ownership_tags(REF, DISK, SLOT)
    assert tags == {
        "azsnap-managed-by": "azsnap",
        "azsnap-policy-uid": REF.uid,
        "azsnap-policy": "prod/db",
        "azsnap-disk-uid": DISK.unique_id,
        "azsnap-slot": "2026-11-23T14:00:00Z",
        "azsnap-kind": "scheduled",
    }
    assert naming.ownership_tags(REF, DISK, SLOT, on_demand=True)["azsnap-kind"] == "on-demand"


def test_tags_stay_within_azure_rules() -> None:
    long_ref = PolicyRef(namespace="n" * 63, name="p" * 253, uid=REF.uid)
    tags = naming.snapshot_tags(
        Policy(ref=long_ref, spec=policy({f"k{i}": "v" * 256 for i in range(40)}).spec), DISK, SLOT
    )
    assert len(tags) <= 50
    for key, value in tags.items():
        assert 1 <= len(key) <= 512 and not re.search(r"[<>%&\\?/]", key)
        assert len(value) <= 256


def test_snapshot_tags_merge_user_tags_and_ours_win() -> None:
    tags = naming.snapshot_tags(policy({"team": "storage", "cost-center": "42"}), DISK, SLOT)
    assert tags["team"] == "storage"
    assert tags["cost-center"] == "42"
    assert tags[naming.TAG_POLICY_UID] == REF.uid
    assert naming.TAG_HOLD not in tags


def test_is_owned_needs_every_tag_and_the_source() -> None:
    good = naming.ownership_tags(REF, DISK, SLOT)
    assert naming.is_owned(snap(good), REF, DISK)
    assert naming.is_owned(snap(good, source=DISK_ID.upper()), REF, DISK)  # ARM IDs ignore case
    for key in (naming.TAG_MANAGED_BY, naming.TAG_POLICY_UID, naming.TAG_DISK_UID):
        assert not naming.is_owned(snap({k: v for k, v in good.items() if k != key}), REF, DISK)
        if key != naming.TAG_DISK_UID:
            assert not naming.is_owned(snap({**good, key: "other"}), REF, DISK)
    # lineage: another incarnation of the same ARM ID (recreated, restored, or a stale cached disk) stays the policy's
    assert naming.is_owned(snap({**good, naming.TAG_DISK_UID: "other"}), REF, DISK)
    assert not naming.is_owned(snap(good, source=None), REF, DISK)
    assert not naming.is_owned(snap(good, source=DISK_ID + "2"), REF, DISK)
    other_ref = PolicyRef(namespace="prod", name="db", uid="another-uid")
    assert not naming.is_owned(snap(good), other_ref, DISK)


def test_ownership_is_by_tags_not_by_name() -> None:
    name = naming.snapshot_name(DISK.name, REF.uid, SLOT)
    impostor = Snapshot(
        id="x",
        name=name,
        resource_group="rg",
        location="westeurope",
        source_resource_id=DISK_ID,
        source_unique_id=None,
        time_created=SLOT,
        provisioning_state="Succeeded",
        tags={},
    )
    assert not naming.is_owned(impostor, REF, DISK)


def test_slot_kind_and_hold() -> None:
    tags = naming.ownership_tags(REF, DISK, SLOT)
    assert naming.slot_of(snap(tags)) == SLOT
    assert naming.slot_of(snap({**tags, naming.TAG_SLOT: "yesterday"})) is None
    assert naming.slot_of(snap({})) is None
    assert not naming.is_on_demand(snap(tags))
    assert naming.is_on_demand(snap(naming.ownership_tags(REF, DISK, SLOT, on_demand=True)))
    assert not naming.is_held(snap(tags))
    assert naming.is_held(snap({**tags, naming.TAG_HOLD: ""}))
    assert naming.is_held(snap({**tags, "AZSNAP-HOLD": "legal"}))  # Azure tag keys ignore case


def test_slot_round_trip() -> None:
    assert naming.parse_slot(naming.format_slot(SLOT)) == SLOT
