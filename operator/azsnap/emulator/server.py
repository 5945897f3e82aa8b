"""The emulator's HTTP face: ARM routes for disks, snapshots and operations, and `/_emulator/` control routes."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

from aiohttp import web

from azsnap.clock import Clock
from azsnap.emulator.arm import ArmError
from azsnap.emulator.authz import forbidden, linked_forbidden
from azsnap.emulator.config import API_VERSION, EmulatorConfig
from azsnap.emulator.control import Controlled, add_control_routes
from azsnap.emulator.lro import json_response, lro_headers, poll_answer
from azsnap.emulator.records import DiskRecord, Operation
from azsnap.emulator.snapshots import echo
from azsnap.emulator.state import Store
from azsnap.emulator.throttling import Throttler, injected_throttle, throttled_error

__all__ = ["Served", "make_app"]

T = TypeVar("T")


class Served(Controlled, Protocol):
    """What the ARM face uses of `azsnap.emulator.emulator.Emulator` (named here: the emulator imports us)."""

    clock: Clock
    config: EmulatorConfig
    store: Store
    throttler: Throttler

    def record(self, method: str, path: str, status: int, operation: str) -> None: ...


_PROVIDER: Final = r"/providers/Microsoft\.Compute"
_SUB: Final = r"^/subscriptions/(?P<sub>[^/]+)"
_RG: Final = r"/resourceGroups/(?P<rg>[^/]+)"
SUPPORTED_API_VERSIONS: Final = frozenset({API_VERSION})


@dataclass(frozen=True)
class _Route:
    pattern: re.Pattern[str]
    methods: dict[str, str]  # HTTP method → operation name


_ROUTES: Final = (
    _Route(
        re.compile(_SUB + _RG + _PROVIDER + r"/snapshots/(?P<name>[^/]+)/?$", re.I),
        {"GET": "snapshots.get", "PUT": "snapshots.put", "DELETE": "snapshots.delete"},
    ),
    _Route(
        re.compile(
            _SUB + _RG + _PROVIDER + r"/snapshots/(?P<name>[^/]+)/(?P<action>beginGetAccess|endGetAccess)$", re.I
        ),
        {"POST": "snapshots.access"},
    ),
    _Route(re.compile(_SUB + _RG + _PROVIDER + r"/snapshots/?$", re.I), {"GET": "snapshots.list"}),
    _Route(re.compile(_SUB + _PROVIDER + r"/snapshots/?$", re.I), {"GET": "snapshots.list"}),
    _Route(
        re.compile(_SUB + _RG + _PROVIDER + r"/disks/(?P<name>[^/]+)/?$", re.I),
        {"GET": "disks.get", "PUT": "disks.put", "DELETE": "disks.delete"},
    ),
    _Route(re.compile(_SUB + _RG + _PROVIDER + r"/disks/?$", re.I), {"GET": "disks.list"}),
    _Route(re.compile(_SUB + _PROVIDER + r"/disks/?$", re.I), {"GET": "disks.list"}),
    _Route(
        re.compile(_SUB + _PROVIDER + r"/locations/(?P<loc>[^/]+)/(?:Disk)?Operations/(?P<op>[^/]+)/?$", re.I),
        {"GET": "operations.get"},
    ),
)


class _Dropped(Exception):
    """The connection was cut on purpose (fault `drop`)."""


def _subscription_throttled(subscription_id: str, method: str, kind: str, wait_s: int) -> ArmError:
    """ARM's backend-storage 429 as recorded: the wait only in the message, no Retry-After, no rate-limit headers."""
    operation = f"{method}/SUBSCRIPTIONS/RESOURCEGROUPS/PROVIDERS/MICROSOFT.COMPUTE/{kind.upper()}/"
    return ArmError(
        429,
        "SubscriptionRequestsThrottled",
        f"Number of requests for subscription '{subscription_id}' and operation '{operation}' exceeded the "
        f"backend storage limit. Please try again after '{wait_s}' seconds.",
        arm_level=True,
    )


def _server_timeout(subscription_id: str, when: str) -> ArmError:
    """The gateway's 503 on a poll as recorded: no Retry-After, no rate-limit headers."""
    tracking = str(uuid.uuid4())
    return ArmError(
        503,
        "ServerTimeout",
        f"The request timed out. Diagnostic information: timestamp '{when}', subscription id '{subscription_id}', "
        f"tracking id '{tracking}', request correlation id '{tracking}'.",
        arm_level=True,
    )


