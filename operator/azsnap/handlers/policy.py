"""Thin kopf handlers for SnapshotPolicy: parse, call the reconciler, write status, post events."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from azsnap.domain.conditions import Health, HealthState, conditions_for
from azsnap.domain.models import (
    API_GROUP,
    API_VERSION,
    KIND,
    PLURAL,
    Policy,
    PolicyRef,
    SnapshotPolicyStatus,
)
from azsnap.domain.validation import format_errors, validate_manifest
from azsnap.handlers.runtime import MEMO_KEY, Runtime
from azsnap.handlers.startup import FINALIZER
from azsnap.handlers.status import record_metrics, verdict
from azsnap.reconciler import StatusReport

__all__ = ["ANNOTATION_SNAPSHOT_NOW", "finalize", "reconcile", "tick"]

#: Annotate a policy with this key (any new value) to take one snapshot now.
ANNOTATION_SNAPSHOT_NOW = f"{API_GROUP}/snapshot-now"
#: How often each policy's timer checks whether its planned wake-up time has come (no API call when not).
TICK_SECONDS = float(os.environ.get("AZSNAP_TICK_SECONDS") or 60)
_STALLED_RECHECK = timedelta(minutes=10)
_STATUS_KEYS = frozenset(f.alias or name for name, f in SnapshotPolicyStatus.model_fields.items())

_RESOURCE: dict[str, Any] = {"group": API_GROUP, "version": API_VERSION, "plural": PLURAL}
logger = logging.getLogger(__name__)


def _status_model(status: Mapping[str, Any]) -> SnapshotPolicyStatus:
    """The status as azsnap wrote it; unknown keys are ignored, a damaged status starts afresh."""
    known = {k: v for k, v in status.items() if k in _STATUS_KEYS}
    try:
        return SnapshotPolicyStatus.model_validate(known)
    except ValidationError:
        logger.warning("status could not be read back; starting from an empty status")
        return SnapshotPolicyStatus()


def _policy(body: kopf.Body) -> tuple[Policy | None, str]:
    manifest = {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "spec": body.get("spec")}
    spec, errors = validate_manifest(manifest)
    if spec is None or errors:
        return None, format_errors(errors)
    meta = body.metadata
    ref = PolicyRef(
        namespace=meta.namespace or "",
        name=meta.name or "",
        uid=meta.uid or "",
        generation=int(meta.get("generation") or 1),
    )
    return Policy(ref=ref, spec=spec), ""


async def _reconcile(body: kopf.Body, patch: kopf.Patch, runtime: Runtime, *, only_if_due: bool = False) -> None:
    meta = body.metadata
    uid = meta.uid or ""
    generation = meta.get("generation")
    async with runtime.lock(uid):
        if only_if_due and not _due(runtime, uid):
            return  # another handler reconciled while this one waited for the lock (e.g. resume at start-up)
        current = runtime.written.get(uid) or dict(body.status)
        now = runtime.clock.now()
        policy, problems = _policy(body)
        started = asyncio.get_running_loop().time()
        if policy is None:
            health = Health(
                HealthState.STALLED,
                "InvalidSpec",
                f"The policy is invalid: {problems}. Fix the spec; azsnap made no Azure call.",
            )
            report = StatusReport(health=health, status={}, events=(), next_time=now + _STALLED_RECHECK)
        else:
            token = meta.annotations.get(ANNOTATION_SNAPSHOT_NOW)
            report = await runtime.reconciler.reconcile(policy, _status_model(current), on_demand_token=token)
        elapsed = asyncio.get_running_loop().time() - started

        health = verdict(body, policy, report, current, now)
        conditions = conditions_for(health, current.get("conditions") or [], now=now, generation=generation)
        new_status: dict[str, Any] = {**report.status, "conditions": conditions, "observedGeneration": generation}
        for key, value in new_status.items():
            patch.status[key] = value
        written = runtime.written[uid] = {**current, **new_status}
        runtime.wakeups[uid] = report.next_time
        if health.state is HealthState.READY:
            runtime.failures.pop(uid, None)
        else:
            runtime.failures[uid] = runtime.failures.get(uid, 0) + 1

        for event in report.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        record_metrics(runtime, body, policy, report, health, written, elapsed)
        logger.info(
            "reconciled",
            extra={
                "policy": f"{meta.namespace}/{meta.name}",
                "state": str(health.state),
                "reason": health.reason,
                "snapshots_created": list(report.created),
                "snapshots_deleted": list(report.deleted),
                "next": report.next_time.isoformat(),
            },
        )


@kopf.on.resume(**_RESOURCE)
@kopf.on.create(**_RESOURCE)
@kopf.on.update(**_RESOURCE)
async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Create, update (spec or the on-demand annotation) and resume all reconcile the same way."""
    await _reconcile(body, patch, memo[MEMO_KEY])


@kopf.timer(**_RESOURCE, interval=TICK_SECONDS)
async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **_: Any) -> None:
    """Reconcile when the plan's wake-up time has come; otherwise do nothing (no API call).

    kopf starts a timer as soon as it sees a new object, before it has put the finalizer on it and before the
    create (or resume) handler ran. The timer waits for both: an Azure write made before the finalizer could be
    left behind by a deletion, and a first reconcile here would only repeat the create handler's.
    """
    runtime: Runtime = memo[MEMO_KEY]
    uid = body.metadata.uid or ""
    if FINALIZER not in (body.metadata.get("finalizers") or []) or uid not in runtime.wakeups:
        return
    if _due(runtime, uid):
        await _reconcile(body, patch, runtime, only_if_due=True)


def _due(runtime: Runtime, uid: str) -> bool:
    due = runtime.wakeups.get(uid)
    return due is None or runtime.clock.now() >= due


@kopf.on.delete(**_RESOURCE)
async def finalize(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Retain or delete the policy's own snapshots; the finalizer goes only when that is done."""
    runtime: Runtime = memo[MEMO_KEY]
    uid = body.metadata.uid or ""
    policy, problems = _policy(body)
    if policy is None:
        logger.warning("deleting an invalid policy: its snapshots are retained", extra={"problems": problems})
        runtime.forget(uid)
        return
    async with runtime.lock(uid):
        report = await runtime.reconciler.finalize(policy)
    for event in report.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if not report.done:
        raise kopf.TemporaryError(report.message, delay=max(1.0, report.retry_after))
    runtime.metrics.forget_policy(body.metadata.namespace or "", body.metadata.name or "")
    runtime.forget(uid)
    logger.info(
        "finalized", extra={"policy": f"{body.metadata.namespace}/{body.metadata.name}", "result": report.message}
    )
