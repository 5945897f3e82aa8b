"""Running kopf in process against the emulator: its settings, the login handler, `run_operator`, `OperatorRun`."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, Final, NoReturn

import kopf

from azsnap.emulator.kubernetes.emulator import KubeEmulator

__all__ = ["INACTIVITY_TIMEOUT", "OperatorRun", "kopf_settings_for_emulator", "run_operator"]

#: kopf re-lists a watch after this long without an event; the emulator sends bookmarks only before a timeout.
INACTIVITY_TIMEOUT: Final = 10 * 365 * 24 * 3600.0
_SERVER_URL: contextvars.ContextVar[str] = contextvars.ContextVar("azsnap_kube_emulator_url")
_LOGIN_ID: Final = "azsnap-kube-emulator-login"


async def _login(**_: Any) -> kopf.ConnectionInfo | None:
    # The URL travels in a context variable: the registry may be shared (kopf's default one) while each
    # operator task runs against its own emulator. Outside `run_operator` this handler offers nothing.
    server = _SERVER_URL.get(None)
    return None if server is None else kopf.ConnectionInfo(server=server, default_namespace="default", priority=100)


def kopf_settings_for_emulator(settings: kopf.OperatorSettings) -> None:
    """Adjust kopf to the emulator: no inactivity re-lists (no bookmarks here), standalone, quiet, never SIGKILL."""
    settings.watching.inactivity_timeout = INACTIVITY_TIMEOUT
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING  # kopf's own per-handler events would only add traffic
    settings.networking.error_backoffs = [0.1, 0.5, 1.0]
    # A cancelled (not stopped) kopf schedules SIGKILL for its own thread after this timeout: in process, that
    # is the test run or the demo; under looptime it fires at once.
    settings.process.ultimate_exiting_timeout = None


@dataclasses.dataclass
class OperatorRun:
    """A kopf operator running in a task against the emulator."""

    task: asyncio.Task[None]
    settings: kopf.OperatorSettings
    registry: kopf.OperatorRegistry
    stop_flag: asyncio.Event

    async def kill(self) -> None:
        """Cancel the operator abruptly, as a crash or `kill -9` would: no graceful shutdown of handlers."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def crashed(self) -> BaseException | None:
        """The operator's exception if it ended on its own."""
        if self.task.done() and not self.task.cancelled():
            return self.task.exception()
        return None


@contextlib.asynccontextmanager
async def run_operator(
    registry: kopf.OperatorRegistry | None = None,
    *,
    kube: KubeEmulator,
    namespaces: Collection[str] | None = None,
    settings: kopf.OperatorSettings | None = None,
    memo: Any = None,
    configure: Callable[[kopf.OperatorSettings], None] | None = None,
) -> AsyncIterator[OperatorRun]:
    """Run `kopf.operator()` against `kube` in a task (started when kopf is ready); stop it on exit.

    `registry` defaults to kopf's default one (where `@kopf.on...` decorators register); `namespaces` None
    means cluster-wide. `configure` adjusts the settings after `kopf_settings_for_emulator`.
    """
    registry = registry if registry is not None else kopf.get_default_registry()
    kopf.on.login(registry=registry, id=_LOGIN_ID)(_login)  # deduplicated by id on every later start
    settings = settings if settings is not None else kopf.OperatorSettings()
    kopf_settings_for_emulator(settings)
    if configure is not None:
        configure(settings)
    stop_flag, ready_flag = asyncio.Event(), asyncio.Event()
    token = _SERVER_URL.set(kube.url)
    try:
        task = asyncio.create_task(
            kopf.operator(
                registry=registry, settings=settings, memo=memo, standalone=not kube.peering,
                clusterwide=not namespaces, namespaces=list(namespaces or ()),
                stop_flag=stop_flag, ready_flag=ready_flag,
            ),
            name="kopf operator against the Kubernetes emulator",
        )  # fmt: skip
    finally:
        _SERVER_URL.reset(token)
    ready = asyncio.create_task(ready_flag.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    run = OperatorRun(task=task, settings=settings, registry=registry, stop_flag=stop_flag)
    try:
        if task.done():
            _raise_early_exit(task)
        yield run
    finally:
        try:
            if not task.done():
                stop_flag.set()
            if not task.cancelled():
                await task  # re-raises whatever made kopf fail
        finally:
            _forget_signal_handlers()


def _raise_early_exit(task: asyncio.Task[None]) -> NoReturn:
    error = task.exception()
    raise RuntimeError("kopf stopped before it was ready") from error


def _forget_signal_handlers() -> None:
    # kopf installs SIGINT/SIGTERM handlers on the loop and never removes them; a later Ctrl+C would
    # then resolve a future of an operator that is gone.
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
