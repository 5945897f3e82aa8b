"""azure-core pipeline pieces of `AzureCloud`: per-request pacing, no retry of 429s, and each call's deadline."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import AsyncHTTPPolicy, AsyncRetryPolicy
from azure.core.pipeline.transport import AsyncHttpResponse, HttpRequest

from azsnap.cloud.accounting import BeforeRequest, operation_of

__all__ = ["CALL", "SCOPE", "CallClock", "NoThrottleRetry", "WaitPolicy", "no_wait"]


async def no_wait(operation: str, subscription_id: str, location: str) -> None:
    return None


#: The subscription and location of the `AzureCloud` call the current task is making (for `WaitPolicy`).
SCOPE: ContextVar[tuple[str, str] | None] = ContextVar("azsnap_call_scope", default=None)


@dataclass
class CallClock:
    """One call's overall deadline: armed when its first request is granted, then held whatever is retried."""

    limit: float
    timeout: asyncio.Timeout | None = None
    started: float | None = None

    def first_request(self) -> None:
        if self.started is None and self.timeout is not None:
            self.started = asyncio.get_running_loop().time()
            self.timeout.reschedule(self.started + self.limit)


CALL: ContextVar[CallClock | None] = ContextVar("azsnap_call_clock", default=None)


class NoThrottleRetry(AsyncRetryPolicy):  # type: ignore[type-arg]  # its type parameters add nothing here
    """azure-core's retry, except for 429: a throttled call returns at once, and the pacer holds its budget.

    azure-core would sleep the whole `Retry-After` (Azure sends up to 1,200 s) inside the call, blind to the
    call's deadline and to every other call waiting on the same budget.
    """

    def is_retry(self, settings: dict[str, Any], response: PipelineResponse[Any, Any]) -> bool:
        if response.http_response.status_code == 429:
            return False
        return bool(super().is_retry(settings, response))


class WaitPolicy(AsyncHTTPPolicy[HttpRequest, AsyncHttpResponse]):
    """Awaits `before_request` for every attempt azure-core sends: first tries, retries, pages and LRO polls."""

    def __init__(self, before_request: BeforeRequest) -> None:
        super().__init__()
        self._before_request = before_request

    async def send(self, request: PipelineRequest[HttpRequest]) -> PipelineResponse[HttpRequest, AsyncHttpResponse]:
        http = request.http_request
        subscription_id, location = SCOPE.get() or ("", "")
        await self._before_request(operation_of(http.method, http.url), subscription_id, location)
        clock = CALL.get()
        if clock is not None:
            clock.first_request()
        return await self.next.send(request)
