"""Control routes under `/_emulator/`: seed and delete disks, inject faults, read requests and state, reset.

They need no token: they are the test harness's, not Azure's, and the server listens on loopback.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Protocol

from aiohttp import web

from azsnap.emulator.config import DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, FaultRule, RecordedRequest
from azsnap.emulator.faults import FaultInjector

__all__ = ["Controlled", "add_control_routes"]


class Controlled(Protocol):
    """What the control routes use of `azsnap.emulator.emulator.Emulator` (named here: the emulator imports us)."""

    @property
    def faults(self) -> FaultInjector: ...

    @property
    def requests(self) -> list[RecordedRequest]: ...

    @property
    def violations(self) -> list[str]: ...

    def seed_disk(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        location: str = ...,
        sku: str = ...,
        size_gb: int = ...,
        written_gb: float | None = ...,
        os_properties: Mapping[str, Any] | None = ...,
    ) -> dict[str, Any]: ...

    def delete_disk(self, subscription_id: str, resource_group: str, name: str) -> None: ...

    def recreate_disk(
        self,
        subscription_id: str,
        resource_group: str,
        name: str,
        *,
        sku: str | None = ...,
        size_gb: int | None = ...,
    ) -> dict[str, Any]: ...

    def disks(self, subscription_id: str | None = ..., resource_group: str | None = ...) -> list[dict[str, Any]]: ...

    def snapshots(
        self, subscription_id: str | None = ..., resource_group: str | None = ...
    ) -> list[dict[str, Any]]: ...

    def add_fault(self, rule: FaultRule) -> None: ...

    def clear_faults(self) -> None: ...

    def reset(self, *, keep_disks: bool = ...) -> None: ...


def _bad(message: str) -> web.Response:
    return web.json_response({"error": {"code": "BadRequest", "message": message}}, status=400)


async def _object(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as exc:
        raise web.HTTPBadRequest(text=f"body is not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


def add_control_routes(app: web.Application, emu: Controlled) -> None:
    """Register the control routes on `app`."""

    async def seed_disk(request: web.Request) -> web.Response:
        data = await _object(request)
        try:
            disk = emu.seed_disk(
                str(data.get("subscription_id", DEMO_SUBSCRIPTION)),
                str(data.get("resource_group", DEMO_RESOURCE_GROUP)),
                str(data["name"]),
                location=str(data.get("location", DEMO_LOCATION)),
                sku=str(data.get("sku", "StandardSSD_LRS")),
                size_gb=int(data.get("size_gb", 128)),
                written_gb=None if data.get("written_gb") is None else float(data["written_gb"]),
                os_properties=data.get("os_properties") if isinstance(data.get("os_properties"), dict) else None,
            )
        except KeyError:
            return _bad("'name' is required")
        except ValueError as exc:
            return _bad(str(exc))
        return web.json_response(disk)

    async def delete_disk(request: web.Request) -> web.Response:
        m = request.match_info
        try:
            emu.delete_disk(m["sub"], m["rg"], m["name"])
        except KeyError:
            return web.json_response({"error": {"code": "NotFound", "message": f"no disk {m['name']}"}}, status=404)
        return web.Response(status=204)

    async def recreate_disk(request: web.Request) -> web.Response:
        m = request.match_info
        try:
            return web.json_response(emu.recreate_disk(m["sub"], m["rg"], m["name"]))
        except KeyError:
            return web.json_response({"error": {"code": "NotFound", "message": f"no disk {m['name']}"}}, status=404)

    async def list_disks(request: web.Request) -> web.Response:
        return web.json_response(emu.disks())

    async def add_fault(request: web.Request) -> web.Response:
        data = await _object(request)
        try:
            rule = FaultRule(**data)
        except (TypeError, ValueError) as exc:
            return _bad(str(exc))
        emu.add_fault(rule)
        return web.json_response(dataclasses.asdict(rule))

    async def list_faults(request: web.Request) -> web.Response:
        return web.json_response([dataclasses.asdict(rule) for rule in emu.faults.rules])

    async def clear_faults(request: web.Request) -> web.Response:
        emu.clear_faults()
        return web.Response(status=204)

    async def requests(request: web.Request) -> web.Response:
        return web.json_response([{**dataclasses.asdict(r), "time": r.time.isoformat()} for r in emu.requests])

    async def snapshots(request: web.Request) -> web.Response:
        return web.json_response(
            emu.snapshots(request.query.get("subscription_id"), request.query.get("resource_group"))
        )

    async def violations(request: web.Request) -> web.Response:
        return web.json_response(emu.violations)

    async def reset(request: web.Request) -> web.Response:
        emu.reset(keep_disks=request.query.get("keep_disks", "").lower() in ("1", "true", "yes"))
        return web.Response(status=204)

    app.router.add_post("/_emulator/disks", seed_disk)
    app.router.add_get("/_emulator/disks", list_disks)
    app.router.add_delete("/_emulator/disks/{sub}/{rg}/{name}", delete_disk)
    app.router.add_post("/_emulator/disks/{sub}/{rg}/{name}/recreate", recreate_disk)
    app.router.add_post("/_emulator/faults", add_fault)
    app.router.add_get("/_emulator/faults", list_faults)
    app.router.add_delete("/_emulator/faults", clear_faults)
    app.router.add_get("/_emulator/requests", requests)
    app.router.add_get("/_emulator/snapshots", snapshots)
    app.router.add_get("/_emulator/violations", violations)
    app.router.add_post("/_emulator/reset", reset)
