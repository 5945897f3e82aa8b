"""New policies: no Azure write before azsnap's finalizer is on the object, and one reconcile per new policy.

kopf starts the per-policy timer as soon as it sees an object, while it is still adding the finalizer; a timer
that reconciled then would write to Azure for a policy whose deletion nothing would hold up, and repeat the
create handler's reconcile.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import kmock
import kopf
import pytest
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, condition, eventually, install_project_crd, policy_manifest

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.cloud.interface import SnapshotRequest
from azsnap.domain import naming
from azsnap.domain.models import Policy
from azsnap.domain.observed import Snapshot
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.handlers.startup import FINALIZER
from azsnap.offline.sandbox import azure_sandbox, disk_id

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

POLICIES = 8


def _has_finalizer(kube: KubeEmulator, name: str) -> bool:
    obj = kube.get(*SNAPSHOT_POLICY, "default", name)
    return obj is not None and FINALIZER in (obj["metadata"].get("finalizers") or [])


async def test_no_azure_write_before_the_finalizer_and_one_reconcile_per_new_policy(kube: KubeEmulator) -> None:
    install_project_crd(kube)
    async with azure_sandbox(LoopClock(EPOCH)) as box:
        cloud, reconciler = box.cloud, box.runtime.reconciler
        writes_without_finalizer: list[str] = []
        writes: Counter[str] = Counter()
        reconciles: Counter[str] = Counter()
        create, delete, reconcile = cloud.create_snapshot, cloud.delete_snapshot, reconciler.reconcile

        async def counted_create(request: SnapshotRequest) -> Snapshot:
            name = str(request.tags[naming.TAG_POLICY]).rpartition("/")[2]
            writes[name] += 1
            if not _has_finalizer(kube, name):
                writes_without_finalizer.append(f"create for {name}")
            return await create(request)

        async def counted_delete(subscription_id: str, resource_group: str, name: str) -> None:
            writes_without_finalizer.extend(
                f"delete for {p}" for p in (f"p{i}" for i in range(POLICIES)) if not _has_finalizer(kube, p)
            )
            await delete(subscription_id, resource_group, name)

        async def counted_reconcile(policy: Policy, *args: Any, **kwargs: Any) -> Any:
            reconciles[policy.ref.name] += 1
            return await reconcile(policy, *args, **kwargs)

        cloud.create_snapshot = counted_create  # type: ignore[method-assign]
        cloud.delete_snapshot = counted_delete  # type: ignore[method-assign]
        reconciler.reconcile = counted_reconcile  # type: ignore[method-assign]

        async def slow_finalizer(request: kmock.Request) -> None:
            # A real API server takes its time; here the finalizer patch would land before any Azure call.
            if FINALIZER in request.text:
                await asyncio.sleep(2)

        kube.api["patch"] << slow_finalizer
        async with run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})):
            for i in range(POLICIES):
                spec = {
                    "disk": {"id": disk_id(f"disk-{i % 3}")},
                    "schedule": {"cron": "0 * * * *"},
                    "retention": {"keepLast": 3},
                    "deletionPolicy": "Delete",
                }
                kube.apply(policy_manifest(f"p{i}", spec))

            def all_ready() -> bool:
                return all(
                    (condition(kube.get(*SNAPSHOT_POLICY, "default", f"p{i}"), "Ready") or {}).get("status") == "True"
                    for i in range(POLICIES)
                )

            await eventually(all_ready)
            # Half an emulated hour later (the next slot is at 01:00): the timers ticked, nothing was due.
            await asyncio.sleep(1800)

        assert writes_without_finalizer == []
        assert writes == Counter({f"p{i}": 1 for i in range(POLICIES)})
        assert reconciles == Counter({f"p{i}": 1 for i in range(POLICIES)})
