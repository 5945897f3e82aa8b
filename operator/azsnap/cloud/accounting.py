"""Request accounting: calls by operation and outcome, 429s on the wire, and Azure's last reported rate-limit budget."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy

__all__ = [
    "AccountingPolicy",
    "BeforeRequest",
    "OnResponse",
    "RequestStats",
    "operation_of",
    "parse_remaining_resource",
]

#: Called with (operation, HTTP status, response headers) for every answer, retries included.
OnResponse = Callable[[str, int, Mapping[str, str]], None]
#: Awaited with (operation, subscription ID, location or "") before each Azure call azsnap makes.
BeforeRequest = Callable[[str, str, str], Awaitable[None]]

REMAINING_RESOURCE: Final = "x-ms-ratelimit-remaining-resource"
REMAINING_SUBSCRIPTION_PREFIX: Final = "x-ms-ratelimit-remaining-subscription-"

_PATH_RE: Final = re.compile(
    r"^/subscriptions/[^/]+(?:/resourceGroups/[^/]+)?/providers/Microsoft\.Compute/"
    r"(?P<kind>disks|snapshots|locations)(?:/(?P<name>[^/]+))?(?P<rest>/.*)?$",
    re.IGNORECASE,
)


def operation_of(method: str, url: str) -> str:
    """Name an HTTP request the way azsnap counts it: `disks.get`, `snapshots.create`, `operations.get`, ..."""
    match = _PATH_RE.match(urlsplit(url).path)
    verb = method.upper()
    if match is None:
        return f"other.{verb.lower()}"
    kind = match["kind"].lower()
    if kind == "locations":
        return "operations.get"  # polling a long-running operation's status
    if match["name"] is None or match["rest"]:
        return f"{kind}.list" if verb == "GET" and match["name"] is None else f"{kind}.{verb.lower()}"
    return {"GET": f"{kind}.get", "PUT": f"{kind}.create", "PATCH": f"{kind}.update", "DELETE": f"{kind}.delete"}.get(
        verb, f"{kind}.{verb.lower()}"
    )


def parse_remaining_resource(value: str) -> dict[str, int]:
    """`Microsoft.Compute/PolicyA;239,Microsoft.Compute/PolicyB;1919` → {policy: remaining}; bad parts are skipped."""
    result: dict[str, int] = {}
    for part in value.split(","):
        name, sep, number = part.strip().rpartition(";")
        if not sep or not name:
            continue
        try:
            result[name.strip()] = int(number.strip())
        except ValueError:
            continue
    return result


@dataclass
class RequestStats:
    """Counters for metrics and benchmarks, filled by `AzureCloud` and its `AccountingPolicy`.

    `calls` counts azsnap's calls (one per `CloudClient` method call) by (operation, outcome), outcome being
    ok, not_found, throttled, transient or permanent. `responses` counts HTTP answers on the wire by
    (operation, status), including those azure-core retried and LRO polls; `throttled_responses` counts the 429s
    among them by operation. `remaining_resource` and `remaining_subscription` hold the last values Azure sent.
    """

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    responses: Counter[tuple[str, int]] = field(default_factory=Counter)
    throttled_responses: Counter[str] = field(default_factory=Counter)
    connection_errors: Counter[str] = field(default_factory=Counter)
    remaining_resource: dict[str, int] = field(default_factory=dict)
    remaining_subscription: dict[str, int] = field(default_factory=dict)
    #: The longest single call, from its first request to its return (retries, pages and LRO polls included).
    longest_call_s: float = 0.0

    def record_duration(self, seconds: float) -> None:
        self.longest_call_s = max(self.longest_call_s, seconds)

    def record_call(self, operation: str, outcome: str) -> None:
        self.calls[(operation, outcome)] += 1

    def record_response(self, operation: str, status: int, headers: Mapping[str, str]) -> None:
        self.responses[(operation, status)] += 1
        if status == 429:
            self.throttled_responses[operation] += 1
        for name, value in headers.items():
            lowered = name.lower()
            if lowered == REMAINING_RESOURCE:
                self.remaining_resource.update(parse_remaining_resource(value))
            elif lowered.startswith(REMAINING_SUBSCRIPTION_PREFIX):
                try:
                    self.remaining_subscription[lowered.removeprefix(REMAINING_SUBSCRIPTION_PREFIX)] = int(value)
                except ValueError:
                    continue

    @property
    def throttled(self) -> int:
        """429 answers seen on the wire, retried or not."""
        return sum(self.throttled_responses.values())

    def calls_of(self, operation: str) -> dict[str, int]:
        """Outcome counts of one operation."""
        return {outcome: n for (op, outcome), n in self.calls.items() if op == operation}

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy (benchmarks write it out)."""
        return {
            "calls": {f"{op}:{outcome}": n for (op, outcome), n in sorted(self.calls.items())},
            "responses": {f"{op}:{status}": n for (op, status), n in sorted(self.responses.items())},
            "throttled": self.throttled,
            "connection_errors": dict(self.connection_errors),
            "remaining_resource": dict(self.remaining_resource),
            "remaining_subscription": dict(self.remaining_subscription),
            "longest_call_s": round(self.longest_call_s, 3),
        }


class AccountingPolicy(SansIOHTTPPolicy[Any, Any]):
    """An azure-core policy placed after the retry policy, so it sees every attempt's answer, 429s included."""

    def __init__(self, stats: RequestStats, on_response: OnResponse | None = None) -> None:
        self._stats = stats
        self._on_response = on_response

    def on_response(self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]) -> None:
        http_request = request.http_request
        operation = operation_of(http_request.method, http_request.url)
        status = response.http_response.status_code
        headers: Mapping[str, str] = response.http_response.headers
        self._stats.record_response(operation, status, headers)
        if self._on_response is not None:
            self._on_response(operation, status, headers)

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        http_request = request.http_request
        self._stats.connection_errors[operation_of(http_request.method, http_request.url)] += 1
