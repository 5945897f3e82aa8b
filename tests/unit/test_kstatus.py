from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.kstatus import KStatus, compute, ready_reached

from azsnap.domain.policy_status import Condition, SnapshotPolicyStatus

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def cond(kind: str, status: str, reason: str = "R", message: str = "") -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": "2026-03-01T00:00:00Z",
    }


def obj(*, generation: int | None = 2, status: dict[str, Any] | None = None, deleting: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "db", "namespace": "prod"}
    if generation is not None:
        metadata["generation"] = generation
    if deleting:
        metadata["deletionTimestamp"] = "2026-03-01T00:00:00Z"
    body: dict[str, Any] = {"apiVersion": "azsnap.io/v1alpha1", "kind": "SnapshotPolicy", "metadata": metadata}
    if status is not None:
        body["status"] = status
    return body


@pytest.mark.parametrize(
    ("body", "expected", "reason"),
    [
        pytest.param(
            obj(status={"observedGeneration": 2, "conditions": [cond("Ready", "True")]}),
            KStatus.CURRENT,
            "",
            id="ready",
        ),
        pytest.param(obj(status=None), KStatus.CURRENT, "", id="no-status-is-current-for-kstatus"),
        pytest.param(obj(generation=None, status={"observedGeneration": 7}), KStatus.CURRENT, "", id="no-generation"),
        pytest.param(
            obj(status={"observedGeneration": 1, "conditions": [cond("Ready", "True")]}),
            KStatus.IN_PROGRESS,
            "LatestGenerationNotObserved",
            id="old-generation",
        ),
        pytest.param(
            obj(status={"observedGeneration": 1, "conditions": [cond("Stalled", "True", "DiskNotFound")]}),
            KStatus.IN_PROGRESS,
            "LatestGenerationNotObserved",
            id="generation-beats-stalled",
        ),
        pytest.param(
            obj(
                status={
                    "observedGeneration": 2,
                    "conditions": [cond("Ready", "False"), cond("Reconciling", "True", "ProgressingWithRetry")],
                }
            ),
            KStatus.IN_PROGRESS,
            "ProgressingWithRetry",
            id="retrying",
        ),
        pytest.param(
            obj(
                status={
                    "observedGeneration": 2,
                    "conditions": [cond("Ready", "False"), cond("Stalled", "True", "AuthorizationFailed")],
                }
            ),
            KStatus.FAILED,
            "AuthorizationFailed",
            id="stalled",
        ),
        pytest.param(
            obj(
                status={
                    "observedGeneration": 2,
                    "conditions": [cond("Stalled", "True", "A"), cond("Reconciling", "True", "B")],
                }
            ),
            KStatus.FAILED,
            "A",
            id="first-abnormal-condition-wins",
        ),
        pytest.param(
            obj(
                status={"observedGeneration": 2, "conditions": [cond("Reconciling", "False"), cond("Stalled", "False")]}
            ),
            KStatus.CURRENT,
            "",
            id="abnormal-false-is-normal",
        ),
        pytest.param(
            obj(status={"observedGeneration": 2, "conditions": [cond("Stalled", "True")]}, deleting=True),
            KStatus.TERMINATING,
            "",
            id="terminating-first",
        ),
    ],
)
def test_kstatus_table(body: dict[str, Any], expected: KStatus, reason: str) -> None:
    result = compute(body)
    assert result.status is expected
    assert result.reason == reason


def test_message_names_both_generations() -> None:
    result = compute(obj(generation=5, status={"observedGeneration": 4}))
    assert result.message == "SnapshotPolicy generation is 5, but latest observed generation is 4"


def written(status: SnapshotPolicyStatus) -> dict[str, Any]:
    """The status document as the operator patches it (camelCase JSON)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def test_status_documents_from_the_operator_model() -> None:
    ready = SnapshotPolicyStatus(
        observed_generation=3,
        conditions=[
            Condition(type="Ready", status="True", reason="Succeeded", last_transition_time=T0, observed_generation=3),
            Condition(type="Reconciling", status="False", reason="Succeeded", last_transition_time=T0),
            Condition(type="Stalled", status="False", reason="Succeeded", last_transition_time=T0),
        ],
        next_snapshot_time=T0,
    )
    assert compute(obj(generation=3, status=written(ready))).status is KStatus.CURRENT
    assert ready_reached(obj(generation=3, status=written(ready)))
    assert compute(obj(generation=4, status=written(ready))).status is KStatus.IN_PROGRESS

    stalled = SnapshotPolicyStatus(
        observed_generation=3,
        conditions=[
            Condition(type="Ready", status="False", reason="DiskNotFound", last_transition_time=T0),
            Condition(
                type="Stalled",
                status="True",
                reason="DiskNotFound",
                message="fix spec.disk.id",
                last_transition_time=T0,
            ),
        ],
    )
    result = compute(obj(generation=3, status=written(stalled)))
    assert (result.status, result.message) == (KStatus.FAILED, "fix spec.disk.id")
    assert not ready_reached(obj(generation=3, status=written(stalled)))


def test_ready_reached_needs_ready_true() -> None:
    assert not ready_reached(obj(status=None))
    assert not ready_reached(obj(status={"conditions": [cond("Ready", "Unknown")]}))
    assert not ready_reached(obj(status={"conditions": ["garbage", cond("Reconciling", "True")]}))
