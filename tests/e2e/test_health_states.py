"""Each health state end to end: what Ready, kstatus (Flux), the Argo CD health check and the metrics say.

The real handlers under kopf against the Kubernetes emulator, the real SDK against the Azure emulator, emulated time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import kopf
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support import argocd, kstatus
from tests.support.kube import (
    EPOCH,
    SNAPSHOT_POLICY,
    condition,
    eventually,
    install_project_crd,
    policy_manifest,
    until,
)

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.buckets import PacerConfig
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.pacer import Pacer, PacerHooks
from azsnap.emulator import DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, BucketSize, EmulatorConfig, FaultRule
from azsnap.emulator.config import DEFAULT_BUCKETS
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY
from azsnap.offline.sandbox import Sandbox, azure_sandbox, disk_id
from azsnap.reconciler import Reconciler, ReconcilerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

CREATE_3MIN = "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min"


@dataclasses.dataclass(frozen=True)
class Seen:
    """One policy as every consumer sees it."""

    ready: str
    reason: str
    kstatus: kstatus.KStatus
    argocd: str
    metrics: dict[str, float]


def spec(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "disk": {"id": disk_id("disk-0")},
        "schedule": {"cron": "0 * * * *"},
        "retention": {"keepLast": 3},
    }
    base.update(extra)
    return base


@asynccontextmanager
async def operator(kube: KubeEmulator) -> AsyncIterator[Sandbox]:
    install_project_crd(kube)
    async with (
        azure_sandbox(LoopClock(EPOCH)) as box,
        run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: box.runtime})),
    ):
        yield box


def get(kube: KubeEmulator) -> dict[str, Any]:
    obj = kube.get(*SNAPSHOT_POLICY, "default", "p1")
    assert obj is not None
    return obj


def metrics_of(box: Sandbox) -> dict[str, float]:
    """The policy's series, by sample name, from the operator's own exposition."""
    text = box.runtime.metrics.exposition()[0].decode()
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("policy") == "p1" and not sample.name.endswith("_created"):
                found[sample.name] = sample.value
            elif sample.name in (
                "azsnap_policies_stalled",
                "azsnap_policies_suspended",
                "azsnap_snapshots_failed_total",
            ):
                found[sample.name] = found.get(sample.name, 0.0) + sample.value  # one policy: its namespace's count
            elif sample.name == "azsnap_azure_throttled_total":
                found[sample.name] = found.get(sample.name, 0.0) + sample.value
    return found


def seen(kube: KubeEmulator, box: Sandbox) -> Seen:
    obj = get(kube)
    ready = condition(obj, "Ready") or {}
    now = box.clock.now()
    return Seen(
        ready=str(ready.get("status")),
        reason=str(ready.get("reason")),
        kstatus=kstatus.compute(obj).status,
        argocd=argocd.health(obj, now)[0],
        metrics=metrics_of(box),
    )


def ready_reason(kube: KubeEmulator, *reasons: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        obj = kube.get(*SNAPSHOT_POLICY, "default", "p1")
        cond = condition(obj, "Ready")
        return obj if cond is not None and cond.get("reason") in reasons else None

    return check


async def test_creates_throttled_for_hours_fail_loudly_then_recover_by_themselves(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        box.emulator.add_fault(FaultRule(operation="snapshots.put", kind="429", retry_after_s=300))
        kube.apply(policy_manifest("p1", spec()))
        await eventually(ready_reason(kube, "Throttled", "RateLimited"), within=1800)
        early = seen(kube, box)
        assert (early.ready, early.kstatus, early.argocd) == ("False", kstatus.KStatus.IN_PROGRESS, "Degraded")

        # Six hours of 429s: the slots pass their startingDeadline, are counted, and the policy says so.
        obj = await eventually(ready_reason(kube, "SlotsMissed"), within=3 * 3600)
        await until(box.clock, EPOCH + timedelta(hours=6))
        state = seen(kube, box)
        assert (state.ready, state.reason) == ("False", "SlotsMissed")
        assert state.kstatus is kstatus.KStatus.FAILED
        assert state.argocd == "Degraded"
        assert state.metrics["azsnap_policy_ready"] == 0
        assert state.metrics["azsnap_policies_stalled"] == 1
        assert state.metrics["azsnap_policy_missed_slots_total"] >= 5
        assert state.metrics["azsnap_azure_throttled_total"] > 0
        # Never a success: the staleness metric counts from the policy's creation and is past its threshold.
        created = datetime.fromisoformat(get(kube)["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        assert state.metrics["azsnap_policy_last_success_timestamp_seconds"] == created.timestamp()
        age = box.clock.now().timestamp() - state.metrics["azsnap_policy_last_success_timestamp_seconds"]
        assert age > state.metrics["azsnap_policy_stale_after_seconds"] == 7200
        stalled = condition(obj, "Stalled")
        assert stalled is not None and "there is no good snapshot yet" in stalled["message"]

        # Azure recovers: the next slot is taken and every signal returns to healthy by itself.
        box.emulator.clear_faults()
        await eventually(ready_reason(kube, "Succeeded"), within=2 * 3600)
        healed = seen(kube, box)
        assert (healed.ready, healed.kstatus, healed.argocd) == ("True", kstatus.KStatus.CURRENT, "Healthy")
        assert healed.metrics["azsnap_policy_ready"] == 1
        assert healed.metrics["azsnap_policies_stalled"] == 0


async def test_a_snapshot_that_ends_failed_after_its_create_is_not_ready_and_counted(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(schedule={"cron": "0 * * * *", "startingDeadline": "5m"})))
        await eventually(ready_reason(kube, "Succeeded"))
        (record,) = box.emulator.store.list_snapshots(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP)
        assert record.state == "Succeeded"
        # Past its slot's deadline, Azure reports the snapshot Failed (a background copy that failed).
        await until(box.clock, EPOCH + timedelta(minutes=10))
        record.state = "Failed"
        kube.patch(*SNAPSHOT_POLICY, "default", "p1", {"metadata": {"labels": {"look": "again"}}})
        obj = await eventually(ready_reason(kube, "SnapshotFailed"), within=1800)
        state = seen(kube, box)
        assert (state.ready, state.kstatus, state.argocd) == ("False", kstatus.KStatus.FAILED, "Degraded")
        assert obj["status"]["lastSnapshot"]["state"] == "Failed"
        assert "ended Failed in Azure" in (condition(obj, "Ready") or {})["message"]
        # Counted once, though no create of azsnap's failed, and not again on the next look.
        assert state.metrics["azsnap_snapshots_failed_total"] == 1
        kube.patch(*SNAPSHOT_POLICY, "default", "p1", {"metadata": {"labels": {"look": "once-more"}}})
        await until(box.clock, EPOCH + timedelta(minutes=40))
        assert metrics_of(box)["azsnap_snapshots_failed_total"] == 1
        # The next slot succeeds: healthy again by itself.
        await eventually(ready_reason(kube, "Succeeded"), within=2 * 3600)
        assert seen(kube, box).argocd == "Healthy"


@asynccontextmanager
async def over_budget_operator(kube: KubeEmulator, disks: int) -> AsyncIterator[Sandbox]:
    """Azure allows 6 creates per 3-minute window and answers a 429 with Retry-After: 1200; the operator's pacer
    starts from the documented 240 and learns the rest from the answers, as in production."""
    install_project_crd(kube)
    config = EmulatorConfig(
        throttling=True,
        buckets={**DEFAULT_BUCKETS, CREATE_3MIN: BucketSize(6, timedelta(minutes=3))},
        lro_duration=timedelta(seconds=1),
        throttle_mode="window",
        throttle_retry_after_s=1200,
        ratelimit_header_lines=True,
    )
    async with azure_sandbox(LoopClock(EPOCH), config=config, disks=disks) as box:
        hooks = PacerHooks(Pacer(PacerConfig(), clock=box.clock))
        options = AzureOptions(base_url=box.server.base_url, ca_bundle=box.server.ca_bundle, retry_total=0)
        async with AzureCloud(
            StaticTokenCredential(), options, before_request=hooks.before_request, on_response=hooks.on_response
        ) as cloud:
            box.runtime.cloud = cloud
            box.runtime.reconciler = Reconciler(cloud, box.clock, ReconcilerConfig.from_settings(box.runtime.settings))
            memo = kopf.Memo({MEMO_KEY: box.runtime})
            async with run_operator(kube=kube, namespaces=["default"], memo=memo):
                yield box


def reasons(kube: KubeEmulator) -> dict[str, str]:
    found = {}
    for obj in kube.list(*SNAPSHOT_POLICY, "default"):
        cond = condition(obj, "Ready")
        found[obj["metadata"]["name"]] = str((cond or {}).get("reason"))
    return found


async def test_over_budget_is_not_ready_with_the_figures_and_recovers_by_itself(kube: KubeEmulator) -> None:
    disks = 12
    async with over_budget_operator(kube, disks) as box:
        for i in range(disks):
            name = "p1" if i == 0 else f"p{i + 1}"
            schedule = {"cron": "0 * * * *", "startingDeadline": "10m"}
            kube.apply(policy_manifest(name, spec(disk={"id": disk_id(f"disk-{i}")}, schedule=schedule)))
        # Past the deadline, the pacer never sent the creates Azure's budget could not take in time.
        await eventually(lambda: "OverBudget" in reasons(kube).values(), within=3600)
        over = sorted(name for name, reason in reasons(kube).items() if reason == "OverBudget")
        obj = kube.get(*SNAPSHOT_POLICY, "default", over[0])
        assert obj is not None
        stalled = condition(obj, "Stalled") or {}
        assert "over Azure's budget" in stalled["message"] and CREATE_3MIN in stalled["message"]
        assert obj["status"]["missedSlots"] == 1
        assert kstatus.compute(obj).status is kstatus.KStatus.FAILED
        assert argocd.health(obj, box.clock.now())[0] == "Degraded"
        text = box.runtime.metrics.exposition()[0].decode()
        labels = f'namespace="default",policy="{over[0]}"'
        assert f"azsnap_policy_ready{{{labels}}} 0.0" in text
        assert f"azsnap_policy_missed_slots_total{{{labels}}} 1.0" in text
        # The next hour the pacer knows the budget: every slot is taken in time and every policy is Ready again.
        await eventually(lambda: set(reasons(kube).values()) == {"Succeeded"}, within=2 * 3600)
        healed = kube.get(*SNAPSHOT_POLICY, "default", over[0])
        assert healed is not None and argocd.health(healed, box.clock.now())[0] == "Healthy"


async def test_suspended_with_a_stalled_cause_shows_stalled_not_suspended(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(suspend=True, disk={"id": disk_id("no-such-disk")})))
        await eventually(ready_reason(kube, "DiskNotFound"))
        state = seen(kube, box)
        assert (state.ready, state.kstatus, state.argocd) == ("False", kstatus.KStatus.FAILED, "Degraded")
        assert state.metrics["azsnap_policies_suspended"] == 1
        assert state.metrics["azsnap_policies_stalled"] == 1
        assert "azsnap_policy_stale_after_seconds" not in state.metrics  # nothing is owed while suspended
        # The disk exists: a plain suspended policy is Suspended in Argo CD and Current for kstatus.
        kube.patch(*SNAPSHOT_POLICY, "default", "p1", {"spec": {"disk": {"id": disk_id("disk-1")}}})
        await eventually(ready_reason(kube, "Suspended"))
        plain = seen(kube, box)
        assert (plain.ready, plain.kstatus, plain.argocd) == ("True", kstatus.KStatus.CURRENT, "Suspended")


async def test_deleting_is_progressing_while_the_finalizer_works(kube: KubeEmulator) -> None:
    async with operator(kube) as box:
        kube.apply(policy_manifest("p1", spec(deletionPolicy="Delete")))
        await eventually(ready_reason(kube, "Succeeded"))
        box.emulator.add_fault(FaultRule(operation="snapshots.delete", kind="500"))
        kube.delete(*SNAPSHOT_POLICY, "default", "p1")
        await until(box.clock, EPOCH + timedelta(minutes=30))
        state = seen(kube, box)
        assert get(kube)["metadata"]["deletionTimestamp"]
        assert (state.kstatus, state.argocd) == (kstatus.KStatus.TERMINATING, "Progressing")
        assert state.ready == "True"  # the last verdict stays; kstatus and Argo CD look at the deletion first
        assert state.metrics["azsnap_policy_ready"] == 1  # the series stays until the finalizer is done
