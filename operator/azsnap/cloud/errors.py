"""One error vocabulary for Azure: not found, throttled/transient (retry later) and permanent (a person must act)."""

from __future__ import annotations

__all__ = ["CloudError", "Forbidden", "NotFound", "PermanentError", "SlotMissed", "Throttled", "TransientError"]


class CloudError(Exception):
    """Base of every error the cloud layer raises."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class NotFound(CloudError):
    """The resource does not exist (404)."""


class TransientError(CloudError):
    """Worth retrying later: 5xx, dropped connections, timeouts, an LRO still running at its deadline."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class Throttled(TransientError):
    """Azure answered 429: wait `retry_after` seconds."""


class PermanentError(CloudError):
    """A 4xx that will not fix itself (AuthorizationFailed, SnapshotsLimitReached, InvalidParameter, ...)."""


class Forbidden(PermanentError):
    """Azure's 403: the operator's identity lacks a permission (`AuthorizationFailed`), or one on a resource the
    request names (`LinkedAuthorizationFailed`, e.g. the snapshot a disk is made from). Retrying cannot help: a person
    must grant the role (docs/azure-setup.md)."""


class SlotMissed(CloudError):
    """A create was not sent: its slot's deadline passed while it waited for Azure's budget (nothing reached Azure).

    `reason` says why in words a person reads, with the figure (the policy, its size, the region).
    """

    def __init__(self, message: str, *, policy: str, capacity: float, period_s: float, location: str) -> None:
        super().__init__(message, code="OverBudget")
        self.reason = message
        self.policy = policy
        self.capacity = capacity
        self.period_s = period_s
        self.location = location
