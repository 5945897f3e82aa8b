"""Thin helpers for tests that run kopf against the in-process Kubernetes emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import yaml

from azsnap.clock import Clock
from azsnap.domain.models import API_GROUP, API_VERSION, KIND, PLURAL
from azsnap.emulator.kubernetes import KubeEmulator

__all__ = [
    "CRD_FILE",
    "EPOCH",
    "SNAPSHOT_POLICY",
    "condition",
    "eventually",
    "install_project_crd",
    "policy_manifest",
    "until",
]

T = TypeVar("T")

#: Emulated time starts here in e2e tests (a Monday, so weekly and monthly rules have clean boundaries).
EPOCH: Final = datetime(2026, 1, 5, tzinfo=UTC)
#: `kube.get(*SNAPSHOT_POLICY, namespace, name)`.
SNAPSHOT_POLICY: Final = (API_GROUP, API_VERSION, PLURAL)
CRD_FILE: Final = Path(__file__).resolve().parents[2] / "crds" / f"{PLURAL}.{API_GROUP}.yaml"


def policy_manifest(name: str, spec: Mapping[str, Any] | None = None, *, namespace: str = "default") -> dict[str, Any]:
    """A SnapshotPolicy manifest (the spec is taken as given: these helpers do not validate it)."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": dict(spec or {}),
    }


def install_project_crd(kube: KubeEmulator) -> bool:
    """Install the project's CRD (names, short names, subresources) if the file exists; the default otherwise."""
    if not CRD_FILE.exists():
        return False
    for document in yaml.safe_load_all(CRD_FILE.read_text()):
        if document:
            kube.install_crd(document)
    return True


def condition(obj: Mapping[str, Any] | None, kind: str) -> Mapping[str, Any] | None:
    """The status condition of that type, or None."""
    for item in ((obj or {}).get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return item  # type: ignore[no-any-return]  # JSON from the API
    return None


async def eventually(check: Callable[[], T | None], *, interval: float = 0.5, within: float = 300.0) -> T:
    """Poll `check` in loop time until it returns something truthy; fail after `within` loop seconds.

    Under `looptime` both numbers are emulated seconds, so a generous `within` costs no real time.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = check()
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"not reached within {within} s of loop time: {check}")
        await asyncio.sleep(interval)


async def until(clock: Clock, when: datetime) -> None:
    """Let everything on the loop run until `clock` reads `when`: one sleep in loop time, not a poll.

    Polling a clock every half second over hours of emulated time costs real CPU time for each poll.
    """
    left = (when - clock.now()).total_seconds()
    if left > 0:
        await asyncio.sleep(left + 0.001)  # a millisecond past it: the loop's float time and the clock round apart
    assert clock.now() >= when
