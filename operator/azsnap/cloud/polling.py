"""Polling a long-running ARM operation to its end, with the finished resource handed back as ARM JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from azure.core.pipeline import PipelineResponse
from azure.core.polling.base_polling import LocationPolling, StatusCheckPolling
from azure.mgmt.core.polling.arm_polling import AzureAsyncOperationPolling, BodyContentPolling
from azure.mgmt.core.polling.async_arm_polling import AsyncARMPolling

from azsnap.cloud.errors import TransientError

__all__ = ["JsonResultPolling", "create_or_pending"]

T = TypeVar("T")


class _Poller(Protocol):
    async def result(self) -> Any: ...


def _output(pipeline_response: PipelineResponse[Any, Any]) -> Any:
    """The finished resource an operation status carries as `properties.output` (Compute's), else None."""
    response = pipeline_response.http_response
    if not response.body():
        return None
    answer = response.json()
    properties = answer.get("properties") if isinstance(answer, dict) and "status" in answer else None
    return properties.get("output") if isinstance(properties, dict) else None


class _OutputOperationPolling(AzureAsyncOperationPolling):  # type: ignore[type-arg]  # as the SDK's own
    """ARM's Azure-AsyncOperation polling, with no final GET when the finished status already carries the resource.

    Compute answers a snapshot's finished operation with the snapshot as `properties.output`, the same JSON as
    the GET on the snapshot (see the recorded answers) except the copy progress (`completionPercent`) of a
    snapshot that copies in the background: only for one that does not is the GET left out.
    """

    def get_final_get_url(self, pipeline_response: PipelineResponse[Any, Any]) -> str | None:
        if _output(pipeline_response) is not None:
            return None
        return super().get_final_get_url(pipeline_response)


class JsonResultPolling(AsyncARMPolling):
    """ARM's polling, with the finished resource handed back as its JSON: the SDK's model of it is never read."""

    def __init__(self, timeout: float, *, output_is_final: bool = False, **kwargs: Any) -> None:
        """`output_is_final`: an operation's `properties.output` is the whole resource, so no final GET is made."""
        first = _OutputOperationPolling() if output_is_final else AzureAsyncOperationPolling()
        algorithms = [first, LocationPolling(), BodyContentPolling(), StatusCheckPolling()]
        super().__init__(timeout, lro_algorithms=algorithms, **kwargs)
        self._output_is_final = output_is_final

    async def run(self) -> None:
        # azure-core asks for the status the moment Azure accepted the operation. A snapshot or a disk is never
        # made that soon, so the first poll waits an interval (or the answer's Retry-After) like every later one.
        if not self.finished():
            await self._delay()
        await super().run()

    def _parse_resource(self, pipeline_response: PipelineResponse[Any, Any]) -> Any:
        output = _output(pipeline_response) if self._output_is_final else None
        if output is not None:
            return output
        response = pipeline_response.http_response
        return response.json() if response.body() else None


async def create_or_pending(
    call: Callable[[Callable[[], Awaitable[T | None]]], Awaitable[T | None]],
    begin: Callable[[], Awaitable[_Poller]],
    convert: Callable[[Any], T],
    wait_s: float,
) -> T | None:
    """Run an ARM create through `call`; None once Azure accepted it and it still runs at its deadline.

    The operation is never cancelled from here: it goes on in Azure and the caller looks the resource up.
    """
    accepted = False

    async def create() -> T | None:
        nonlocal accepted
        poller = await begin()
        accepted = True
        try:
            result = await asyncio.wait_for(poller.result(), timeout=wait_s)
        except TimeoutError:
            return None
        return convert(result)

    try:
        return await call(create)
    except TransientError as exc:
        if exc.code != "CallDeadline" or not accepted:
            raise
        return None
