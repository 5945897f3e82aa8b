"""Turning what Azure answered into a policy's health: Stalled (a person must act) or Retrying (azsnap will)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from azsnap.cloud.errors import CloudError, PermanentError, Throttled, TransientError
from azsnap.domain.conditions import Health, HealthState
from azsnap.reconciler.report import Event, StatusReport

__all__ = ["Verdicts"]

_AUTH_CODES: Final = frozenset({"AuthorizationFailed", "LinkedAuthorizationFailed", "InvalidAuthenticationToken"})


class Verdicts:
    """Reports for the ends of a reconcile that are not Ready, with the delays of the reconciler's config."""

    def __init__(self, *, stalled_recheck: timedelta, default_retry: timedelta, max_sleep: timedelta) -> None:
        self.stalled_recheck = stalled_recheck
        self.default_retry = default_retry
        self.max_sleep = max_sleep

    def retry_delay(self, exc: CloudError) -> float:
        """Seconds to wait before trying again after `exc`."""
        if isinstance(exc, TransientError) and exc.retry_after:
            return float(exc.retry_after)
        return self.default_retry.total_seconds()

    def next_time(self, when: datetime, now: datetime) -> datetime:
        """`when`, but at least a second ahead and never past `max_sleep` (so drift is seen)."""
        return max(now + timedelta(seconds=1), min(when, now + self.max_sleep))

    @staticmethod
    def report(health: Health, fields: dict[str, Any], events: Sequence[Event], next_time: datetime) -> StatusReport:
        return StatusReport(health=health, status=fields, events=tuple(events), next_time=next_time)

    def stalled(
        self, reason: str, message: str, now: datetime, fields: dict[str, Any], *, events: Sequence[Event] = ()
    ) -> StatusReport:
        health = Health(HealthState.STALLED, reason, message)
        return self.report(health, fields, events, now + self.stalled_recheck)

    def failed(
        self, exc: CloudError, now: datetime, fields: dict[str, Any], *, what: str, events: Sequence[Event] = ()
    ) -> StatusReport:
        """The report for an Azure error met while doing `what`."""
        if isinstance(exc, TransientError):
            delay = self.retry_delay(exc)
            reason = "Throttled" if isinstance(exc, Throttled) else "AzureUnavailable"
            message = f"Azure answered {exc.message!r} while {what}; azsnap retries in {int(delay)}s."
            extra = [Event("Warning", "RateLimited", message)] if isinstance(exc, Throttled) else []
            health = Health(HealthState.RETRYING, reason, message)
            return self.report(health, fields, [*events, *extra], now + timedelta(seconds=delay))
        code = exc.code or "AzureError"
        if code in _AUTH_CODES:
            message = (
                f"Azure refused azsnap's identity while {what} ({code}: {exc.message}). Grant it the azsnap role on "
                "the disk's and the snapshots' resource groups (see docs/azure-setup.md)."
            )
            return self.stalled("AuthorizationFailed", message, now, fields, events=events)
        if code == "SnapshotsLimitReached":
            message = (
                f"Azure says the disk has reached its snapshot limit while {what}: {exc.message}. Lower the "
                "retention or delete snapshots of this disk that azsnap did not make."
            )
            return self.stalled(
                "LimitReached", message, now, fields, events=[*events, Event("Warning", "LimitReached", message)]
            )
        if isinstance(exc, PermanentError):
            message = f"Azure rejected a request while {what} ({code}: {exc.message}). Check the policy and the disk."
            return self.stalled("AzureError", message, now, fields, events=events)
        message = f"Azure answered {exc.message!r} while {what}; azsnap retries."
        health = Health(HealthState.RETRYING, "AzureUnavailable", message)
        return self.report(health, fields, events, now + self.default_retry)
