"""The in-process face of the emulator: state, throttling and faults behind one object, served over HTTPS."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from azsnap.clock import Clock
from azsnap.emulator.config import DEMO_LOCATION, EmulatorConfig, FaultRule, RecordedRequest
from azsnap.emulator.faults import FaultInjector
from azsnap.emulator.persist import read_state, write_state
from azsnap.emulator.records import key
from azsnap.emulator.server import make_app
from azsnap.emulator.state import Store
from azsnap.emulator.throttling import Throttler
from azsnap.emulator.tls import make_server_tls

__all__ = ["Emulator", "RunningServer"]


@dataclass(frozen=True)
class RunningServer:
    """Where a served emulator listens, and the CA bundle its clients must trust."""

    base_url: str
    ca_bundle: str
    host: str
    port: int


class Emulator:
    """An Azure Resource Manager Compute emulator (disks, snapshots, operations) on an emulated clock."""

    def __init__(self, clock: Clock, config: EmulatorConfig | None = None) -> None:
        self.clock = clock
        self.config = config or EmulatorConfig()
        self.store = Store(self.config)
        self.throttler = Throttler(
            clock,
            self.config.buckets,
            enabled=self.config.throttling,
            mode=self.config.throttle_mode,
            retry_after_s=self.config.throttle_retry_after_s,
            shape=self.config.throttle_shape,
            header_lines=self.config.ratelimit_header_lines,
        )
        self.faults = FaultInjector(self.config.seed)
        self._requests: list[RecordedRequest] = []

    # ---- disks -------------------------------------------------------------------------------------------------

    def seed_disk(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        location: str = DEMO_LOCATION,
        sku: str = "StandardSSD_LRS",
        size_gb: int = 128,
        written_gb: float | None = None,
        os_properties: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a disk (ValueError if it exists or a value is invalid); returns its ARM JSON.

        `os_properties` (`osType`, `hyperVGeneration`, `supportedCapabilities`) make it an OS disk's image facts,
        which its snapshots carry.
        """
        record = self.store.seed_disk(
            self.clock.now(),
            subscription_id,
            resource_group,
            name,
            location=location,
            sku=sku,
            size_gb=size_gb,
            written_gb=written_gb,
            os_properties=os_properties,
        )
        return record.to_json()

    def add_resource_group(self, subscription_id: str, resource_group: str, location: str) -> None:
        """Create an empty resource group in `location` (e.g. a copy target in another region)."""
        self.store.add_group(subscription_id, resource_group, location)

    def delete_disk(self, subscription_id: str, resource_group: str, name: str) -> None:
        """Remove a disk (KeyError if absent); its snapshots stay, as in Azure."""
        self.store.delete_disk(subscription_id, resource_group, name)

    def recreate_disk(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        sku: str | None = None,
        size_gb: int | None = None,
    ) -> dict[str, Any]:
        """Delete and create the disk again under the same name: a new uniqueId and a new snapshot family."""
        old = self.store.delete_disk(subscription_id, resource_group, name)
        return self.seed_disk(
            old.subscription_id,
            old.resource_group,
            old.name,
            location=old.location,
            sku=sku or old.sku,
            size_gb=size_gb or old.size_gb,
            written_gb=None if size_gb else old.written_gb,
        )

    def disks(self, subscription_id: str | None = None, resource_group: str | None = None) -> list[dict[str, Any]]:
        """Every disk as a GET would show it now (operations due by now are settled first)."""
        self.store.settle(self.clock.now())
        return [d.to_json() for k, d in self.store.disks.items() if _matches(k, subscription_id, resource_group)]

    # ---- assertions and control --------------------------------------------------------------------------------

    def snapshots(self, subscription_id: str | None = None, resource_group: str | None = None) -> list[dict[str, Any]]:
        """Every snapshot as a GET would show it now (operations due by now are settled first)."""
        now = self.clock.now()
        self.store.settle(now)
        return [s.to_json(now) for k, s in self.store.snapshots.items() if _matches(k, subscription_id, resource_group)]

    def snapshot(self, arm_id: str) -> dict[str, Any] | None:
        """One snapshot by its ARM ID as a GET would show it now, or None (a CSI driver's look-up of a handle)."""
        parts = arm_id.lower().strip("/").split("/")
        shape = ("subscriptions", None, "resourcegroups", None, "providers", "microsoft.compute", "snapshots", None)
        if len(parts) != len(shape) or any(want not in (None, got) for want, got in zip(shape, parts, strict=True)):
            return None
        now = self.clock.now()
        self.store.settle(now)
        record = self.store.snapshots.get(key(parts[1], parts[3], parts[7]))
        return None if record is None else record.to_json(now)

    def add_fault(self, rule: FaultRule) -> None:
        self.faults.add(rule)

    def clear_faults(self) -> None:
        self.faults.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self._requests)

    def record(self, method: str, path: str, status: int, operation: str) -> None:
        self._requests.append(RecordedRequest(method, path, status, operation, self.clock.now()))

    @property
    def violations(self) -> list[str]:
        """Every attempt that broke a per-disk limit (the window, the cap, pending copies)."""
        return list(self.store.violations)

    def reset(self, *, keep_disks: bool = False) -> None:
        """Forget snapshots, operations, faults, requests, violations and buckets (and disks unless kept)."""
        self.store.reset(keep_disks=keep_disks)
        self.faults.clear()
        self.throttler.reset()
        self._requests.clear()

    def save(self, path: str | Path) -> None:
        write_state(self.store, Path(path))

    @classmethod
    def load(cls, path: str | Path, clock: Clock, config: EmulatorConfig | None = None) -> Emulator:
        emulator = cls(clock, config)
        read_state(emulator.store, Path(path))
        return emulator

    # ---- serving -----------------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[RunningServer]:
        """Serve HTTPS with a throwaway CA until the block ends."""
        with tempfile.TemporaryDirectory(prefix="azsnap-emulator-") as tmp:
            tls = make_server_tls(Path(tmp), hosts=(host,) if host not in ("0.0.0.0", "::") else ())
            runner = web.AppRunner(make_app(self), access_log=None, handle_signals=False, shutdown_timeout=0.1)
            await runner.setup()
            try:
                site = web.TCPSite(runner, host, port, ssl_context=tls.context)
                await site.start()
                bound = runner.addresses[0][1] if runner.addresses else port
                shown = f"[{host}]" if ":" in host else host
                yield RunningServer(f"https://{shown}:{bound}", str(tls.ca_bundle), host, int(bound))
            finally:
                await runner.cleanup()


def _matches(k: tuple[str, str, str], subscription_id: str | None, resource_group: str | None) -> bool:
    return (subscription_id is None or k[0] == subscription_id.lower()) and (
        resource_group is None or k[1] == resource_group.lower()
    )
