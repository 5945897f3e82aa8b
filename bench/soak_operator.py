"""One operator process of the soak: its Azure client and reconciler, built afresh at every restart."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from azsnap.clock import LoopClock
from azsnap.cloud.azure import AzureCloud, AzureOptions
from azsnap.cloud.buckets import PacerConfig
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.cloud.pacer import Pacer, PacerHooks
from azsnap.domain.observed import Limits
from azsnap.emulator import RunningServer
from azsnap.reconciler import Reconciler, ReconcilerConfig, StatusReport

__all__ = ["Operator", "fold", "start_operator"]


def fold(status: dict[str, Any], report: StatusReport) -> dict[str, Any]:
    """What the kopf handler writes: the report's fields over the previous status."""
    return {k: v for k, v in {**status, **report.status}.items() if v is not None}


@dataclass
class Operator:
    """One operator process: its Azure client and reconciler (what a restart throws away)."""

    cloud: AzureCloud
    reconciler: Reconciler

    async def close(self) -> None:
        await self.cloud.close()


def start_operator(server: RunningServer, clock: LoopClock) -> Operator:
    """A fresh `AzureCloud` and `Reconciler`, as a restarted process builds them.

    Paced as a deployment is (`AZSNAP_PACING` is on by default); LROs are polled every emulated second (free
    under looptime); everything else is the product's default.
    """
    options = AzureOptions(base_url=server.base_url, ca_bundle=server.ca_bundle, polling_interval=1.0)
    hooks = PacerHooks(Pacer(PacerConfig(), clock=clock))
    cloud = AzureCloud(
        StaticTokenCredential(), options, before_request=hooks.before_request, on_response=hooks.on_response
    )
    return Operator(cloud, Reconciler(cloud, clock, ReconcilerConfig(limits=Limits())))
