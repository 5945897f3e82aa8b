"""An in-process sandbox: the Azure emulator, the real SDK adapter and an operator runtime wired together.

The demo, `azsnap simulate` and the end-to-end tests use it, so they all run the product's own code path
(reconciler -> AzureCloud -> azure-mgmt-compute -> HTTPS) against the emulator on one clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from azsnap.clock import Clock
from azsnap.cloud.azure import AzureCloud
from azsnap.cloud.credentials import StaticTokenCredential
from azsnap.emulator import (
    DEMO_LOCATION,
    DEMO_RESOURCE_GROUP,
    DEMO_SUBSCRIPTION,
    Emulator,
    EmulatorConfig,
    RunningServer,
)
from azsnap.handlers.runtime import Runtime
from azsnap.metrics import Metrics
from azsnap.reconciler import Reconciler, ReconcilerConfig
from azsnap.settings import CredentialMode, Settings

__all__ = ["Sandbox", "add_policy_groups", "azure_sandbox", "disk_id"]


def disk_id(name: str, *, subscription: str = DEMO_SUBSCRIPTION, resource_group: str = DEMO_RESOURCE_GROUP) -> str:
    """The ARM ID of a disk in the sandbox."""
    return f"/subscriptions/{subscription}/resourceGroups/{resource_group}/providers/Microsoft.Compute/disks/{name}"


@dataclass
class Sandbox:
    """Everything a caller needs to drive or inspect the sandbox."""

    emulator: Emulator
    server: RunningServer
    clock: Clock
    runtime: Runtime
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    azure_overrides: dict[str, Any] = field(default_factory=dict)
    runtimes: list[Runtime] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.runtimes.append(self.runtime)

    @property
    def reconciler(self) -> Reconciler:
        return self.runtime.reconciler

    @property
    def cloud(self) -> AzureCloud:
        assert isinstance(self.runtime.cloud, AzureCloud)
        return self.runtime.cloud

    def restart(self) -> Runtime:
        """A fresh runtime on the same emulator, as after an operator restart: no cache, no memory."""
        self.runtime = _runtime(self.server, self.clock, self.settings_overrides, self.azure_overrides)
        self.runtimes.append(self.runtime)
        return self.runtime


@asynccontextmanager
async def azure_sandbox(
    clock: Clock,
    *,
    config: EmulatorConfig | None = None,
    disks: int = 4,
    premium_v2_disks: int = 0,
    settings: dict[str, Any] | None = None,
    azure_options: dict[str, Any] | None = None,
) -> AsyncIterator[Sandbox]:
    """Start the emulator over HTTPS with `disks` Standard SSD disks (`disk-0`...) and a runtime on it."""
    emulator = Emulator(clock, config or EmulatorConfig())
    for i in range(disks):
        emulator.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, f"disk-{i}", location=DEMO_LOCATION)
    for i in range(premium_v2_disks):
        emulator.seed_disk(
            DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, f"pv2-disk-{i}", location=DEMO_LOCATION, sku="PremiumV2_LRS"
        )
    async with emulator.serve(host="127.0.0.1", port=0) as server:
        box = Sandbox(
            emulator=emulator,
            server=server,
            clock=clock,
            runtime=_runtime(server, clock, settings or {}, _polling(emulator.config) | (azure_options or {})),
            settings_overrides=settings or {},
            azure_overrides=_polling(emulator.config) | (azure_options or {}),
        )
        try:
            yield box
        finally:
            for runtime in box.runtimes:
                await runtime.cloud.close()


def _polling(config: EmulatorConfig) -> dict[str, Any]:
    """Operations that end at once leave nothing to wait for between polls; otherwise azsnap's own interval."""
    return {"polling_interval": 0.0} if config.lro_duration == timedelta(0) else {}


def _runtime(server: RunningServer, clock: Clock, settings: dict[str, Any], azure_options: dict[str, Any]) -> Runtime:
    operator_settings = Settings.model_validate(
        {
            "credential": CredentialMode.STATIC_TOKEN,
            "arm_endpoint": server.base_url,
            "ca_bundle": server.ca_bundle,
            "metrics_port": 0,
            "log_format": "plain",
            **settings,
        }
    )
    cloud = AzureCloud.from_settings(
        operator_settings,
        credential=StaticTokenCredential(),
        **{"retry_backoff_factor": 0.1, **azure_options},
    )
    reconciler = Reconciler(
        cloud,
        clock,
        ReconcilerConfig.from_settings(operator_settings),
    )
    return Runtime(
        settings=operator_settings,
        clock=clock,
        cloud=cloud,
        reconciler=reconciler,
        metrics=Metrics(),
        owns_cloud=False,
    )


def add_policy_groups(emulator: Emulator, manifests: Iterable[Mapping[str, Any]]) -> None:
    """The resource groups the policies name beyond their disks': snapshot groups, and copy targets elsewhere."""
    for m in manifests:
        group = (m["spec"].get("snapshot") or {}).get("resourceGroup")
        if group:
            emulator.store.groups.setdefault((DEMO_SUBSCRIPTION.lower(), group.lower()), DEMO_LOCATION)
        for target in m["spec"].get("copies") or []:
            sub = target.get("subscriptionId") or DEMO_SUBSCRIPTION
            emulator.add_resource_group(sub, target["resourceGroup"], target["region"])
