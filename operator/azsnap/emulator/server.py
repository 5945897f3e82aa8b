"""The emulator's HTTP face: ARM routes for disks, snapshots and operations, and `/_emulator/` control routes."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from azsnap.emulator.arm import ArmError
from azsnap.emulator.config import API_VERSION
from azsnap.emulator.control import add_control_routes
from azsnap.emulator.records import Operation
from azsnap.emulator.throttling import injected_throttle, throttled_error

if TYPE_CHECKING:
    from azsnap.emulator.emulator import Emulator

__all__ = ["make_app"]

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
    _Route(re.compile(_SUB + _RG + _PROVIDER + r"/snapshots/?$", re.I), {"GET": "snapshots.list"}),
    _Route(re.compile(_SUB + _PROVIDER + r"/snapshots/?$", re.I), {"GET": "snapshots.list"}),
    _Route(re.compile(_SUB + _RG + _PROVIDER + r"/disks/(?P<name>[^/]+)/?$", re.I), {"GET": "disks.get"}),
    _Route(re.compile(_SUB + _RG + _PROVIDER + r"/disks/?$", re.I), {"GET": "disks.list"}),
    _Route(re.compile(_SUB + _PROVIDER + r"/disks/?$", re.I), {"GET": "disks.list"}),
    _Route(
        re.compile(_SUB + _PROVIDER + r"/locations/(?P<loc>[^/]+)/(?:Disk)?Operations/(?P<op>[^/]+)/?$", re.I),
        {"GET": "operations.get"},
    ),
)


class _Dropped(Exception):
    """The connection was cut on purpose (fault `drop`)."""


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


class _Handler:
    """Answers ARM requests for one emulator."""

    def __init__(self, emulator: Emulator) -> None:
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
            if request.method == "PUT":
                body = await self._body(request)
            self.emu.store.settle(self.emu.clock.now())
            fail = await self._faults(operation)
            location = self._location(operation, match, body)
            rate_headers, refused = self.emu.throttler.charge(operation, request.method, match["sub"], location)
            if refused is not None:
                raise throttled_error(refused)
            handler = getattr(self, "_" + operation.replace(".", "_"))
            response: web.StreamResponse = await handler(request, match, body, fail)
        except ArmError as exc:
            response = _json(exc.status, exc.body(), exc.headers)
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

    async def _faults(self, operation: str) -> str | None:
        """Apply the faults drawn for this request; returns an LRO failure to plant, if any."""
        for rule in self.emu.faults.draw(operation):
            if rule.kind == "latency":
                await asyncio.sleep(rule.latency_s)  # the one wall-time wait (looptime fast-forwards it)
            elif rule.kind == "drop":
                raise _Dropped
            elif rule.kind == "429":
                raise injected_throttle(rule.retry_after_s)
            elif rule.kind == "500":
                raise ArmError(500, "InternalServerError", "Encountered internal server error. Please try again.")
            elif rule.kind == "503":
                raise ArmError(
                    503,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable. Please try again later.",
                    headers={"Retry-After": str(rule.retry_after_s)},
                )
            else:
                return rule.kind
        return None

    def _location(self, operation: str, match: re.Match[str], body: Any) -> str:
        groups = match.groupdict()
        if operation == "snapshots.put" and isinstance(body, dict) and isinstance(body.get("location"), str):
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

    def _lro_headers(self, request: web.Request, op: Operation) -> dict[str, str]:
        base = f"{request.url.origin()}/subscriptions/{op.subscription_id}/providers/Microsoft.Compute/locations/{op.location}/operations/{op.id}"
        headers = {
            "Azure-AsyncOperation": f"{base}?api-version={API_VERSION}",
            "Location": f"{base}?monitor=true&api-version={API_VERSION}",
        }
        if self.emu.config.poll_retry_after_s > 0:
            headers["Retry-After"] = str(self.emu.config.poll_retry_after_s)
        return headers

    async def _snapshots_put(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        now = self.emu.clock.now()
        planted = fail if fail in ("lro_failed", "failed_after_limit") else None
        record, op = self.emu.store.create_snapshot(now, m["sub"], m["rg"], m["name"], body, fail=planted)  # type: ignore[arg-type]
        if op is None:
            return _json(200, record.to_json(now))
        return _json(202, record.to_json(now), self._lro_headers(request, op))

    async def _snapshots_get(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        now = self.emu.clock.now()
        return _json(200, self.emu.store.get_snapshot(m["sub"], m["rg"], m["name"]).to_json(now))

    async def _snapshots_delete(
        self, request: web.Request, m: re.Match[str], body: Any, fail: str | None
    ) -> web.Response:
        op = self.emu.store.delete_snapshot(
            self.emu.clock.now(), m["sub"], m["rg"], m["name"], fail=fail == "lro_failed"
        )
        if op is None:
            return web.Response(status=204)
        return web.Response(status=202, headers=self._lro_headers(request, op))

    async def _snapshots_list(
        self, request: web.Request, m: re.Match[str], body: Any, fail: str | None
    ) -> web.Response:
        now = self.emu.clock.now()
        items = [s.to_json(now) for s in self.emu.store.list_snapshots(m["sub"], m.groupdict().get("rg"))]
        return self._page(request, items)

    # ---- disks -------------------------------------------------------------------------------------------------

    async def _disks_get(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        return _json(200, self.emu.store.get_disk(m["sub"], m["rg"], m["name"]).to_json())

    async def _disks_list(self, request: web.Request, m: re.Match[str], body: Any, fail: str | None) -> web.Response:
        return self._page(request, [d.to_json() for d in self.emu.store.list_disks(m["sub"], m.groupdict().get("rg"))])

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        raw = request.query.get("$skiptoken", "0")
        if not raw.isdigit():
            raise ArmError(400, "InvalidSkipToken", f"The skip token '{raw}' is not valid.")
        start, size = int(raw), self.emu.config.page_size
        page: dict[str, Any] = {"value": items[start : start + size]}
        if start + size < len(items):
            page["nextLink"] = (
                f"{request.url.origin()}{request.path}?api-version={API_VERSION}&$skiptoken={start + size}"
            )
        return _json(200, page)

    # ---- operations --------------------------------------------------------------------------------------------

    async def _operations_get(
        self, request: web.Request, m: re.Match[str], body: Any, fail: str | None
    ) -> web.Response:
        now = self.emu.clock.now()
        op = self.emu.store.operation(m["sub"], m["op"])
        in_progress = op.status == "InProgress"
        retry = (
            {"Retry-After": str(self.emu.config.poll_retry_after_s)}
            if in_progress and self.emu.config.poll_retry_after_s > 0
            else {}
        )
        if request.query.get("monitor", "").lower() == "true":
            if in_progress:
                return web.Response(status=202, headers={**retry, "Location": str(request.url)})
            if op.status == "Failed" and op.error is not None:
                raise ArmError(409 if op.keep_failed else 500, str(op.error["code"]), str(op.error["message"]))
            result = self.emu.store.operation_result(op, now)
            return _json(200, result) if result is not None else web.Response(status=200)
        answer = op.to_json()
        result = self.emu.store.operation_result(op, now) if op.status == "Succeeded" else None
        if result is not None:
            answer["properties"] = {"output": result}
        return _json(200, answer, retry)


def make_app(emulator: Emulator) -> web.Application:
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
