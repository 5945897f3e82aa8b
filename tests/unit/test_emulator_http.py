"""The emulator over HTTP: request checks, control routes, recording, and the standalone command's contract."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from azsnap.clock import ManualClock
from azsnap.emulator import API_VERSION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, Emulator
from azsnap.emulator.standalone import StandaloneOptions, run_standalone

T0 = datetime(2026, 3, 2, tzinfo=UTC)
DISKS = f"/subscriptions/{DEMO_SUBSCRIPTION}/resourceGroups/{DEMO_RESOURCE_GROUP}/providers/Microsoft.Compute/disks"


class Client:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session, self.base_url = session, base_url

    async def __call__(
        self, method: str, path: str, *, json_body: Any = None, auth: bool = True, **query: str
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"Authorization": "Bearer x"} if auth else {}
        async with self.session.request(
            method, self.base_url + path, params=query, json=json_body, headers=headers
        ) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None, dict(response.headers)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Emulator, Client]]:
    emu = Emulator(ManualClock(T0))
    emu.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, "disk-0")
    async with emu.serve() as server:
        context = ssl.create_default_context(cafile=server.ca_bundle)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            yield emu, Client(session, server.base_url)


async def test_requests_need_a_token_and_the_api_version(served: tuple[Emulator, Client]) -> None:
    emu, call = served
    status, body, _ = await call("GET", DISKS + "/disk-0", auth=False, **{"api-version": API_VERSION})
    assert (status, body["error"]["code"]) == (401, "AuthenticationFailed")
    status, body, _ = await call("GET", DISKS + "/disk-0")
    assert (status, body["error"]["code"]) == (400, "MissingApiVersionParameter")
    status, body, _ = await call("GET", DISKS + "/disk-0", **{"api-version": "2019-01-01"})
    assert (status, body["error"]["code"]) == (400, "NoRegisteredProviderFound")
    status, body, headers = await call("GET", DISKS.upper() + "/DISK-0", **{"api-version": API_VERSION})
    assert status == 200 and body["name"] == "disk-0"  # ARM paths and names are case-insensitive
    # Azure reports the LowCostGet policy on a GET and never the ARM reads budget (recorded answers)
    assert headers["x-ms-ratelimit-remaining-resource"] == (
        "Microsoft.Compute/LowCostGet3Min;3999,Microsoft.Compute/LowCostGet30Min;31999"
    )
    assert "x-ms-ratelimit-remaining-subscription-reads" not in headers
    status, body, _ = await call(
        "GET", "/subscriptions/x/providers/Microsoft.Network/vnets", **{"api-version": API_VERSION}
    )
    assert (status, body["error"]["code"]) == (404, "InvalidResourceType")
    status, body, _ = await call("POST", DISKS + "/disk-0", **{"api-version": API_VERSION})
    assert status == 405
    assert [(r.method, r.status, r.operation) for r in emu.requests] == [
        ("GET", 401, "disks.get"),
        ("GET", 400, "disks.get"),
        ("GET", 400, "disks.get"),
        ("GET", 200, "disks.get"),
        ("GET", 404, "unknown"),
        ("POST", 405, "unknown"),
    ]
    assert all(r.time == T0 for r in emu.requests)


async def test_malformed_json_is_refused(served: tuple[Emulator, Client]) -> None:
    _, call = served
    path = DISKS.replace("/disks", "/snapshots") + "/s1"
    async with call.session.put(
        call.base_url + path,
        params={"api-version": API_VERSION},
        data=b"{not json",
        headers={"Authorization": "Bearer x"},
    ) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "InvalidRequestContent"


async def test_control_routes(served: tuple[Emulator, Client]) -> None:
    emu, call = served
    status, disk, _ = await call("POST", "/_emulator/disks", json_body={"name": "pv2-disk-0", "sku": "PremiumV2_LRS"})
    assert status == 200 and disk["sku"]["name"] == "PremiumV2_LRS"
    status, body, _ = await call("POST", "/_emulator/disks", json_body={"name": "pv2-disk-0"})
    assert status == 400 and "already exists" in body["error"]["message"]
    status, body, _ = await call("POST", "/_emulator/disks", json_body={"sku": "x"})
    assert status == 400
    status, again, _ = await call(
        "POST", f"/_emulator/disks/{DEMO_SUBSCRIPTION}/{DEMO_RESOURCE_GROUP}/pv2-disk-0/recreate"
    )
    assert again["properties"]["uniqueId"] != disk["properties"]["uniqueId"]
    status, _, _ = await call("DELETE", f"/_emulator/disks/{DEMO_SUBSCRIPTION}/{DEMO_RESOURCE_GROUP}/pv2-disk-0")
    assert status == 204 and len(emu.disks()) == 1
    status, rule, _ = await call(
        "POST", "/_emulator/faults", json_body={"operation": "disks.get", "kind": "500", "count": 1}
    )
    assert status == 200 and rule["kind"] == "500"
    status, body, _ = await call("POST", "/_emulator/faults", json_body={"kind": "boom"})
    assert status == 400
    status, _, _ = await call("GET", DISKS + "/disk-0", **{"api-version": API_VERSION})
    assert status == 500
    status, requests, _ = await call("GET", "/_emulator/requests")
    assert [(r["operation"], r["status"]) for r in requests] == [("disks.get", 500)]
    assert (await call("GET", "/_emulator/snapshots"))[1] == []
    assert (await call("GET", "/_emulator/violations"))[1] == []
    status, _, _ = await call("POST", "/_emulator/reset", keep_disks="true")
    assert status == 204 and emu.requests == [] and len(emu.disks()) == 1


async def test_a_dropped_connection_and_latency(served: tuple[Emulator, Client]) -> None:
    from azsnap.emulator import FaultRule

    emu, call = served
    emu.add_fault(FaultRule(operation="disks.get", kind="drop", count=2))  # aiohttp retries a GET once itself
    with pytest.raises(aiohttp.ClientError):
        await call("GET", DISKS + "/disk-0", **{"api-version": API_VERSION})
    emu.add_fault(FaultRule(operation="disks.get", kind="latency", latency_s=0.01, count=1))
    status, _, _ = await call("GET", DISKS + "/disk-0", **{"api-version": API_VERSION})
    assert status == 200
    assert [r.status for r in emu.requests] == [0, 0, 200]


class LineOut(io.StringIO):
    """Standard output that tells when something was written."""

    def __init__(self) -> None:
        super().__init__()
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        self.written.set()
        return super().write(text)


async def test_standalone_prints_one_json_line_and_keeps_state(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    options = StandaloneOptions(disks=2, premium_v2_disks=1, state=state)

    async def serve_once() -> tuple[dict[str, Any], Emulator]:
        out, stop = LineOut(), asyncio.Event()
        task = asyncio.create_task(run_standalone(options, clock=ManualClock(T0), out=out, stop=stop))
        await out.written.wait()
        stop.set()
        emulator = await task
        lines = out.getvalue().splitlines()
        assert len(lines) == 1
        return json.loads(lines[0]), emulator

    line, first = await serve_once()
    assert set(line) == {"base_url", "ca_bundle", "subscription_id", "resource_group", "api_version"}
    assert line["base_url"].startswith("https://127.0.0.1:")
    assert (line["subscription_id"], line["resource_group"], line["api_version"]) == (
        DEMO_SUBSCRIPTION,
        DEMO_RESOURCE_GROUP,
        API_VERSION,
    )
    assert sorted(d["name"] for d in first.disks()) == ["disk-0", "disk-1", "pv2-disk-0"]
    assert state.exists()
    _, second = await serve_once()
    assert second.disks() == first.disks()  # same unique IDs: loaded, not re-seeded