class _Handler:
    """Answers ARM requests for one emulator."""

    def __init__(self, emulator: Served) -> None:
        self.emu = emulator

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        seen = ["unknown"]  # the operation, once routed
        status = 0  # a dropped connection is recorded with status 0
        try:
            response = await self._answer(request, seen)
            status = response.status
            return response
        finally:
            self.emu.record(request.method, request.path, status, seen[0])

    async def _answer(self, request: web.Request, seen: list[str]) -> web.StreamResponse:
        headers = {"x-ms-request-id": str(uuid.uuid4()), "x-ms-correlation-request-id": str(uuid.uuid4())}
        rate_headers: Mapping[str, str] = {}
        try:
            match, operation = self._route(request)
            seen[0] = operation
            if not request.headers.get("Authorization", "").strip():
                raise ArmError(
                    401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
                )
            version = request.query.get("api-version")
            if not version:
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            if version not in SUPPORTED_API_VERSIONS:
                raise ArmError(
                    400,
                    "NoRegisteredProviderFound",
                    f"No registered resource provider found for API version '{version}'. "
                    f"The supported api-versions are '{', '.join(sorted(SUPPORTED_API_VERSIONS))}'.",
                )
            body: Any = None
            if request.method in ("PUT", "POST"):
                body = await self._body(request)
            self.emu.store.settle(self.emu.clock.now())
            fail = await self._faults(operation, request, match, body)
            location = self._location(operation, match, body)
            rate_headers, refused = self.emu.throttler.charge(operation, request.method, match["sub"], location)
            if refused is not None:
                raise throttled_error(refused)
            handler = getattr(self, "_" + operation.replace(".", "_"))
            response: web.StreamResponse = await handler(request, match, body, fail)
        except ArmError as exc:
            response = json_response(exc.status, exc.body(), exc.headers)
            if exc.arm_level:
                rate_headers = {}
        response.headers.update(headers)
        response.headers.extend(rate_headers)  # one line per policy when the throttler sends them so
        return response

    def _route(self, request: web.Request) -> tuple[re.Match[str], str]:
        for route in _ROUTES:
            match = route.pattern.match(request.path)
            if match is None:
                continue
            operation = route.methods.get(request.method)
            if operation is None:
                raise ArmError(
                    405,
                    "MethodNotAllowed",
                    f"The {request.method} method is not allowed on {request.path} by this emulator.",
                )
            return match, operation
        raise ArmError(
            404,
            "InvalidResourceType",
            f"The resource type of '{request.path}' is not served by this emulator "
            "(it serves Microsoft.Compute disks, snapshots and their operations).",
        )

    @staticmethod
    async def _body(request: web.Request) -> Any:
        text = await request.text()
        try:
            return json.loads(text) if text.strip() else None
        except json.JSONDecodeError as exc:
            raise ArmError(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: {exc.msg}.",
            ) from exc

    async def _faults(self, operation: str, request: web.Request, match: re.Match[str], body: Any) -> str | None:
        """Apply the faults drawn for this request; returns an LRO failure to plant, if any."""
        for rule in self.emu.faults.draw(operation):
            if rule.kind == "latency":
                await asyncio.sleep(rule.latency_s)  # the one wall-time wait (looptime fast-forwards it)
            elif rule.kind == "drop":
                raise _Dropped
            elif rule.kind == "429":
                raise injected_throttle(rule.retry_after_s)
            elif rule.kind == "subscription_throttled":
                kind = operation.split(".", 1)[0]
                raise _subscription_throttled(match["sub"], request.method, kind, rule.retry_after_s)
            elif rule.kind == "500":
                raise ArmError(500, "InternalServerError", "Encountered internal server error. Please try again.")
            elif rule.kind == "503":
                raise _server_timeout(match["sub"], self.emu.clock.now().strftime("%Y%m%dT%H%M%SZ"))
            elif rule.kind == "forbidden":
                raise forbidden(operation, request.path)
            elif rule.kind == "linked_forbidden":
                raise linked_forbidden(operation, request.path, body)
            else:
                return rule.kind
        return None

    def _location(self, operation: str, match: re.Match[str], body: Any) -> str:
        groups = match.groupdict()
        if (
            operation in ("snapshots.put", "disks.put")
            and isinstance(body, dict)
            and isinstance(body.get("location"), str)
        ):
            return str(body["location"]).replace(" ", "").lower()
        if operation == "operations.get":
            return str(groups["loc"]).lower()
        store = self.emu.store
        if groups.get("name") and groups.get("rg"):
            k = (groups["sub"].lower(), groups["rg"].lower(), groups["name"].lower())
            found = store.snapshots.get(k) if operation.startswith("snapshots") else store.disks.get(k)
            if found is not None:
                return found.location
        return store.group_location(groups["sub"], groups.get("rg"))

    # ---- snapshots ---------------------------------------------------------------------------------------------

    def _accepted(self, request: web.Request, op: Operation, body: Any = None) -> web.Response:
        """202 with Azure's operation headers; the body is the request's echo (PUT) or nothing (DELETE, POST)."""
        headers = lro_headers(str(request.url.origin()), op, API_VERSION, self.emu.config.poll_retry_after_s)
        if body is None:
            return web.Response(status=202, headers=headers)
        return json_response(202, body, headers)

    async def _snapshots_put(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        now = self.emu.clock.now()
        planted = fail if fail in ("lro_failed", "failed_after_limit", "copy_failed") else None
        _, op = self.emu.store.put_snapshot(now, m["sub"], m["rg"], m["name"], body, fail=planted)  # type: ignore[arg-type]
        assert op is not None  # put_snapshot always starts an operation
        return self._accepted(request, op, echo("snapshots", m["sub"], m["rg"], m["name"], body))

    async def _snapshots_get(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        now = self.emu.clock.now()
        return json_response(200, self.emu.store.get_snapshot(m["sub"], m["rg"], m["name"]).to_json(now))

    async def _snapshots_delete(
        self, request: web.Request, m: re.Match[str], body: Any, fail: str | None
    ) -> web.Response:
        op = self.emu.store.delete_snapshot(
            self.emu.clock.now(), m["sub"], m["rg"], m["name"], fail=fail == "lro_failed"
        )
        if op is None:
            return web.Response(status=204)
        return self._accepted(request, op)

    async def _snapshots_access(
        self, request: web.Request, m: re.Match[str], body: Any, fail: str | None
    ) -> web.Response:
        now = self.emu.clock.now()
        action = "beginGetAccess" if m["action"].lower() == "begingetaccess" else "endGetAccess"
        op = self.emu.store.snapshot_access(now, m["sub"], m["rg"], m["name"], action, body)
        return self._accepted(request, op)

    async def _snapshots_list(
        self, request: web.Request, m: re.Match[str], body: Any, fail: str | None
    ) -> web.Response:
        now = self.emu.clock.now()
        records = self.emu.store.list_snapshots(m["sub"], m.groupdict().get("rg"))
        return self._page(request, records, lambda record: record.to_json(now))

    # ---- disks -------------------------------------------------------------------------------------------------

    async def _disks_get(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        return json_response(200, self.emu.store.get_disk(m["sub"], m["rg"], m["name"]).to_json())

    async def _disks_put(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        _, op = self.emu.store.put_disk(
            self.emu.clock.now(), m["sub"], m["rg"], m["name"], body, fail=fail == "lro_failed"
        )
        return self._accepted(request, op, echo("disks", m["sub"], m["rg"], m["name"], body))

    async def _disks_delete(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        op = self.emu.store.start_disk_delete(
            self.emu.clock.now(), m["sub"], m["rg"], m["name"], fail=fail == "lro_failed"
        )
        return web.Response(status=204) if op is None else self._accepted(request, op)

    async def _disks_list(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        return self._page(request, self.emu.store.list_disks(m["sub"], m.groupdict().get("rg")), DiskRecord.to_json)

    def _page(self, request: web.Request, items: Sequence[T], render: Callable[[T], dict[str, Any]]) -> web.Response:
        """One page of a list; only its own items are rendered (a list may hold hundreds of thousands)."""
        raw = request.query.get("$skiptoken", "0")
        if not raw.isdigit():
            raise ArmError(400, "InvalidSkipToken", f"The skip token '{raw}' is not valid.")
        start, size = int(raw), self.emu.config.page_size
        page: dict[str, Any] = {"value": [render(item) for item in items[start : start + size]]}
        if start + size < len(items):
            page["nextLink"] = (
                f"{request.url.origin()}{request.path}?api-version={API_VERSION}&$skiptoken={start + size}"
            )
        return json_response(200, page)

    # ---- operations --------------------------------------------------------------------------------------------

    async def _operations_get(
        self, request: web.Request, m: re.Match[str], body: Any, fail: str | None
    ) -> web.Response:
        op = self.emu.store.operation(m["sub"], m["op"])
        return poll_answer(self.emu.store, op, request, self.emu.clock.now(), self.emu.config.poll_retry_after_s)


def make_app(emulator: Served) -> web.Application:
    """The aiohttp application: control routes under `/_emulator/`, everything else ARM."""
    app = web.Application(client_max_size=4 * 1024 * 1024)
    add_control_routes(app, emulator)
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]] = _Handler(emulator)
    app.router.add_route("*", "/{tail:.*}", _dropping(handler))
    return app


def _dropping(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except _Dropped:
            if request.transport is not None:
                request.transport.abort()
            raise web.HTTPServiceUnavailable() from None  # never reaches the client: the connection is gone

    return answer
