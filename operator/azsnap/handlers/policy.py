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
from azsnap.domain.health import with_drill
from azsnap.domain.models import API_GROUP, API_VERSION, KIND, PLURAL, Policy, PolicyRef
from azsnap.domain.policy_status import SnapshotPolicyStatus
from azsnap.domain.targets import ClaimView
from azsnap.domain.validation import format_errors, validate_manifest
from azsnap.domain.volumes import target_text
from azsnap.handlers.restore import driller
from azsnap.handlers.runtime import MEMO_KEY, Runtime
from azsnap.handlers.startup import FINALIZER
from azsnap.handlers.status import record_metrics, verdict
from azsnap.handlers.volume_snapshots import publisher
from azsnap.handlers.volumes import IndexedClaims
from azsnap.reconciler import StatusReport
from azsnap.reconciler.drill import DrillReport

__all__ = ["ANNOTATION_SNAPSHOT_NOW", "finalize", "reconcile", "tick"]

#: Annotate a policy with this key (any new value) to take one snapshot now.
ANNOTATION_SNAPSHOT_NOW = f"{API_GROUP}/snapshot-now"
#: Longest a policy's timer sleeps before it looks at its wake-up time again, in memory. Its wake-up time (the next
#: slot, a retry, or the hourly drift check) and a spec change wake it sooner.
TICK_SECONDS = float(os.environ.get("AZSNAP_TICK_SECONDS") or 300)
#: kopf's pause between two calls of the timer: the timer's own wait does the sleeping.
_TIMER_GAP = 1.0
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


async def _reconcile(
    body: kopf.Body, patch: kopf.Patch, runtime: Runtime, claims: ClaimView | None, *, only_if_due: bool = False
) -> None:
    meta = body.metadata
    uid = meta.uid or ""
    generation = meta.get("generation")
    async with runtime.lock(uid):
        if only_if_due and not _due(runtime, uid):
            return  # another handler reconciled while this one waited for the lock (e.g. resume at start-up)
        runtime.woken.discard(uid)  # a claim's change from now on may come after this reconcile read the claims
        current = runtime.written.get(uid) or dict(body.status)
        now = runtime.clock.now()
        policy, problems = _policy(body)
        drill: DrillReport | None = None
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
            runtime.claim_interest.remember(uid, policy.ref.namespace, policy.spec)
            report = await runtime.reconciler.reconcile(
                policy, _status_model(current), on_demand_token=token, claims=claims
            )
            drill = await driller(runtime).step(policy, {**current, **report.status}, claims=claims)
            report = drill.merged(report)
            published = await publisher(runtime).step(policy, {**current, **report.status}, claims)
            report = published.merged(report)
        elapsed = asyncio.get_running_loop().time() - started

        last_drill = {**current, **report.status}.get("lastVerifiedRestore")
        health = with_drill(verdict(body, policy, report, current, now), last_drill)
        conditions = conditions_for(health, current.get("conditions") or [], now=now, generation=generation)
        new_status: dict[str, Any] = {**report.status, "conditions": conditions, "observedGeneration": generation}
        if policy is not None and policy.spec.disk is not None:  # one disk: `Disks` says whether it is Ready
            new_status["disksReady"] = "1/1" if health.state is HealthState.READY else "0/1"
        for key, value in new_status.items():
            patch.status[key] = value
        written = runtime.written[uid] = {**current, **new_status}
        runtime.claim_interest.remember_listed(uid, written, claims)
        # A claim's change while this reconcile ran woke the policy: reconcile again now, not at the next slot.
        runtime.wakeups[uid] = min(report.next_time, now) if uid in runtime.woken else report.next_time
        runtime.nudge(uid).set()

        for event in report.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        record_metrics(runtime, body, policy, report, health, written, elapsed)
        if drill is not None and drill.finished is not None:
            result, seconds = drill.finished
            runtime.metrics.restore_drill(meta.namespace or "", meta.name or "", result, seconds, now.timestamp())
        _log_outcome(body, policy, report, health, changed=_flipped(current.get("conditions"), conditions))


def _flipped(before: Any, after: list[dict[str, Any]]) -> bool:
    """Whether a condition's status or reason changed (a routine reconcile leaves them as they were)."""

    def key(conditions: Any) -> set[tuple[Any, ...]]:
        return {(c.get("type"), c.get("status"), c.get("reason")) for c in conditions or [] if isinstance(c, dict)}

    return key(before) != key(after)


