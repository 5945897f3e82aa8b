"""The status side of the SnapshotPolicy handlers: the health verdict behind the conditions, and the policy's metrics."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import kopf

from azsnap.cloud.accounting import RequestStats
from azsnap.domain.conditions import Health, HealthState
from azsnap.domain.health import BackupFacts, assess, freshness
from azsnap.domain.models import Policy
from azsnap.domain.volumes import policy_offset
from azsnap.handlers.runtime import Runtime
from azsnap.reconciler import StatusReport

__all__ = ["record_metrics", "verdict"]


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _timestamp(value: Any) -> float | None:
    when = _time(value)
    return None if when is None else when.timestamp()


def verdict(
    body: kopf.Body, policy: Policy | None, report: StatusReport, current: Mapping[str, Any], now: datetime
) -> Health:
    """The health to write: the reconcile's own, or what the policy's backups say against its schedule."""
    if policy is None:
        return report.health
    status = {**current, **report.status}
    spec = policy.spec
    last = status.get("lastSnapshot") or {}
    facts = BackupFacts(
        schedule=spec.schedule,
        offset=policy_offset(spec),
        suspended=spec.suspend,
        created=_time(body.metadata.get("creationTimestamp")),
        last_success=_time(status.get("lastSuccessfulSnapshotTime")),
        last_snapshot_name=last.get("name"),
        last_snapshot_state=last.get("state"),
        accounted_until=_time(status.get("slotsAccountedUntil")),
        missed_now=report.missed_slots,
        over_budget=report.over_budget,
    )
    return assess(report.health, facts, current.get("conditions") or [], now)


def record_metrics(
    runtime: Runtime,
    body: kopf.Body,
    policy: Policy | None,
    report: StatusReport,
    health: Health,
    status: Mapping[str, Any],
    elapsed: float,
) -> None:
    """The policy's counters and gauges after a reconcile (`status` as now written), and the Azure call counters."""
    metrics = runtime.metrics
    ns, name = body.metadata.namespace or "", body.metadata.name or ""
    metrics.reconcile_duration(elapsed, str(health.state))
    stats = getattr(runtime.cloud, "stats", None)
    if isinstance(stats, RequestStats):
        metrics.sync_azure(stats)
    for _ in report.created:
        metrics.snapshot_event(ns, name, "created")
    for _ in report.deleted:
        metrics.snapshot_event(ns, name, "deleted")
    for _ in report.failed:
        metrics.snapshot_event(ns, name, "failed")
    metrics.failed_seen(ns, name, report.failed_seen, counted=report.failed)
    metrics.slots_missed(ns, name, len(report.missed_slots))
    metrics.copy_state(ns, name, status.get("copies") or [])
    last_success = _timestamp(status.get("lastSuccessfulSnapshotTime"))
    if last_success is None:
        # Before the first success: the policy's creation time, so `time() - last_success > stale_after` fires
        # for a policy that has never succeeded once it is older than its schedule allows.
        last_success = _timestamp(body.metadata.get("creationTimestamp"))
    stale_after = None
    suspended = policy is not None and policy.spec.suspend
    if policy is not None and not policy.spec.suspend:
        spec = policy.spec
        fresh = freshness(spec.schedule, policy_offset(spec), runtime.clock.now())
        if fresh is not None:
            stale_after = fresh.stale_after.total_seconds()
    metrics.policy_state(
        ns,
        name,
        held=int(status.get("snapshotCount") or 0),
        last_success=last_success,
        ready=health.state is HealthState.READY,
        stalled=health.state is HealthState.STALLED,
        suspended=suspended,
        stale_after=stale_after,
    )
