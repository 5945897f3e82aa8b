"""The Azure implementation of `CloudClient`, on the async `azure-mgmt-compute` client: the only code that calls Azure."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy
from azure.core.pipeline.transport import AioHttpTransport, AsyncHttpResponse, HttpRequest
from azure.mgmt.compute.aio import ComputeManagementClient
from azure.mgmt.compute.models import CreationData, SnapshotProperties, SnapshotSku
from azure.mgmt.compute.models import Snapshot as SdkSnapshot

from azsnap.cloud.accounting import AccountingPolicy, BeforeRequest, OnResponse, RequestStats, operation_of
from azsnap.cloud.credentials import arm_scope, make_credential
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
from azsnap.domain.observed import Disk, Snapshot
from azsnap.settings import Settings

__all__ = ["AzureCloud", "AzureOptions"]

log = logging.getLogger(__name__)

T = TypeVar("T")

PUBLIC_ARM: Final = "https://management.azure.com"


@dataclass(frozen=True)
class AzureOptions:
    """How `AzureCloud` talks to ARM. Retries are azure-core's own; azsnap adds no second retry loop."""

    base_url: str = PUBLIC_ARM
    #: Extra CA bundle to trust (the emulator's throwaway CA); None trusts the system store only.
    ca_bundle: str | None = None
    #: Seconds between LRO polls when Azure sends no Retry-After.
    polling_interval: float = 5.0
    #: How long one create or delete waits for its long-running operation before returning.
    lro_timeout: float = 60.0
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


async def _no_wait(operation: str, subscription_id: str, location: str) -> None:
    return None


#: The subscription and location of the `AzureCloud` call the current task is making (for `_WaitPolicy`).
_SCOPE: ContextVar[tuple[str, str] | None] = ContextVar("azsnap_call_scope", default=None)


class _WaitPolicy(AsyncHTTPPolicy[HttpRequest, AsyncHttpResponse]):
    """Awaits `before_request` for every attempt azure-core sends: first tries, retries, pages and LRO polls."""

    def __init__(self, before_request: BeforeRequest) -> None:
        super().__init__()
        self._before_request = before_request

    async def send(self, request: PipelineRequest[HttpRequest]) -> PipelineResponse[HttpRequest, AsyncHttpResponse]:
        http = request.http_request
        subscription_id, location = _SCOPE.get() or ("", "")
        await self._before_request(operation_of(http.method, http.url), subscription_id, location)
        return await self.next.send(request)


class AzureCloud(CloudClient):
    """`CloudClient` over ARM. One SDK client per subscription, made on first use (the subscription comes from IDs).

    Long-running operations are waited for at most `options.lro_timeout`; past it the Azure operation goes on,
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
        self._before_request: BeforeRequest = before_request or _no_wait
        self._client_kwargs = dict(client_kwargs or {})
        self._clients: dict[str, ComputeManagementClient] = {}
        self._ssl_context: ssl.SSLContext | None = None
        self._closed = False

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
                "retry_total": opts.retry_total,
                "retry_backoff_factor": opts.retry_backoff_factor,
                "retry_backoff_max": opts.retry_backoff_max,
                "read_timeout": opts.read_timeout,
                "per_retry_policies": [_WaitPolicy(self._before_request), self._policy],
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
        token = _SCOPE.set((subscription_id, location))
        try:
            result = await call()
        except Exception as exc:
            error = map_error(exc, default_retry_after=self.options.default_retry_after)
            self.stats.record_call(operation, outcome_of(error))
            if error is exc:
                raise
            raise error from exc
        finally:
            _SCOPE.reset(token)
        self.stats.record_call(operation, outcome(result))
        return result

    async def get_disk(self, disk_id: str) -> Disk | None:
        rid = parse_resource_id(disk_id)
        if rid.resource_type.lower() != "disks":
            raise PermanentError(f"{disk_id!r} is not a managed disk ID", code="InvalidResourceId")
        client = self._client(rid.subscription_id)
        try:
            raw = await self._call(
                "disks.get", rid.subscription_id, "", lambda: client.disks.get(rid.resource_group, rid.name)
            )
        except NotFound:
            return None
        return disk_from_azure(raw)

    async def list_snapshots(self, subscription_id: str, resource_group: str | None) -> list[Snapshot]:
        client = self._client(subscription_id)

        async def every_page() -> list[Snapshot]:
            pages = (
                client.snapshots.list()
                if resource_group is None
                else client.snapshots.list_by_resource_group(resource_group)
            )
            return [snapshot_from_azure(s) async for s in pages]

        try:
            return await self._call("snapshots.list", subscription_id, "", every_page)
        except NotFound:
            return []

    async def get_snapshot(self, subscription_id: str, resource_group: str, name: str) -> Snapshot | None:
        """One snapshot by name, or None."""
        client = self._client(subscription_id)
        try:
            raw = await self._call(
                "snapshots.get", subscription_id, "", lambda: client.snapshots.get(resource_group, name)
            )
        except NotFound:
            return None
        return snapshot_from_azure(raw)

    async def create_snapshot(self, request: SnapshotRequest) -> Snapshot:
        client = self._client(request.subscription_id)
        body = SdkSnapshot(
            location=request.location,
            tags=dict(request.tags),
            sku=SnapshotSku(name=request.sku) if request.sku else None,
            properties=SnapshotProperties(
                creation_data=CreationData(create_option="Copy", source_resource_id=request.source_disk_id),
                incremental=request.incremental,
            ),
        )

        async def create() -> Snapshot | None:
            poller = await client.snapshots.begin_create_or_update(request.resource_group, request.name, body)
            try:
                result = await asyncio.wait_for(poller.result(), timeout=self.options.lro_timeout)
            except TimeoutError:
                return None  # the operation goes on in Azure; never cancelled from here
            return snapshot_from_azure(result)

        created = await self._call(
            "snapshots.create",
            request.subscription_id,
            request.location,
            create,
            outcome=lambda s: "ok" if s is not None else "pending",
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
            poller = await client.snapshots.begin_delete(resource_group, name)
            try:
                await asyncio.wait_for(poller.result(), timeout=self.options.lro_timeout)
            except TimeoutError:
                return False  # Azure finishes the delete; the next list shows it gone
            return True

        try:
            await self._call(
                "snapshots.delete", subscription_id, "", delete, outcome=lambda done: "ok" if done else "pending"
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
