"""Shared pytest fixtures: no test reaches a real cluster; e2e tests get an in-process Kubernetes API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.support.kube import EPOCH

from azsnap.clock import LoopClock
from azsnap.emulator.kubernetes import KubeEmulator


@pytest.fixture(autouse=True)
def _no_real_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every kubeconfig lookup at a missing file (the `kubernetes` client reads its default at import)."""
    absent = tmp_path / "no-kubeconfig"
    monkeypatch.setenv("KUBECONFIG", str(absent))
    try:
        from kubernetes.config import kube_config
    except ImportError:  # the client is a test extra; without it nothing can read a kubeconfig anyway
        return
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(absent))


@pytest.fixture
async def kube() -> AsyncIterator[KubeEmulator]:
    """The Kubernetes emulator over HTTP, its clock the event loop's (emulated under `looptime`)."""
    async with KubeEmulator.serve(clock=LoopClock(EPOCH)) as emulator:
        yield emulator
