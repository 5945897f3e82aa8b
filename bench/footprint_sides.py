"""The footprint benchmark's stand-ins, each in a process of its own: the Kubernetes API and the Azure emulator.

Each side is a child process started with `spawn` (a fresh interpreter, no copy of the parent's loop). It builds
its stand-in, seeds it, serves it on loopback, sends where to connect through a pipe, then answers the parent's
questions (counts, a round of annotations) on that pipe until it is told to stop. So the operator, the Kubernetes
API and Azure each have a process, as in a cluster, and the parent does nothing but start, sample and ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import tempfile
from collections.abc import Callable
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

from azsnap.clock import WallClock
from azsnap.domain.models import API_GROUP, API_VERSION, PLURAL
from azsnap.emulator import DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, Emulator, EmulatorConfig
from azsnap.handlers.policy import ANNOTATION_SNAPSHOT_NOW
from azsnap.offline.sandbox import disk_id
from bench.kopf_overhead import NAMESPACE, manifest, serve_kube
from bench.operator_rss import is_ready

__all__ = ["Side", "azure_side", "kube_side", "seed_azure"]

_WRITE_VERBS: Final = ("POST", "PUT", "PATCH", "DELETE")
_STOP: Final = "stop"


def seed_azure(emulator: Emulator, policies: int, snapshots_per_disk: int) -> None:
    """`disk-0..` in the demo group, each with `snapshots_per_disk` snapshots azsnap did not make, an hour apart."""
    now = WallClock().now()
    for i in range(policies):
        emulator.seed_disk(DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, f"disk-{i}", location=DEMO_LOCATION)
        for k in range(snapshots_per_disk):
            body = {
                "location": DEMO_LOCATION,
                "tags": {"owner": "someone-else"},
                "properties": {
                    "creationData": {"createOption": "Copy", "sourceResourceId": disk_id(f"disk-{i}")},
                    "incremental": True,
                },
            }
            # Made an hour apart before now: Azure's per-disk window (7 in 5 minutes) held then too.
            made = now - timedelta(hours=snapshots_per_disk - k)
            emulator.store.create_snapshot(made, DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, f"manual-{i}-{k}", body)
    emulator.store.settle(now)


async def _answer(conn: Connection, commands: dict[str, Callable[..., Any]]) -> None:
    """Answer `(name, args)` questions from the parent until it says stop."""
    loop = asyncio.get_running_loop()
    while True:
        name, args = await loop.run_in_executor(None, conn.recv)
        if name == _STOP:
            return
        conn.send(commands[name](*args))


def azure_side(conn: Connection, policies: int, snapshots_per_disk: int) -> None:
    """The Azure emulator (its budgets off: not a throttling test), seeded, over HTTPS on loopback."""

    async def serve() -> None:
        emulator = Emulator(WallClock(), EmulatorConfig(throttling=False, poll_retry_after_s=0))
        seed_azure(emulator, policies, snapshots_per_disk)
        async with emulator.serve(host="127.0.0.1") as server:
            conn.send({"base_url": server.base_url, "ca_bundle": server.ca_bundle})

            def snapshots() -> int:
                emulator.store.settle(emulator.clock.now())  # creates that failed are gone once settled
                return len(emulator.store.snapshots)

            await _answer(conn, {"snapshots": snapshots, "requests": lambda: len(emulator.requests)})

    asyncio.run(serve())


def kube_side(conn: Connection, policies: int) -> None:
    """The Kubernetes API stand-in (counting requests by verb) with the CRD and N policies, over HTTP on loopback."""

    async def serve() -> None:
        with tempfile.TemporaryDirectory(prefix="azsnap-footprint-") as tmp:
            async with serve_kube(WallClock()) as (kube, probe):
                names = [kube.apply(manifest(i))["metadata"]["name"] for i in range(policies)]
                conn.send({"kubeconfig": str(kube.write_kubeconfig(Path(tmp) / "kubeconfig"))})

                def ready() -> int:
                    return sum(1 for obj in kube.list(API_GROUP, API_VERSION, PLURAL, NAMESPACE) if is_ready(obj))

                def writes() -> dict[str, int]:
                    return {v: n for v, n in sorted(probe.requests_by_verb.items()) if v.startswith(_WRITE_VERBS)}

                def annotate(token: str) -> None:
                    patch = {"metadata": {"annotations": {ANNOTATION_SNAPSHOT_NOW: token}}}
                    for name in names:
                        kube.patch(API_GROUP, API_VERSION, PLURAL, NAMESPACE, name, patch)

                await _answer(conn, {"ready": ready, "writes": writes, "annotate": annotate})

    asyncio.run(serve())


class Side:
    """A stand-in's child process and the parent's end of its pipe."""

    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self.process = context.Process(target=target, args=(child_end, *args), daemon=True)
        self.process.start()
        child_end.close()

    async def started(self, within: float) -> dict[str, Any]:
        """Where to connect, once the side has seeded and serves."""
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, self._conn.poll, within)
        if not ready:
            raise RuntimeError(f"a stand-in did not start within {within:.0f} s")
        answer: dict[str, Any] = self._conn.recv()
        return answer

    async def ask(self, name: str, *args: Any) -> Any:
        self._conn.send((name, args))
        return await asyncio.get_running_loop().run_in_executor(None, self._conn.recv)

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send((_STOP, ()))
            self.process.join(60)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
        self._conn.close()
