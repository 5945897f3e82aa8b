"""Hostile policies through the kopf handler: each ends Stalled naming the field, none raises, none writes to Azure.

The handler parses the body with `validate_manifest` and only then hands the policy to the reconciler; this drives
that whole path with `kopf.Body`/`kopf.Patch` against the in-memory cloud, which counts every call.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.support.crd import ROOT

from azsnap.clock import ManualClock
from azsnap.cloud.memory import MemoryCloud
from azsnap.domain.scope import ScopeGuard
from azsnap.domain.validation import validate_manifest
from azsnap.handlers import policy as handlers
from azsnap.handlers.runtime import MEMO_KEY, Runtime
from azsnap.metrics import Metrics
from azsnap.reconciler import Reconciler
from azsnap.settings import Settings

CORPUS = yaml.safe_load((ROOT / "tests" / "data" / "bad_policies.yaml").read_text())
BASE: dict[str, Any] = CORPUS["base"]
SUB = "00000000-0000-0000-0000-000000000000"
NOW = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)
WRITES = ("snapshots.create", "snapshots.delete")


def build(case: dict[str, Any]) -> dict[str, Any]:
    """The corpus case applied to the base spec (same rules as the corpus file's header)."""
    spec = copy.deepcopy(BASE)
    for path, value in (case.get("set") or {}).items():
        *parents, last = path.split(".")
        target = spec
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    for path in case.get("unset") or []:
        *parents, last = path.split(".")
        target = spec
        for part in parents:
            target = target[part]
        del target[last]
    return spec


def body(spec: Any, name: str = "p1") -> dict[str, Any]:
    return {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "generation": 1},
        "spec": spec,
        "status": {},
    }


class Harness:
    """A runtime on the in-memory cloud (one disk, the corpus's base disk), and the events handlers post."""

    def __init__(self, scope: ScopeGuard | None = None) -> None:
        self.clock = ManualClock(NOW)
        self.cloud = MemoryCloud(self.clock)
        self.cloud.add_disk(SUB, "rg-demo", "disk-0")
        reconciler = Reconciler(self.cloud, self.clock, scope=scope)
        settings = Settings.model_validate({"metrics_port": 0})
        self.runtime = Runtime(settings, self.clock, self.cloud, reconciler, Metrics(), owns_cloud=False)
        self.events: list[tuple[str, str, str]] = []

    async def reconcile(self, raw: dict[str, Any]) -> dict[str, Any]:
        patch = kopf.Patch()
        memo = kopf.Memo({MEMO_KEY: self.runtime})
        await handlers.reconcile(body=kopf.Body(raw), patch=patch, memo=memo)
        return dict(patch.get("status") or {})

    def writes(self) -> int:
        return sum(self.cloud.calls[op] for op in WRITES)


@pytest.fixture(autouse=True)
def _capture_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    posted: list[tuple[str, str, str]] = []

    def event(obj: Any, *, type: str, reason: str, message: str = "") -> None:
        posted.append((type, reason, message))

    monkeypatch.setattr(kopf, "event", event)
    return posted


def stalled(status: dict[str, Any]) -> dict[str, Any]:
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Stalled"]["status"] == "True", conditions
    assert conditions["Ready"]["status"] == "False"
    return conditions["Stalled"]


def names(message: str, field: str) -> bool:
    """The message names `field`: its full path, or its parent's path and its own name."""
    parent, _, leaf = field.rpartition(".")
    return field in message or (parent in message and leaf in message)


def ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["case"] for c in cases]


@pytest.mark.parametrize("case", CORPUS["bad"], ids=ids(CORPUS["bad"]))
async def test_every_bad_policy_stalls_naming_the_field_with_no_azure_call(
    case: dict[str, Any], _capture_events: list[Any]
) -> None:
    harness = Harness()
    status = await harness.reconcile(body(build(case)))
    condition = stalled(status)
    assert condition["reason"] == "InvalidSpec"
    assert names(condition["message"], case["field"]), condition["message"]
    assert "made no Azure call" in condition["message"]
    assert sum(harness.cloud.calls.values()) == 0
    assert status["observedGeneration"] == 1
    assert _capture_events == []


async def test_an_empty_spec_stalls_naming_every_required_field() -> None:
    harness = Harness()
    condition = stalled(await harness.reconcile(body({})))
    assert condition["reason"] == "InvalidSpec"
    for field in ("spec.schedule", "spec.retention"):
        assert f"{field}: required" in condition["message"]
    assert "spec: set exactly one of disk (an ARM ID), volumeClaim" in condition["message"]
    assert "; got none" in condition["message"]
    assert sum(harness.cloud.calls.values()) == 0


# -- valid shapes the reconciler still refuses ---------------------------------------------------------------------

DISK = BASE["disk"]["id"]
HOSTILE_BUT_VALID = [
    # another subscription's disk, and one the identity cannot see: a read, then Stalled naming spec.disk.id
    ("other-subscription", DISK.replace(SUB, "11111111-1111-1111-1111-111111111111"), "DiskNotFound"),
    ("no-such-disk", DISK.replace("disk-0", "disk-404"), "DiskNotFound"),
    ("shouting-id-of-a-missing-disk", DISK.replace("disk-0", "DISK-9").upper(), "DiskNotFound"),
]


