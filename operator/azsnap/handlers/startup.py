"""Start-up and shutdown: kopf settings, Azure clients, reconciler and metrics, built once and kept in memo."""

from __future__ import annotations

import logging
import os
import secrets
from typing import Any

import kopf

from azsnap.clock import WallClock
from azsnap.cloud.buckets import PacerConfig
from azsnap.cloud.pacer import Pacer, PacerHooks
from azsnap.domain.models import API_GROUP
from azsnap.handlers import volume_snapshots
from azsnap.handlers.restore_volumes import KubeVolumes
from azsnap.handlers.runtime import MEMO_KEY, Runtime
from azsnap.handlers.scope import ScopeFile
from azsnap.metrics import Metrics
from azsnap.reconciler import Reconciler, ReconcilerConfig
from azsnap.settings import Settings

__all__ = ["DIFF_BASE_FIELD", "FINALIZER", "KOPF_STATUS", "build_runtime", "configure_kopf"]

#: Our own finalizer, not kopf's default one.
FINALIZER = f"{API_GROUP}/finalizer"
#: Where kopf keeps its bookkeeping: in the status, so that it goes out in the status write azsnap makes anyway.
#: In annotations (kopf's default) it costs a separate patch of the object: the diff base after every handled
#: change, and kopf's marker annotation after the first handler run.
KOPF_STATUS = "status.kopf"
#: The spec, labels and annotations kopf last handled (its diff base): how it tells a change from a restart.
DIFF_BASE_FIELD = f"{KOPF_STATUS}.last-handled-configuration"

logger = logging.getLogger(__name__)


def configure_kopf(settings: kopf.OperatorSettings, azsnap_settings: Settings) -> None:
    """kopf settings: own finalizer, bookkeeping in the status, explicit events only, peering as configured."""
    settings.persistence.finalizer = FINALIZER
    # A policy handled by an older azsnap has its diff base in an annotation: kopf then sees it once as new and
    # runs the same reconcile as on a resume, and the diff base moves to the status in that reconcile's write.
    settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field=DIFF_BASE_FIELD)
    settings.persistence.progress_storage = kopf.StatusProgressStorage(
        field=f"{KOPF_STATUS}.progress", touch_field=f"{KOPF_STATUS}.dummy"
    )
    settings.posting.loggers = False  # only the events azsnap posts on purpose
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = settings.watching.server_timeout or 600
    settings.networking.error_backoffs = [1, 2, 5, 10, 30]
    # azsnap watches only its own CRD: no namespace or CRD scanning, so no RBAC for them is needed.
    settings.scanning.disabled = True
    if azsnap_settings.peering:
        settings.peering.name = azsnap_settings.peering
        settings.peering.standalone = False
        settings.peering.mandatory = True
        # Peers of equal priority all pause; a random priority per process lets exactly one act.
        settings.peering.priority = secrets.randbelow(1_000_000) + 1
    else:
        settings.peering.standalone = True


def build_runtime(azsnap_settings: Settings) -> Runtime:
    """Credentials, Azure client and reconciler for a real deployment."""
    from azsnap.cloud.azure import AzureCloud  # the SDK is imported only where it is used

    clock = WallClock()
    if azsnap_settings.pacing:
        # One pacer for the whole process: every policy's calls share the subscription-region budgets.
        hooks = PacerHooks(Pacer(PacerConfig(), clock=clock))
        cloud = AzureCloud.from_settings(
            azsnap_settings, before_request=hooks.before_request, on_response=hooks.on_response
        )
    else:
        cloud = AzureCloud.from_settings(azsnap_settings)
    scope = ScopeFile(azsnap_settings.scope_file) if azsnap_settings.scope_file else None
    reconciler = Reconciler(
        cloud,
        clock,
        ReconcilerConfig.from_settings(azsnap_settings),
        scope=scope,
    )
    return Runtime(settings=azsnap_settings, clock=clock, cloud=cloud, reconciler=reconciler, metrics=Metrics())


async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Build clients once; tests and the demo may put a ready Runtime into the memo instead."""
    runtime = memo.get(MEMO_KEY)
    if runtime is None:
        runtime = build_runtime(Settings.from_env(os.environ))
        memo[MEMO_KEY] = runtime
    configure_kopf(settings, runtime.settings)
    if runtime.settings.restore_volumes and runtime.volumes is None:
        # kopf's own login: the pod's service account in a cluster, the kubeconfig elsewhere.
        info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
        if info is not None:
            runtime.volumes = KubeVolumes(info)
    if runtime.settings.volume_snapshots and runtime.snapshot_objects is None:
        runtime.snapshot_objects = volume_snapshots.login(settings)
    if runtime.settings.metrics_port and runtime.metrics_server is None:
        runtime.metrics_server = await runtime.metrics.start_server(runtime.settings.metrics_port)
    logger.info(
        "azsnap started",
        extra={
            "credential": str(runtime.settings.credential),
            "namespaces": list(runtime.settings.namespaces) or "all",
            "peering": runtime.settings.peering or "standalone",
        },
    )


async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    """Close the metrics endpoint and the Azure clients."""
    runtime: Runtime | None = memo.get(MEMO_KEY)
    if runtime is None:
        return
    if runtime.metrics_server is not None:
        await runtime.metrics_server.close()
        runtime.metrics_server = None
    if isinstance(runtime.volumes, KubeVolumes):
        await runtime.volumes.close()
    if isinstance(runtime.snapshot_objects, volume_snapshots.KubeSnapshots):
        await runtime.snapshot_objects.close()
    if runtime.owns_cloud:
        await runtime.cloud.close()


def register(registry: kopf.OperatorRegistry) -> None:
    """Put the start-up and clean-up handlers into `registry`."""
    kopf.on.startup(registry=registry)(startup)
    kopf.on.cleanup(registry=registry)(cleanup)
