"""No credential in logs or events: an e2e operator run with every logger at DEBUG, scanned for the bearer token.

The operator runs as in `test_operator.py` (kopf against the Kubernetes emulator, the real SDK against the Azure
emulator over HTTPS), but with a canary bearer token and a canary client secret in the environment. The run
takes snapshots, retries through injected faults and finalizes a policy, so the error paths log too.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

import kopf
import pytest
from tests.support.kube import EPOCH, SNAPSHOT_POLICY, condition, eventually, install_project_crd, policy_manifest

import azsnap.handlers  # noqa: F401  (registers the handlers on kopf's default registry)
from azsnap.clock import LoopClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.emulator import EmulatorConfig, FaultRule
from azsnap.emulator.kubernetes import KubeEmulator, run_operator
from azsnap.handlers.runtime import MEMO_KEY, Runtime
from azsnap.metrics import Metrics
from azsnap.offline.sandbox import azure_sandbox, disk_id
from azsnap.reconciler import Reconciler, ReconcilerConfig

pytestmark = [pytest.mark.e2e, pytest.mark.looptime]

#: Every logger that could see a request: ours, the SDK's pipeline and HTTP logging, kopf, aiohttp.
LOGGERS = ("", "azsnap", "azure", "azure.core", "azure.core.pipeline.policies.http_logging_policy", "kopf", "aiohttp")


async def test_no_token_or_secret_reaches_logs_or_events(
    kube: KubeEmulator, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.canary." + secrets.token_urlsafe(24)
    client_secret = "canary~secret~" + secrets.token_urlsafe(24)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", client_secret)
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)

    install_project_crd(kube)
    clock = LoopClock(EPOCH)
    config = EmulatorConfig(poll_retry_after_s=0, lro_duration=timedelta(0))
    async with azure_sandbox(clock, config=config, disks=1) as box:
        settings = box.runtime.settings
        options = AzureOptions.from_settings(settings, polling_interval=0.0, retry_backoff_factor=0.1)
        cloud = AzureCloud(StaticTokenCredential(token), options)
        reconciler = Reconciler(cloud, clock, ReconcilerConfig(limits=settings.limits))
        runtime = Runtime(settings, clock, cloud, reconciler, Metrics(), owns_cloud=False)
        box.emulator.add_fault(FaultRule(operation="snapshots.put", kind="500", count=1))
        box.emulator.add_fault(FaultRule(operation="snapshots.list", kind="429", count=1, retry_after_s=1))
        try:
            async with run_operator(kube=kube, namespaces=["default"], memo=kopf.Memo({MEMO_KEY: runtime})):
                spec = {
                    "disk": {"id": disk_id("disk-0")},
                    "schedule": {"cron": "0 * * * *"},
                    "retention": {"keepLast": 1},
                    "deletionPolicy": "Delete",
                }
                kube.apply(policy_manifest("p1", spec))

                def ready() -> bool:
                    cond = condition(kube.get(*SNAPSHOT_POLICY, "default", "p1"), "Ready")
                    return bool(cond and cond.get("status") == "True")

                await eventually(ready, within=3 * 3600)
                await eventually(lambda: len(box.emulator.snapshots()) >= 1 and ready(), within=3 * 3600)
                kube.delete(*SNAPSHOT_POLICY, "default", "p1")
                await eventually(lambda: kube.get(*SNAPSHOT_POLICY, "default", "p1") is None, within=600)
        finally:
            await cloud.close()

    # the run really talked to Azure with the canary token, and really logged
    assert any(r.operation == "snapshots.put" and r.status == 202 for r in box.emulator.requests)
    assert box.emulator.snapshots() == [], "the Delete finalizer ran"
    assert any(r.name.startswith("azure.core") for r in caplog.records), "the SDK's request logging was captured"
    assert any(r.name.startswith("kopf") for r in caplog.records)
    assert "'Authorization': 'REDACTED'" in caplog.text, "request headers were logged, with the token redacted"

    logged = [caplog.text]
    for record in caplog.records:
        logged.append(record.getMessage())
        logged.append(repr(record.__dict__))
    events = kube.events("default")
    assert events, "the run posted events"
    posted = [repr(event) for event in events]
    for text in logged + posted:
        assert token not in text
        assert token.split(".")[-1] not in text
        assert client_secret not in text
        assert "Bearer " not in text