@pytest.mark.parametrize(("label", "disk_id", "reason"), HOSTILE_BUT_VALID, ids=[c[0] for c in HOSTILE_BUT_VALID])
async def test_a_disk_azsnap_cannot_find_stalls_with_reads_only(label: str, disk_id: str, reason: str) -> None:
    harness = Harness()
    condition = stalled(await harness.reconcile(body({**BASE, "disk": {"id": disk_id}})))
    assert condition["reason"] == reason
    assert "spec.disk.id" in condition["message"]
    assert harness.writes() == 0
    assert harness.cloud.calls["snapshots.list"] <= 1  # one read, to count the snapshots azsnap holds of it


async def test_odd_casing_of_a_real_disk_is_the_same_disk() -> None:
    harness = Harness()
    upper = DISK.replace("resourceGroups", "RESOURCEGROUPS").replace("Microsoft.Compute", "MICROSOFT.COMPUTE")
    status = await harness.reconcile(body({**BASE, "disk": {"id": upper}}))
    assert {c["type"]: c["status"] for c in status["conditions"]}["Ready"] == "True"
    assert harness.cloud.calls["snapshots.create"] == 1


async def test_a_disk_outside_the_namespace_scope_stalls_with_no_call() -> None:
    guard = ScopeGuard.from_yaml("- namespaces: [team-a]\n  subscriptions: ['*']\n  diskResourceGroups: ['*']\n")
    harness = Harness(scope=guard)
    condition = stalled(await harness.reconcile(body(BASE)))
    assert condition["reason"] == "ScopeNotAllowed"
    assert sum(harness.cloud.calls.values()) == 0


# -- random malformed specs ----------------------------------------------------------------------------------------

FIELDS = [
    "disk.id",
    "schedule",
    "schedule.cron",
    "schedule.every",
    "schedule.timeZone",
    "schedule.startingDeadline",
    "schedule.jitter",
    "retention",
    "retention.keepLast",
    "retention.maxAge",
    "retention.daily",
    "retention.minKeep",
    "snapshot.resourceGroup",
    "snapshot.sku",
    "snapshot.tags",
    "snapshot.incremental",
    "suspend",
    "deletionPolicy",
    "sneaky",
]
texts = st.sampled_from(
    [
        "0h",
        "1h",
        "-1h",
        "5h",
        "999999w",
        "* * * * *",
        "0 0 30 2 *",
        "@daily",
        "@reboot",
        "Europe/Berlin",
        "Mars/Base",
        "Delete",
        "Standard_LRS",
        "azsnap-hold",
        "rg.",
        "",
        "\u202e\u0000",
        DISK,
        DISK.upper(),
        DISK.replace("disks", "snapshots"),
        DISK.replace("Microsoft.Compute", "Microsoft.Storage"),
    ]
)
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        texts,
        st.text(max_size=20),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.one_of(texts, st.text(max_size=6)), children, max_size=3)
    ),
    max_leaves=6,
)
changes = st.lists(st.tuples(st.sampled_from(FIELDS), values), min_size=1, max_size=4)


def mutate(edits: list[tuple[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(BASE)
    for path, value in edits:
        *parents, last = path.split(".")
        target: Any = spec
        for part in parents:
            target = target.setdefault(part, {}) if isinstance(target, dict) else None
        if isinstance(target, dict):
            target[last] = value
    return spec


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(edits=changes)
def test_random_specs_never_raise_and_invalid_ones_never_reach_azure(edits: list[tuple[str, Any]]) -> None:
    spec = mutate(edits)
    harness = Harness()
    status = asyncio.run(harness.reconcile(body(spec)))
    conditions = {c["type"]: c for c in status["conditions"]}
    accepted, errors = validate_manifest(body(spec))
    if accepted is None:
        assert conditions["Stalled"]["status"] == "True"
        assert conditions["Stalled"]["reason"] == "InvalidSpec"
        for error in errors:
            assert error.path in conditions["Stalled"]["message"]
        assert sum(harness.cloud.calls.values()) == 0
    else:
        # a valid policy is reconciled like any other; whatever Azure says, the handler reports, never raises
        assert {c["status"] for c in conditions.values()} <= {"True", "False"}


async def test_a_spec_that_is_not_a_mapping_stalls_instead_of_raising() -> None:
    from datetime import UTC, datetime

    import kopf

    from azsnap.clock import ManualClock
    from azsnap.cloud.memory import MemoryCloud
    from azsnap.handlers.policy import reconcile
    from azsnap.handlers.runtime import MEMO_KEY, Runtime
    from azsnap.metrics import Metrics
    from azsnap.reconciler import Reconciler
    from azsnap.settings import Settings

    clock = ManualClock(datetime(2026, 1, 5, tzinfo=UTC))
    cloud = MemoryCloud(clock)
    runtime = Runtime(
        settings=Settings(metrics_port=0),
        clock=clock,
        cloud=cloud,
        reconciler=Reconciler(cloud, clock),
        metrics=Metrics(),
    )
    body = kopf.Body(
        {
            "apiVersion": "azsnap.io/v1alpha1",
            "kind": "SnapshotPolicy",
            "metadata": {"name": "p", "namespace": "default", "uid": "u", "generation": 1},
            "spec": "not a mapping",
        }
    )
    patch = kopf.Patch()
    await reconcile(body=body, patch=patch, memo=kopf.Memo({MEMO_KEY: runtime}))
    stalled = next(c for c in patch["status"]["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["reason"] == "InvalidSpec"
    assert "spec: must be a mapping" in stalled["message"]
    assert sum(cloud.calls.values()) == 0
