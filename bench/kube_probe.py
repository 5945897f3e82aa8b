"""The benchmarks' Kubernetes side: an emulator that counts requests and sees statuses turn current; their policy."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import aiohttp.web
import attrs
import kmock
import yaml

from azsnap.clock import Clock
from azsnap.domain.models import API_GROUP, API_VERSION, KIND, PLURAL
from azsnap.emulator.kubernetes import KubeApiServer, KubeEmulator
from azsnap.offline.sandbox import disk_id

__all__ = ["NAMESPACE", "KubeProbe", "is_current", "manifest", "serve_kube", "verb_of"]

NAMESPACE: Final = "default"
CRON: Final = "0 * * * *"
KEEP_LAST: Final = 3
CRD_FILE: Final = Path(__file__).resolve().parents[1] / "crds" / f"{PLURAL}.{API_GROUP}.yaml"


def verb_of(method: str, path: str, query: Mapping[str, str]) -> str:
    """A request as a short label: `PATCH snapshotpolicies/status`, `WATCH snapshotpolicies`, `GET discovery`."""
    parts = [part for part in path.split("/") if part]
    if parts[:1] == ["api"]:
        rest = parts[2:]
    elif parts[:1] == ["apis"]:
        rest = parts[3:]
    else:
        return f"{method} discovery"
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        rest = rest[2:]
    if not rest:
        return f"{method} discovery"
    label = rest[0] + "".join(f"/{sub}" for sub in rest[2:])
    if method == "GET" and query.get("watch") in ("true", "1"):
        return f"WATCH {label}"
    if method == "GET" and len(rest) == 1:
        return f"LIST {label}"
    return f"{method} {label}"


def is_current(obj: Mapping[str, Any]) -> bool:
    """The status was written for the object's generation and says Ready=True."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != (obj.get("metadata") or {}).get("generation"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


@attrs.define(kw_only=True)
class KubeProbe(KubeApiServer):
    """The Kubernetes emulator, counting requests by verb and noting when each policy's written status is current.

    After `expect(n)`, every status write that leaves a SnapshotPolicy current records the emulated instant; a
    write that leaves it not current removes it. The instant the n-th policy becomes current is `all_current_at`.
    """

    requests_by_verb: Counter[str] = attrs.field(factory=Counter, init=False)
    status_writes: Counter[str] = attrs.field(factory=Counter, init=False)
    current_since: dict[str, datetime] = attrs.field(factory=dict, init=False)
    expected: int = attrs.field(default=0, init=False)
    all_current_at: datetime | None = attrs.field(default=None, init=False)
    all_current_wall: float | None = attrs.field(default=None, init=False)
    all_current: asyncio.Event = attrs.field(factory=asyncio.Event, init=False)

    def expect(self, policies: int) -> None:
        """Start over: from now, watch for `policies` policies whose status is written and current."""
        self.current_since.clear()
        self.status_writes.clear()
        self.expected = policies
        self.all_current_at = self.all_current_wall = None
        self.all_current.clear()

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        verb = verb_of(raw_request.method, raw_request.path, raw_request.query)
        self.requests_by_verb[verb] += 1  # before the call: a watch returns only when its stream ends
        response = await super().__call__(raw_request)
        if verb == f"PATCH {PLURAL}/status" and response.status < 300:
            self._status_written(raw_request.path)
        return response

    def _status_written(self, path: str) -> None:
        parts = [part for part in path.split("/") if part]
        namespace, name = parts[parts.index("namespaces") + 1], parts[-2]
        self.status_writes[name] += 1
        obj = self._stored(API_GROUP, PLURAL, namespace, name)
        if obj is not None and is_current(obj):
            self.current_since.setdefault(name, self.clock.now())
        else:
            self.current_since.pop(name, None)
        if self.expected and self.all_current_at is None and len(self.current_since) >= self.expected:
            self.all_current_at = self.clock.now()
            self.all_current_wall = time.perf_counter()
            self.all_current.set()


@contextlib.asynccontextmanager
async def serve_kube(clock: Clock) -> AsyncIterator[tuple[KubeEmulator, KubeProbe]]:
    """Serve the probing Kubernetes emulator over HTTP with the project's CRD installed."""
    api = KubeProbe(clock=clock)
    async with api, kmock.Server(api, host="127.0.0.1") as server:
        kube = KubeEmulator(api, str(server.url).rstrip("/"))
        for document in yaml.safe_load_all(CRD_FILE.read_text()):
            if document:
                kube.install_crd(document)
        try:
            yield kube, api
        finally:
            api.close_watches()


def manifest(i: int) -> dict[str, Any]:
    """Policy `p-NNNNN` on `disk-N`: hourly, keepLast 3."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": f"p-{i:05d}", "namespace": NAMESPACE},
        "spec": {
            "disk": {"id": disk_id(f"disk-{i}")},
            "schedule": {"cron": CRON},
            "retention": {"keepLast": KEEP_LAST},
        },
    }
