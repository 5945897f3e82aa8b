"""The pacer's face to the Azure adapter: which budget an operation draws on, and the caller's deadline per task."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

from azsnap.cloud.buckets import Kind
from azsnap.cloud.grants import Grant

__all__ = ["OPERATION_KINDS", "PaceSource", "PacerHooks", "Priority", "pacing", "pacing_until"]

#: The budget each operation (as `azsnap.cloud.accounting.operation_of` names it) draws on.
OPERATION_KINDS: Final[Mapping[str, Kind]] = {
    "snapshots.create": "create",
    "snapshots.delete": "delete",
    "disks.delete": "delete",  # a restore's disk: Azure charges it to DeleteDisks, as snapshot deletes
    "snapshots.list": "list",
    "disks.list": "list",
    "snapshots.get": "get",
    "disks.get": "get",
    "operations.get": "poll",  # a long-running operation's status poll (Microsoft.Compute/GetOperation*)
    "disks.create": "disk",  # a restore's disk or a drill's scratch disk (Microsoft.Compute/CreateUpdateDisks*)
}


@dataclass(frozen=True)
class Priority:
    """How the current task's calls wait: earliest `deadline` (loop time) first, taking turns by `key`.

    With `hard`, a create still waiting at its deadline is never sent: `SlotMissed` is raised instead.
    """

    deadline: float | None = None
    key: str = ""
    hard: bool = False


#: The priority of the calls the current task makes (see `pacing`).
_NO_PRIORITY: Final = Priority()
_PRIORITY: ContextVar[Priority | None] = ContextVar("azsnap_pacing_priority", default=None)
#: The grant of the current task's latest call, so its answers correct the right buckets.
_LAST_GRANT: ContextVar[Grant | None] = ContextVar("azsnap_pacing_grant", default=None)


@contextmanager
def pacing(deadline: float | None = None, key: str = "", *, hard: bool = False) -> Iterator[None]:
    """Calls made inside (through `PacerHooks`) wait with this loop-time deadline and fairness key (the disk)."""
    token = _PRIORITY.set(Priority(deadline, key, hard))
    try:
        yield
    finally:
        _PRIORITY.reset(token)


@contextmanager
def pacing_until(deadline: datetime, now: datetime, key: str = "", *, hard: bool = False) -> Iterator[None]:
    """`pacing` with the deadline as a datetime: `now` is the caller's clock reading, turned into loop time here."""
    loop_deadline = asyncio.get_running_loop().time() + (deadline - now).total_seconds()
    with pacing(loop_deadline, key, hard=hard):
        yield


class PaceSource(Protocol):
    """What the hooks use of `azsnap.cloud.pacer.Pacer` (named here so the pacer imports the hooks, not both ways)."""

    async def acquire(
        self,
        kind: Kind,
        subscription_id: str,
        location: str,
        *,
        deadline: float | None = ...,
        key: str = ...,
        hard: bool = ...,
    ) -> Grant: ...

    def observe(
        self,
        kind: Kind,
        subscription_id: str,
        location: str,
        status: int,
        headers: Mapping[str, str],
        *,
        grant: Grant | None = ...,
    ) -> None: ...


class PacerHooks:
    """The Azure adapter's `before_request` and `on_response` hooks, backed by one shared `Pacer`.

    `before_request` waits for a token for the operation's kind (operations outside `OPERATION_KINDS` pass);
    a hard deadline applies to creates only. `on_response` feeds every answer of the same task (retries, pages
    and polls included) to `Pacer.observe`.
    """

    def __init__(self, pacer: PaceSource) -> None:
        self.pacer = pacer

    async def before_request(self, operation: str, subscription_id: str, location: str) -> None:
        kind = OPERATION_KINDS.get(operation)
        if kind is None:
            return
        priority = _PRIORITY.get() or _NO_PRIORITY
        grant = await self.pacer.acquire(
            kind,
            subscription_id,
            location,
            deadline=priority.deadline,
            key=priority.key,
            hard=priority.hard and kind == "create",
        )
        _LAST_GRANT.set(grant)

    def on_response(self, operation: str, status: int, headers: Mapping[str, str]) -> None:
        kind = OPERATION_KINDS.get(operation)
        grant = _LAST_GRANT.get()
        if kind is None or grant is None:
            return
        own = grant if grant.kind == kind else None
        self.pacer.observe(kind, grant.subscription_id, grant.location, status, headers, grant=own)