def _log_outcome(
    body: kopf.Body, policy: Policy | None, report: StatusReport, health: Health, *, changed: bool
) -> None:
    """One line for what a reconcile did; at INFO only when it did something (or the policy's health changed)."""
    happened = report.created or report.deleted or report.failed or report.missed_slots
    level = logging.INFO if happened or changed else logging.DEBUG
    if health.state is not HealthState.READY and changed:
        level = logging.WARNING
    if not logger.isEnabledFor(level):
        return
    meta = body.metadata
    logger.log(
        level,
        "reconciled" if happened or changed else "nothing due",
        extra={
            "policy": f"{meta.namespace}/{meta.name}",
            "disk": None if policy is None else target_text(policy.spec),
            "state": str(health.state),
            "reason": health.reason,
            "snapshots_created": list(report.created),
            "snapshots_deleted": list(report.deleted),
            "snapshots_failed": list(report.failed),
            "slots_missed": [slot.isoformat() for slot in report.missed_slots],
            "next": report.next_time.isoformat(),
        },
    )


async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    """Create, update (spec or the on-demand annotation) and resume all reconcile the same way."""
    await _reconcile(body, patch, memo[MEMO_KEY], IndexedClaims.from_kwargs(kwargs))


async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    """Sleep until the plan's wake-up time (or a spec change, or the policy's deletion), then reconcile once.

    kopf calls the timer again a second after it returns; between two wake-ups the policy costs one sleeping task.
    kopf starts a timer as soon as it sees a new object, before it has put the finalizer on it and before the
    create (or resume) handler ran. The timer waits for both: an Azure write made before the finalizer could be
    left behind by a deletion, and a first reconcile here would only repeat the create handler's.
    """
    runtime: Runtime = memo[MEMO_KEY]
    stopped: kopf.DaemonStopped = kwargs["stopped"]  # kopf passes it to timers; its TimerFn type does not say so
    uid = body.metadata.uid or ""
    nudge = runtime.nudge(uid)
    relay = asyncio.ensure_future(_relay(stopped, nudge))
    try:
        while not stopped:
            nudge.clear()
            ready = FINALIZER in (body.metadata.get("finalizers") or []) and uid in runtime.wakeups
            if ready and _due(runtime, uid):
                await _reconcile(body, patch, runtime, IndexedClaims.from_kwargs(kwargs), only_if_due=True)
                return
            nap = TICK_SECONDS
            if ready:
                nap = min(nap, (runtime.wakeups[uid] - runtime.clock.now()).total_seconds())
            try:
                async with asyncio.timeout(max(nap, 0.0)):
                    await nudge.wait()
            except TimeoutError:
                pass
    finally:
        relay.cancel()


async def _relay(stopped: kopf.DaemonStopped, nudge: asyncio.Event) -> None:
    """Wake the sleeping timer when kopf stops it (the policy is being deleted, or the operator stops)."""
    await stopped.wait()
    nudge.set()


def _due(runtime: Runtime, uid: str) -> bool:
    due = runtime.wakeups.get(uid)
    return due is None or runtime.clock.now() >= due


async def finalize(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """Retain or delete the policy's own snapshots; the finalizer goes only when that is done."""
    runtime: Runtime = memo[MEMO_KEY]
    uid = body.metadata.uid or ""
    policy, problems = _policy(body)
    if policy is None:
        logger.warning("deleting an invalid policy: its snapshots are retained", extra={"problems": problems})
        runtime.forget(uid)
        return
    async with runtime.lock(uid):
        claims = IndexedClaims.from_kwargs(kwargs)
        report = await runtime.reconciler.finalize(policy, status=_status_model(dict(body.status)), claims=claims)
    for event in report.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if not report.done:
        raise kopf.TemporaryError(report.message, delay=max(1.0, report.retry_after))
    published = await publisher(runtime).finalize(policy, dict(body.status))
    for event in published.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    runtime.metrics.forget_policy(body.metadata.namespace or "", body.metadata.name or "")
    runtime.forget(uid)
    logger.info(
        "finalized", extra={"policy": f"{body.metadata.namespace}/{body.metadata.name}", "result": report.message}
    )


def register(registry: kopf.OperatorRegistry) -> None:
    """Put the policy handlers into `registry` (under the ids kopf gives their functions, as decorators would)."""
    for on in (kopf.on.update, kopf.on.create, kopf.on.resume):
        on(**_RESOURCE, registry=registry)(reconcile)
    kopf.timer(**_RESOURCE, registry=registry, interval=_TIMER_GAP)(tick)
    kopf.on.delete(**_RESOURCE, registry=registry)(finalize)
