"""Polling a long-running ARM operation to its end, with the finished resource handed back as ARM JSON."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

from azure.core.pipeline import PipelineResponse
from azure.core.polling.base_polling import LocationPolling, StatusCheckPolling
from azure.mgmt.core.polling.arm_polling import AzureAsyncOperationPolling, BodyContentPolling
from azure.mgmt.core.polling.async_arm_polling import AsyncARMPolling

from azsnap.cloud.errors import TransientError

__all__ = ["JsonResultPolling", "OperationTimes", "create_or_pending"]

T = TypeVar("T")

#: The first poll never waits longer than this for a typical duration (a few slow operations must not stall all).
MAX_FIRST_WAIT: Final = 30.0


class OperationTimes:
    """How long Azure took for the latest long-running operations of one kind, as its own status answers say.

    A finished operation's status carries `startTime` and `endTime` (see the recorded answers). The median of the
    latest `keep` is the typical duration: the first poll of the next operation waits that long rather than one
    polling interval, when it is longer (never shorter, so no operation is polled more often than before).
    """

    def __init__(self, keep: int = 16) -> None:
        self._recent: deque[float] = deque(maxlen=keep)

    def record(self, status: Any) -> None:
        """Note the duration of a finished operation from its status body (ignored without both times)."""
        if not isinstance(status, dict):
            return
        try:
            took = datetime.fromisoformat(status["endTime"]) - datetime.fromisoformat(status["startTime"])
        except (KeyError, TypeError, ValueError):
            return
        if took.total_seconds() >= 0:
            self._recent.append(took.total_seconds())

    def typical(self) -> float | None:
        """The median of the recorded durations, at most `MAX_FIRST_WAIT`; None before the first."""
        return min(statistics.median(self._recent), MAX_FIRST_WAIT) if self._recent else None


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

    def __init__(
        self,
        timeout: float,
        *,
        output_is_final: bool = False,
        times: OperationTimes | None = None,
        **kwargs: Any,
    ) -> None:
        """`output_is_final`: an operation's `properties.output` is the whole resource, so no final GET is made.

        `times`: the durations of earlier operations of the same kind; the first poll waits the typical one.
        """
        first = _OutputOperationPolling() if output_is_final else AzureAsyncOperationPolling()
        algorithms = [first, LocationPolling(), BodyContentPolling(), StatusCheckPolling()]
        super().__init__(timeout, lro_algorithms=algorithms, **kwargs)
        self._output_is_final = output_is_final
        self._times = times

    async def run(self) -> None:
        # azure-core asks for the status the moment Azure accepted the operation. A snapshot or a disk is never
        # made that soon, so the first poll waits an interval (or the answer's Retry-After) like every later one,
        # or as long as such operations typically took, when that is longer: Azure sends no Retry-After on them.
        if not self.finished():
            typical = self._times.typical() if self._times is not None else None
            delay = self._extract_delay()
            await self._sleep(delay if typical is None else max(delay, typical))
        await super().run()

    async def update_status(self) -> None:
        await super().update_status()
        if self._times is not None and self.finished():
            with contextlib.suppress(ValueError):  # no body, or not JSON: nothing to learn from this answer
                self._times.record(self._pipeline_response.http_response.json())

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
