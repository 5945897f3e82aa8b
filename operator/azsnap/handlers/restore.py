"""Thin kopf handlers for SnapshotRestore: parse, look up the policy, call the restore flow, write status, post events.

Registered only when the operator serves restores (`AZSNAP_RESTORES`): `register` puts them in a kopf registry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any, Final

import kopf
from pydantic import ValidationError

from azsnap.domain.conditions import Health, HealthState, conditions_for
from azsnap.domain.models import API_GROUP, API_VERSION, Policy, PolicyRef, SnapshotPolicySpec
from azsnap.domain.models import PLURAL as POLICY_PLURAL
from azsnap.domain.restore import PLURAL, RestoreRef, SnapshotRestoreSpec
from azsnap.handlers.runtime import MEMO_KEY, Runtime
from azsnap.handlers.startup import FINALIZER
from azsnap.reconciler.drill import Driller
from azsnap.reconciler.report import StatusReport
from azsnap.reconciler.restore import RestoreReconciler, RestoreScope

__all__ = ["POLICIES_INDEX", "driller", "register", "restorer"]

#: The keyword under which kopf hands the index of SnapshotPolicies to the restore handlers.
POLICIES_INDEX: Final = "azsnap_restore_policies"
#: How often a restore's timer looks whether its wake-up time (a disk still being made or hydrated) has come.
TIMER_SECONDS: Final = 15.0
_RECHECK: Final = timedelta(minutes=10)
_RESOURCE: Final[dict[str, Any]] = {"group": API_GROUP, "version": API_VERSION, "plural": PLURAL}

logger = logging.getLogger(__name__)


def restorer(runtime: Runtime) -> RestoreReconciler:
    """The runtime's restore flow, made on first use from the policies' cloud client, observer and scope."""
    if runtime.restorer is None:
        policies = runtime.reconciler
        scope = policies.scope if isinstance(policies.scope, RestoreScope) else None
        runtime.restorer = RestoreReconciler(
            runtime.cloud, runtime.clock, policies.observer, policies.verdicts, scope=scope, volumes=runtime.volumes
        )
    return runtime.restorer


def driller(runtime: Runtime) -> Driller:
    """The runtime's restore drills (of policies with `spec.restoreDrill`), made on first use."""
    if runtime.driller is None:
        policies = runtime.reconciler
        scope = policies.scope if isinstance(policies.scope, RestoreScope) else None
        runtime.driller = Driller(runtime.cloud, runtime.clock, policies.observer, scope=scope)
    return runtime.driller


def _spec(body: kopf.Body) -> tuple[SnapshotRestoreSpec | None, str]:
    try:
        return SnapshotRestoreSpec.model_validate(dict(body.get("spec") or {})), ""
    except ValidationError as exc:
        problems = (
            f"spec.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" if error["loc"] else error["msg"]
            for error in exc.errors(include_url=False)
        )
        return None, "; ".join(problems)


def _ref(body: kopf.Body) -> RestoreRef:
    meta = body.metadata
    return RestoreRef(meta.namespace or "", meta.name or "", meta.uid or "", int(meta.get("generation") or 1))


def _policy(index: Mapping[Any, Iterable[Any]] | None, namespace: str, name: str | None) -> Policy | None:
    """The named policy of the namespace from kopf's index (None when absent or invalid)."""
    if index is None or name is None:
        return None
    for entry in index.get((namespace, name), ()):
        try:
            spec = SnapshotPolicySpec.model_validate(entry["spec"])
        except ValidationError:
            return None
        return Policy(ref=PolicyRef(namespace, name, entry["uid"], entry["generation"]), spec=spec)
    return None


async def policies(body: kopf.Body, namespace: str | None, name: str | None, **_: Any) -> dict[tuple[str, str], Any]:
    """Every SnapshotPolicy's UID and spec, by (namespace, name): what a restore from a policy reads."""
    meta = body.metadata
    spec = dict(body.get("spec") or {})
    return {
        (namespace or "", name or ""): {
            "uid": meta.uid or "",
            "generation": int(meta.get("generation") or 1),
            "spec": spec,
        }
    }


async def reconcile(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    """Create, update and resume all reconcile the same way."""
    runtime: Runtime = memo[MEMO_KEY]
    ref = _ref(body)
    async with runtime.lock(ref.uid):
        now = runtime.clock.now()
        current = runtime.written.get(ref.uid) or dict(body.status)
        spec, problems = _spec(body)
        if spec is None:
            health = Health(HealthState.STALLED, "InvalidSpec", f"The restore is invalid: {problems}. Fix the spec.")
            report = StatusReport(health=health, status={}, events=(), next_time=now + _RECHECK)
        else:
            policy = _policy(kwargs.get(POLICIES_INDEX), ref.namespace, spec.source.policy)
            report = await restorer(runtime).reconcile(ref, spec, current, policy)
        generation = body.metadata.get("generation")
        conditions = conditions_for(report.health, current.get("conditions") or [], now=now, generation=generation)
        new_status: dict[str, Any] = {**report.status, "conditions": conditions, "observedGeneration": generation}
        for key, value in new_status.items():
            patch.status[key] = value
        runtime.written[ref.uid] = {**current, **new_status}
        runtime.wakeups[ref.uid] = report.next_time
        for event in report.events:
            kopf.event(body, type=event.type, reason=event.reason, message=event.message)
        logger.info(
            "restore reconciled",
            extra={
                "restore": f"{ref.namespace}/{ref.name}",
                "state": str(report.health.state),
                "reason": report.health.reason,
            },
        )


async def tick(body: kopf.Body, patch: kopf.Patch, memo: kopf.Memo, **kwargs: Any) -> None:
    """Reconcile once the restore's wake-up time has come (a disk being made or hydrated is looked at again)."""
    runtime: Runtime = memo[MEMO_KEY]
    uid = body.metadata.uid or ""
    due = runtime.wakeups.get(uid)
    if FINALIZER not in (body.metadata.get("finalizers") or []) or due is None or runtime.clock.now() < due:
        return
    await reconcile(body=body, patch=patch, memo=memo, **kwargs)


async def finalize(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Keep the disk (Retain) or delete the restore's own disk (Delete); the finalizer goes only when done."""
    runtime: Runtime = memo[MEMO_KEY]
    ref = _ref(body)
    spec, _problems = _spec(body)
    if spec is None:
        runtime.forget(ref.uid)
        return
    async with runtime.lock(ref.uid):
        report = await restorer(runtime).finalize(ref, spec, dict(body.status))
    for event in report.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    if not report.done:
        raise kopf.TemporaryError(report.message, delay=max(1.0, report.retry_after))
    runtime.forget(ref.uid)
    logger.info("restore finalized", extra={"restore": f"{ref.namespace}/{ref.name}", "result": report.message})


def register(registry: kopf.OperatorRegistry) -> None:
    """Put the restore handlers (and the index of policies they read) into `registry`."""
    kopf.index(API_GROUP, API_VERSION, POLICY_PLURAL, registry=registry, id=POLICIES_INDEX)(policies)
    for on in (kopf.on.resume, kopf.on.create, kopf.on.update):
        on(**_RESOURCE, registry=registry, id="azsnap-restore")(reconcile)
    kopf.timer(**_RESOURCE, registry=registry, interval=TIMER_SECONDS, id="azsnap-restore-tick")(tick)
    kopf.on.delete(**_RESOURCE, registry=registry, id="azsnap-restore-finalize")(finalize)
