"""Long-running operations on the wire: Azure's DiskOperations URLs, and what polling them answers."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from azsnap.emulator.arm import ArmError
from azsnap.emulator.records import Operation
from azsnap.emulator.state import Store

__all__ = ["json_response", "lro_headers", "poll_answer"]

_EPOCH_TICKS: Final = 621355968000000000  # .NET ticks (100 ns) at 1970-01-01


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer with Azure's `Content-Type: application/json; charset=utf-8`."""
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", charset="utf-8", headers=headers
    )


def _ticks(when: datetime) -> int:
    return _EPOCH_TICKS + int(when.astimezone(UTC).timestamp() * 10_000_000)


def _sign(*parts: str) -> str:
    """An opaque stand-in for the signature parts `c`, `s` and `h` of Azure's URLs (nothing checks them)."""
    return base64.urlsafe_b64encode(hashlib.sha256("|".join(parts).encode()).digest()).decode().rstrip("=")


def lro_headers(origin: str, op: Operation, api_version: str, retry_after_s: int) -> dict[str, str]:
    """`Azure-AsyncOperation` and `Location` as Azure sends them: `.../locations/{region}/DiskOperations/{id}?p=…`."""
    base = (
        f"{origin}/subscriptions/{op.subscription_id}/providers/Microsoft.Compute/locations/{op.location}"
        f"/DiskOperations/{op.id}"
    )
    ticks = str(_ticks(op.start))
    signed = {"c": _sign("c", op.id), "s": _sign("s", op.id), "h": _sign("h", op.id)}
    status_query = {"p": op.partition, "api-version": api_version, "t": ticks, **signed}
    monitor_query = {"p": op.partition, "monitor": "true", "api-version": api_version, "t": ticks, **signed}
    headers = {
        "Azure-AsyncOperation": f"{base}?{urlencode(status_query)}",
        "Location": f"{base}?{urlencode(monitor_query)}",
    }
    if retry_after_s > 0:
        headers["Retry-After"] = str(retry_after_s)
    return headers


def poll_answer(store: Store, op: Operation, request: web.Request, now: datetime, retry_after_s: int) -> web.Response:
    """A poll of the operation: its status (Azure-AsyncOperation URL) or, with `monitor=true`, its result."""
    in_progress = op.status == "InProgress"
    retry = {"Retry-After": str(retry_after_s)} if in_progress and retry_after_s > 0 else {}
    if request.query.get("monitor", "").lower() == "true":
        if in_progress:
            return web.Response(status=202, headers={**retry, "Location": str(request.url)})
        if op.status == "Failed" and op.error is not None:
            raise ArmError(409 if op.keep_failed else 500, str(op.error["code"]), str(op.error["message"]))
        result = store.operation_result(op, now)
        return json_response(200, result) if result is not None else web.Response(status=200)
    answer = op.to_json()
    result = store.operation_result(op, now) if op.status == "Succeeded" else None
    if result is not None:
        answer = {k: v for k, v in answer.items() if k != "name"} | {"properties": {"output": result}, "name": op.id}
    return json_response(200, answer, retry)
