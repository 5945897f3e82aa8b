"""The Argo CD health check, run by a real Lua interpreter in a sandbox shaped like Argo CD's."""

import pathlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support import argocd
from tests.support.argocd import RUNTIMES, SCRIPT

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOW = datetime(2026, 3, 1, 0, 30, tzinfo=UTC)


def health(obj: dict[str, Any], now: datetime | None = NOW, lua: str = "lua5.1") -> tuple[str, str]:
    return argocd.health(obj, now, lua)


def ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def cond(kind: str, status: str, reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": kind, "status": status, "reason": reason, "message": message, "lastTransitionTime": ts(NOW)}


def policy(
    *,
    generation: int = 3,
    observed: int | None = 3,
    conditions: list[dict[str, str]] | None = None,
    next_time: str | None = ts(NOW + timedelta(minutes=30)),
    suspend: bool | None = None,
    status: bool = True,
    deleting: bool = False,
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "db", "namespace": "prod", "generation": generation},
        "spec": {"disk": {"id": "/subscriptions/x"}, "schedule": {"cron": "0 * * * *"}},
    }
    if suspend is not None:
        obj["spec"]["suspend"] = suspend
    if deleting:
        obj["metadata"]["deletionTimestamp"] = ts(NOW)
    if status:
        st_: dict[str, Any] = {"conditions": conditions if conditions is not None else []}
        if observed is not None:
            st_["observedGeneration"] = observed
        if next_time is not None:
            st_["nextSnapshotTime"] = next_time
        obj["status"] = st_
    return obj


READY = cond("Ready", "True", "Succeeded", "Last snapshot db-20260301-0000 succeeded")
NOT_RECONCILING = cond("Reconciling", "False", "Succeeded")
NOT_STALLED = cond("Stalled", "False", "Succeeded")

CASES = [
    pytest.param(policy(conditions=[READY, NOT_RECONCILING, NOT_STALLED]), "Healthy", "succeeded", id="steady-state"),
    pytest.param(policy(conditions=[READY], next_time=None), "Healthy", "succeeded", id="ready-without-next-time"),
    pytest.param(policy(status=False), "Progressing", "generation 3", id="no-status-yet"),
    pytest.param(policy(observed=None, conditions=[READY]), "Progressing", "generation 3", id="never-observed"),
    pytest.param(
        policy(generation=4, observed=3, conditions=[READY]), "Progressing", "generation 4", id="new-generation"
    ),
    pytest.param(
        policy(
            conditions=[
                cond("Ready", "False", "Throttled", "Azure answered 429; retrying at 00:35"),
                cond("Reconciling", "True", "ProgressingWithRetry", "Azure answered 429; retrying at 00:35"),
            ]
        ),
        "Degraded",
        "429",
        id="retrying-is-not-ready",
    ),
    pytest.param(
        policy(
            conditions=[
                cond("Ready", "False", "DiskNotFound"),
                cond("Stalled", "True", "DiskNotFound", "Disk gone; fix spec.disk.id"),
            ]
        ),
        "Degraded",
        "fix spec.disk.id",
        id="stalled",
    ),
    pytest.param(
        policy(conditions=[cond("Stalled", "True", "ScopeNotAllowed"), cond("Reconciling", "True", "X")]),
        "Degraded",
        "ScopeNotAllowed",
        id="stalled-beats-reconciling-and-falls-back-to-reason",
    ),
    pytest.param(
        policy(conditions=[READY], next_time=ts(NOW - timedelta(hours=1, seconds=1))),
        "Degraded",
        "has not been taken",
        id="overdue-by-more-than-an-hour",
    ),
    pytest.param(
        policy(conditions=[READY], next_time=ts(NOW - timedelta(minutes=59))),
        "Healthy",
        "succeeded",
        id="late-but-within-the-hour",
    ),
    pytest.param(
        policy(
            conditions=[cond("Reconciling", "True", "ProgressingWithRetry", "retrying")],
            next_time=ts(NOW - timedelta(hours=3)),
        ),
        "Degraded",
        "2026-02-28T21:30:00Z",
        id="retrying-for-too-long",
    ),
    pytest.param(
        policy(conditions=[cond("Ready", "False", "SnapshotFailed", "")]), "Degraded", "SnapshotFailed", id="not-ready"
    ),
    pytest.param(policy(conditions=[cond("Ready", "Unknown", "Starting")]), "Progressing", "Ready", id="ready-unknown"),
    pytest.param(policy(conditions=[]), "Progressing", "Ready", id="no-conditions"),
    pytest.param(
        policy(suspend=True, conditions=[cond("Ready", "True", "Suspended", "Suspended: spec.suspend is true")]),
        "Suspended",
        "suspended",
        id="suspended",
    ),
    pytest.param(
        policy(suspend=True, generation=9, observed=1, conditions=[READY]),
        "Progressing",
        "generation 9",
        id="suspend-not-yet-observed-is-progressing",
    ),
    pytest.param(
        policy(
            suspend=True,
            conditions=[
                cond("Ready", "False", "ScopeNotAllowed"),
                cond("Stalled", "True", "ScopeNotAllowed", "namespace prod may not use subscription x"),
            ],
        ),
        "Degraded",
        "may not use",
        id="stalled-beats-suspended",
    ),
    pytest.param(
        policy(suspend=True, conditions=[cond("Ready", "False", "SnapshotFailed", "snapshot db-1 ended Failed")]),
        "Degraded",
        "ended Failed",
        id="not-ready-beats-suspended",
    ),
    pytest.param(
        policy(
            conditions=[
                cond("Ready", "False", "SnapshotsOverdue", "newest good snapshot is 6h old"),
                cond("Stalled", "True", "SnapshotsOverdue", "newest good snapshot is 6h old"),
            ]
        ),
        "Degraded",
        "6h old",
        id="overdue",
    ),
    pytest.param(
        policy(conditions=[READY], deleting=True), "Progressing", "deletionPolicy", id="deleting-is-progressing"
    ),
    pytest.param(
        policy(conditions=[cond("Stalled", "True", "AuthorizationFailed")], deleting=True, suspend=True),
        "Progressing",
        "Being deleted",
        id="deleting-beats-stalled-and-suspended",
    ),
    pytest.param(
        policy(generation=4, observed=3, conditions=[cond("Stalled", "True", "DiskNotFound")]),
        "Progressing",
        "generation 4",
        id="new-generation-beats-stalled",
    ),
    pytest.param(policy(suspend=False, conditions=[READY]), "Healthy", "succeeded", id="suspend-false"),
]


