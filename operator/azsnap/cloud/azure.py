"""The Azure implementation of `CloudClient`, on the async `azure-mgmt-compute` client: the only code that calls Azure."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AioHttpTransport
from azure.mgmt.compute.aio import ComputeManagementClient

from azsnap.cloud.accounting import AccountingPolicy, BeforeRequest, OnResponse, RequestStats
from azsnap.cloud.credentials import arm_scope, make_credential
from azsnap.cloud.disks import DiskWrites
from azsnap.cloud.errors import NotFound, PermanentError, TransientError
from azsnap.cloud.interface import CloudClient, SnapshotRequest
from azsnap.cloud.mapping import (
    DEFAULT_RETRY_AFTER,
    disk_from_azure,
    map_error,
    outcome_of,
    parse_resource_id,
    snapshot_from_azure,
)
from azsnap.cloud.pipeline import CALL as _CALL  # the name the list's per-page deadline reads
from azsnap.cloud.pipeline import SCOPE, CallClock, NoThrottleRetry, WaitPolicy, no_wait
from azsnap.cloud.polling import JsonResultPolling, OperationTimes, create_or_pending
from azsnap.domain.observed import Disk, Snapshot
from azsnap.settings import Settings

__all__ = ["AzureCloud", "AzureOptions"]

log = logging.getLogger(__name__)

T = TypeVar("T")

PUBLIC_ARM: Final = "https://management.azure.com"


@dataclass(frozen=True)
class AzureOptions:
    """How `AzureCloud` talks to ARM. Retries of 5xx and dropped connections are azure-core's; 429s are the pacer's."""

    base_url: str = PUBLIC_ARM
    #: Extra CA bundle to trust (the emulator's throwaway CA); None trusts the system store only.
    ca_bundle: str | None = None
    #: Seconds between LRO polls when Azure sends no Retry-After.
    polling_interval: float = 5.0
    #: How long one create or delete waits for its long-running operation before returning.
    lro_timeout: float = 60.0
    #: The most one call (or one page of a list) may take from its first request on: retries and LRO polls included
    #: (the wait for the first request's budget is the pacer's, bounded by the caller's deadline).
    call_timeout: float = 120.0
    #: azure-core retry policy: attempts after the first, and exponential backoff (Retry-After wins when sent).
    retry_total: int = 3
    retry_backoff_factor: float = 0.8
    retry_backoff_max: float = 60.0
    #: Seconds one HTTP read may take.
    read_timeout: float = 60.0
    #: Retry delay reported when Azure throttled or failed without saying how long to wait.
    default_retry_after: float = DEFAULT_RETRY_AFTER

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> AzureOptions:
        base = cls(
            base_url=settings.resolved_arm_endpoint,
            ca_bundle=settings.ca_bundle,
            lro_timeout=settings.lro_timeout_seconds,
        )
        return cls(**{**base.__dict__, **overrides})


class AzureCloud(DiskWrites, CloudClient):
    """`CloudClient` over ARM. One SDK client per subscription, made on first use (the subscription comes from IDs).

    Disk writes (a restore's) come from `DiskWrites`. Long-running operations are waited for at most
    `options.lro_timeout`; past it the Azure operation goes on,
    `create_snapshot` returns the snapshot as last seen (still Creating) and `delete_snapshot` returns.
    `before_request` (a pacer's hook) is awaited before every HTTP request: each call's first request, and its
    retries, further pages and LRO polls too, since Azure charges each of them to a budget. `on_response` sees
    every HTTP answer, retries and polls included.
    """

    def __init__(
        self,
        credential: AsyncTokenCredential,
        options: AzureOptions | None = None,
        *,
        owns_credential: bool = False,
        on_response: OnResponse | None = None,
        before_request: BeforeRequest | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self._credential = credential
        self._owns_credential = owns_credential
        self.options = options or AzureOptions()
        self.stats = RequestStats()
        self._policy = AccountingPolicy(self.stats, on_response)
        self._before_request: BeforeRequest = before_request or no_wait
        self._client_kwargs = dict(client_kwargs or {})
        self._clients: dict[str, ComputeManagementClient] = {}
        self._ssl_context: ssl.SSLContext | None = None
        self._closed = False
        #: Region of each (subscription, resource group) seen, so gets, lists and deletes draw on that region's budget.
        self._regions: dict[tuple[str, str], str] = {}
        #: How long Azure's recent long-running operations took, by kind (their first poll waits the typical one).
        self._lro_times: dict[str, OperationTimes] = {}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        credential: AsyncTokenCredential | None = None,
        on_response: OnResponse | None = None,
        before_request: BeforeRequest | None = None,
        **options: Any,
    ) -> AzureCloud:
        """Build from operator settings; `options` override `AzureOptions` fields (e.g. `polling_interval=0.1`).

        Without `credential`, the one `settings.credential` names is made here and closed by `close()`.
        """
        return cls(
            credential if credential is not None else make_credential(settings),
            AzureOptions.from_settings(settings, **options),
            owns_credential=credential is None,
            on_response=on_response,
            before_request=before_request,
        )

    def _client(self, subscription_id: str) -> ComputeManagementClient:
        if self._closed:
            raise RuntimeError("AzureCloud is closed")
        key = subscription_id.lower()
        client = self._clients.get(key)
        if client is None:
            opts = self.options
            kwargs: dict[str, Any] = {
                "base_url": opts.base_url,
                "credential_scopes": [arm_scope(opts.base_url)],
                "polling_interval": opts.polling_interval,
                "retry_policy": NoThrottleRetry(
                    retry_total=opts.retry_total,
                    retry_backoff_factor=opts.retry_backoff_factor,
                    retry_backoff_max=opts.retry_backoff_max,
                ),
                "read_timeout": opts.read_timeout,
                "per_retry_policies": [WaitPolicy(self._before_request), self._policy],
                **self._client_kwargs,
            }
            if opts.ca_bundle and "transport" not in kwargs:
                # azure-core turns a CA-bundle path into a new SSL context for every request, and aiohttp pools
                # connections by context: each request would open a new TLS connection. One context, one pool.
                if self._ssl_context is None:
                    self._ssl_context = ssl.create_default_context(cafile=opts.ca_bundle)
                connector = aiohttp.TCPConnector(ssl=self._ssl_context)
                kwargs["transport"] = AioHttpTransport(
                    session=aiohttp.ClientSession(connector=connector), session_owner=True
                )
            client = ComputeManagementClient(self._credential, subscription_id, **kwargs)
            self._clients[key] = client
        return client

    async def _call(
        self,
        operation: str,
        subscription_id: str,
        location: str,
        call: Callable[[], Awaitable[T]],
        *,
        outcome: Callable[[T], str] = lambda _: "ok",
    ) -> T:
        token = SCOPE.set((subscription_id, location))
        clock = CallClock(self.options.call_timeout)
        clock_token = _CALL.set(clock)
        try:
            async with asyncio.timeout(None) as clock.timeout:
                result = await call()
        except Exception as exc:
            error = map_error(exc, default_retry_after=self.options.default_retry_after)
            if isinstance(exc, TimeoutError) and clock.timeout is not None and clock.timeout.expired():
                error = TransientError(
                    f"the {operation} call ran past its {self.options.call_timeout:.0f}s deadline "
                    "(retries and long-running operation included)",
                    code="CallDeadline",
                )
            self.stats.record_call(operation, outcome_of(error))
            if error is exc:
                raise
            raise error from exc
        finally:
            SCOPE.reset(token)
            _CALL.reset(clock_token)
            if clock.started is not None:
                self.stats.record_duration(asyncio.get_running_loop().time() - clock.started)
        self.stats.record_call(operation, outcome(result))
        return result

    def _polling(self, operation: str, *, output_is_final: bool = False) -> JsonResultPolling:
        """How to wait for one long-running `operation`: its first poll when such operations typically are done."""
        times = self._lro_times.setdefault(operation, OperationTimes())
        endpoint = {"endpoint": self.options.base_url}
        return JsonResultPolling(
            self.options.polling_interval, output_is_final=output_is_final, times=times, path_format_arguments=endpoint
        )

    def _region(self, subscription_id: str, resource_group: str) -> str:
        return self._regions.get((subscription_id.lower(), resource_group.lower()), "")

    def _saw_region(self, subscription_id: str, resource_group: str, location: str) -> None:
        if location:
            self._regions[(subscription_id.lower(), resource_group.lower())] = location.replace(" ", "").lower()

    async def get_disk(self, disk_id: str) -> Disk | None:
        rid = parse_resource_id(disk_id)
        if rid.resource_type.lower() != "disks":
            raise PermanentError(f"{disk_id!r} is not a managed disk ID", code="InvalidResourceId")
        client = self._client(rid.subscription_id)

        async def fetch() -> Any:
            # The disk's ARM JSON, not the SDK's `Disk` model (it cost more CPU than the call); errors as before.
            response = await client.disks.get(
                rid.resource_group, rid.name, stream=True, cls=lambda answer, _body, _headers: answer.http_response
            )
            await response.read()
            return response.json()

        try:
            raw = await self._call(
                "disks.get", rid.subscription_id, self._region(rid.subscription_id, rid.resource_group), fetch
            )
        except NotFound:
            return None
        disk = disk_from_azure(raw)
        self._saw_region(rid.subscription_id, rid.resource_group, disk.location)
        return disk

    async def list_snapshots(self, subscription_id: str, resource_group: str | None) -> list[Snapshot]:
        client = self._client(subscription_id)

        async def every_page() -> list[Snapshot]:
            snapshots = client.snapshots
            pages = snapshots.list() if resource_group is None else snapshots.list_by_resource_group(resource_group)
            found, clock = [], _CALL.get()
            async for page in pages.by_page():
                found.extend([snapshot_from_azure(s) async for s in page])
                if clock is not None:  # the next page's first request arms a deadline of its own
                    clock.started = None  # (250,000 snapshots are 2,500 pages: one deadline over all cut them)
            return found

        try:
            # A subscription-wide list spans regions: it draws on no one region's budget.
            region = self._region(subscription_id, resource_group) if resource_group else ""
            found = await self._call("snapshots.list", subscription_id, region, every_page)
        except NotFound:
            return []
        if found and resource_group:
            self._saw_region(subscription_id, resource_group, found[0].location)
        return found

    async def get_snapshot(self, subscription_id: str, resource_group: str, name: str) -> Snapshot | None:
        """One snapshot by name, or None."""
        client = self._client(subscription_id)
        try:
            raw = await self._call(
                "snapshots.get",
                subscription_id,
                self._region(subscription_id, resource_group),
                lambda: client.snapshots.get(resource_group, name),
            )
        except NotFound:
            return None
        return snapshot_from_azure(raw)

    async def create_snapshot(self, request: SnapshotRequest) -> Snapshot:
        client = self._client(request.subscription_id)
        self._saw_region(request.subscription_id, request.resource_group, request.location)
        # The body the SDK's `Snapshot` model serialized to, written as JSON: the model cost more CPU than the PUT.
        sku = {"sku": {"name": request.sku}} if request.sku else {}
        creation = {"createOption": request.create_option, "sourceResourceId": request.source_disk_id}
        props = {"creationData": creation, "incremental": request.incremental}
        body: dict[str, Any] = {"location": request.location, "tags": dict(request.tags), **sku, "properties": props}

        polling = self._polling("snapshots.create", output_is_final=request.background_copy is False)
        created = await create_or_pending(
            lambda create: self._call(
                "snapshots.create",
                request.subscription_id,
                request.location,
                create,
                outcome=lambda s: "ok" if s is not None else "pending",
            ),
            lambda: client.snapshots.begin_create_or_update(  # type: ignore[call-overload]  # takes JSON too
                request.resource_group, request.name, body, polling=polling
            ),
            snapshot_from_azure,
            self.options.lro_timeout,
        )
        if created is not None:
            return created
        log.info(
            "snapshot create still running at its deadline",
            extra={"snapshot": request.name, "resource_group": request.resource_group},
        )
        seen = await self.get_snapshot(request.subscription_id, request.resource_group, request.name)
        if seen is None:
            raise TransientError(
                f"snapshot {request.name} was accepted but is not visible yet; it is looked up again next round",
                retry_after=self.options.polling_interval,
                code="OperationInProgress",
            )
        return seen

    async def delete_snapshot(self, subscription_id: str, resource_group: str, name: str) -> None:
        client = self._client(subscription_id)

        async def delete() -> bool:
            polling = self._polling("snapshots.delete")
            poller = await client.snapshots.begin_delete(resource_group, name, polling=polling)
            try:
                await asyncio.wait_for(poller.result(), timeout=self.options.lro_timeout)
            except TimeoutError:
                return False  # Azure finishes the delete; the next list shows it gone
            return True

        try:
            await self._call(
                "snapshots.delete",
                subscription_id,
                self._region(subscription_id, resource_group),
                delete,
                outcome=lambda done: "ok" if done else "pending",
            )
        except NotFound:
            return

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
        if self._owns_credential:
            await self._credential.close()

    async def __aenter__(self) -> AzureCloud:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
