"""What the policy handler does with a reconcile's report, for tests that drive the reconciler without kopf."""

from __future__ import annotations

from datetime import datetime

from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.reconciler.report import StatusReport


def fold_status(
    status: SnapshotPolicyStatus, report: StatusReport, *, ready_at: datetime | None = None
) -> SnapshotPolicyStatus:
    """The report's fields written over the status (None removes one), as the handler's merge patch does.

    With `ready_at`, the Ready condition carries the report's health reason as of that time.
    """
    merged = {**status.model_dump(by_alias=True, exclude_none=True, mode="json"), **report.status}
    if ready_at is not None:
        ready = {"type": "Ready", "status": "Unknown", "reason": report.health.reason, "lastTransitionTime": ready_at}
        merged["conditions"] = [ready]
    return SnapshotPolicyStatus.model_validate({k: v for k, v in merged.items() if v is not None})