@pytest.mark.parametrize("lua", sorted(RUNTIMES))
@pytest.mark.parametrize(("obj", "expected", "in_message"), CASES)
def test_health_table(obj: dict[str, Any], expected: str, in_message: str, lua: str) -> None:
    status, message = health(obj, lua=lua)
    assert status == expected
    assert in_message in message


@pytest.mark.parametrize(
    ("now", "cutoff"),
    [
        (datetime(2026, 3, 1, 0, 30, 0, tzinfo=UTC), datetime(2026, 2, 28, 23, 30, 0, tzinfo=UTC)),
        (datetime(2028, 3, 1, 0, 20, 0, tzinfo=UTC), datetime(2028, 2, 29, 23, 20, 0, tzinfo=UTC)),
        (datetime(2100, 3, 1, 0, 0, 0, tzinfo=UTC), datetime(2100, 2, 28, 23, 0, 0, tzinfo=UTC)),
        (datetime(2027, 1, 1, 0, 5, 9, tzinfo=UTC), datetime(2026, 12, 31, 23, 5, 9, tzinfo=UTC)),
        (datetime(2026, 5, 1, 0, 59, 59, tzinfo=UTC), datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_overdue_cutoff_across_day_month_year_and_leap_days(now: datetime, cutoff: datetime) -> None:
    assert health(policy(conditions=[READY], next_time=ts(cutoff - timedelta(seconds=1))), now)[0] == "Degraded"
    assert health(policy(conditions=[READY], next_time=ts(cutoff)), now)[0] == "Healthy"


@settings(max_examples=150, deadline=None)
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1)))
def test_overdue_cutoff_is_exactly_one_hour_for_any_now(naive: datetime) -> None:
    now = naive.replace(tzinfo=UTC, microsecond=0)
    cutoff = now - timedelta(hours=1)
    assert health(policy(conditions=[READY], next_time=ts(cutoff - timedelta(seconds=1))), now)[0] == "Degraded"
    assert health(policy(conditions=[READY], next_time=ts(cutoff + timedelta(seconds=1))), now)[0] == "Healthy"


def test_real_clock_through_argo_safe_os_date() -> None:
    # The sandbox's os.date is the interpreter's own here: the script works against the real UTC clock.
    real_now = datetime.now(UTC)
    fresh = policy(conditions=[READY], next_time=ts(real_now + timedelta(hours=1)))
    stale = policy(conditions=[READY], next_time=ts(real_now - timedelta(hours=2)))
    assert health(fresh, now=None)[0] == "Healthy"
    assert health(stale, now=None)[0] == "Degraded"


def test_script_uses_no_library_argo_cd_withholds() -> None:
    code = "\n".join(line.split("--", 1)[0] for line in SCRIPT.splitlines())
    for forbidden in ("string.", "math.", "io.", "require", "os.execute", "os.getenv", ":sub(", ":match(", ":find("):
        assert forbidden not in code


def test_install_doc_embeds_the_packaged_script() -> None:
    doc = (ROOT / "docs" / "install.md").read_text()
    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "name: argocd-cm" in b]
    assert len(blocks) == 1, "docs/install.md must show the argocd-cm ConfigMap once"
    assert blocks[0]["data"]["resource.customizations.health.azsnap.io_SnapshotPolicy"] == SCRIPT
