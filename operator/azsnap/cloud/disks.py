"""Disk writes for `AzureCloud`: create a managed disk from a snapshot and delete one, the calls a restore makes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from azure.mgmt.compute.aio import ComputeManagementClient

from azsnap.cloud.errors import NotFound, PermanentError, TransientError
from azsnap.cloud.interface import DiskRequest, existing_disk_answer
from azsnap.cloud.mapping import disk_from_azure, parse_resource_id
from azsnap.cloud.polling import JsonResultPolling, create_or_pending
from azsnap.domain.observed import Disk

__all__ = ["DiskWrites"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Options(Protocol):
    @property
    def base_url(self) -> str: ...

    @property
    def polling_interval(self) -> float: ...

    @property
    def lro_timeout(self) -> float: ...


class _Host(Protocol):
    """What `DiskWrites` uses of `AzureCloud` (named here: azure.py imports this module)."""

    @property
    def options(self) -> _Options: ...

    def _polling(self, operation: str, *, output_is_final: bool = ...) -> JsonResultPolling: ...

    def _client(self, subscription_id: str) -> ComputeManagementClient: ...

    async def _call(
        self,
        operation: str,
        subscription_id: str,
        location: str,
        call: Callable[[], Awaitable[T]],
        *,
        outcome: Callable[[T], str] = ...,
    ) -> T: ...

    def _region(self, subscription_id: str, resource_group: str) -> str: ...

    def _saw_region(self, subscription_id: str, resource_group: str, location: str) -> None: ...

    async def get_disk(self, disk_id: str) -> Disk | None: ...


class DiskWrites:
    """`CloudClient.create_disk` and `delete_disk` over ARM, mixed into `AzureCloud`."""

    async def create_disk(self: _Host, request: DiskRequest) -> Disk:
        # Azure's disk PUT on a taken name updates that disk (no If-None-Match on the Disk RP): look first.
        existing = await self.get_disk(request.disk_id)
        if existing is not None:
            return existing_disk_answer(existing, request)
        client = self._client(request.subscription_id)
        self._saw_region(request.subscription_id, request.resource_group, request.location)
        props: dict[str, Any] = {
            "creationData": {"createOption": "Copy", "sourceResourceId": request.source_snapshot_id}
        }
        if request.size_gb is not None:
            props["diskSizeGB"] = request.size_gb
        body: dict[str, Any] = {
            "location": request.location,
            "tags": dict(request.tags),
            "sku": {"name": request.sku},
            **({"zones": [request.zone]} if request.zone else {}),
            "properties": props,
        }
        options = self.options
        polling = self._polling("disks.create")
        made = await create_or_pending(
            lambda create: self._call(
                "disks.create",
                request.subscription_id,
                request.location,
                create,
                outcome=lambda d: "ok" if d is not None else "pending",
            ),
            lambda: client.disks.begin_create_or_update(  # type: ignore[call-overload]  # takes JSON too
                request.resource_group, request.name, body, polling=polling
            ),
            disk_from_azure,
            options.lro_timeout,
        )
        if made is not None:
            return made
        log.info("disk create still running at its deadline", extra={"disk": request.name})
        seen = await self.get_disk(request.disk_id)
        if seen is None:
            raise TransientError(
                f"disk {request.name} was accepted but is not visible yet; it is looked up again next round",
                retry_after=options.polling_interval,
                code="OperationInProgress",
            )
        return seen

    async def delete_disk(self: _Host, disk_id: str) -> None:
        rid = parse_resource_id(disk_id)
        if rid.resource_type.lower() != "disks":
            raise PermanentError(f"{disk_id!r} is not a managed disk ID", code="InvalidResourceId")
        client = self._client(rid.subscription_id)
        timeout = self.options.lro_timeout

        async def delete() -> bool:
            poller = await client.disks.begin_delete(
                rid.resource_group, rid.name, polling=self._polling("disks.delete")
            )
            try:
                await asyncio.wait_for(poller.result(), timeout=timeout)
            except TimeoutError:
                return False  # Azure finishes the delete; the next read shows it gone
            return True

        try:
            await self._call(
                "disks.delete",
                rid.subscription_id,
                self._region(rid.subscription_id, rid.resource_group),
                delete,
                outcome=lambda done: "ok" if done else "pending",
            )
        except NotFound:
            return
