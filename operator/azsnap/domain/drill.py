"""Verified restores (restore drills), pure: a policy's `spec.restoreDrill` and when a drill is due (the scratch
disk's name and tags are `domain/naming.py`'s, the health verdict `domain/health.py`'s).

A drill proves that the policy's newest good snapshot restores: azsnap makes a scratch disk from it, waits until
Azure reports the disk usable (a Premium SSD v2 / Ultra disk: fully hydrated), records the result and how long it
took in `status.lastVerifiedRestore`, and deletes the scratch disk. A policy over claims has a disk per claim and
drills one a round, in turn (`drill_rotation`): the claims by name, starting after the one drilled last, so every
disk is verified once every `len(claims)` rounds and a new claim waits at most that long; after a failed drill the
same disk goes again, so only its own success clears the failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_validator
from pydantic.alias_generators import to_camel

from azsnap.domain.durations import format_duration, parse_duration
from azsnap.domain.observed import DiskSku

__all__ = ["MAX_EVERY", "MIN_EVERY", "DrillFields", "DrillStatus", "RestoreDrillSpec", "drill_due", "drill_rotation"]

MIN_EVERY: Final = timedelta(hours=1)
MAX_EVERY: Final = timedelta(days=366)
MIN_TIMEOUT: Final = timedelta(minutes=5)
MAX_TIMEOUT: Final = timedelta(days=2)
#: The longest a resource group name may be.
_RESOURCE_GROUP_PATTERN: Final = r"^[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]$"


def _duration(value: Any) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(value)


DrillDuration = Annotated[timedelta, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)]


class RestoreDrillSpec(BaseModel):
    """`spec.restoreDrill`: restore the newest good snapshot into a scratch disk this often, and check it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    every: DrillDuration
    #: The scratch disk's SKU (the cheapest that proves the snapshot restores is the default).
    sku: DiskSku = DiskSku.STANDARD_SSD_LRS
    #: Where scratch disks go; the snapshot's resource group when unset.
    resource_group: str | None = Field(default=None, min_length=1, max_length=90, pattern=_RESOURCE_GROUP_PATTERN)
    #: A drill whose disk is not usable within this long has failed.
    timeout: DrillDuration = timedelta(hours=6)

    @field_validator("every")
    @classmethod
    def _every(cls, value: timedelta) -> timedelta:
        if not MIN_EVERY <= value <= MAX_EVERY:
            raise ValueError(f"must be between {format_duration(MIN_EVERY)} and {format_duration(MAX_EVERY)}")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        if not MIN_TIMEOUT <= value <= MAX_TIMEOUT:
            raise ValueError(f"must be between {format_duration(MIN_TIMEOUT)} and {format_duration(MAX_TIMEOUT)}")
        return value


class DrillFields(BaseModel):
    """The policy spec's drill field (`SnapshotPolicySpec` takes it in)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    restore_drill: RestoreDrillSpec | None = None


class DrillStatus(BaseModel):
    """The policy status fields of its restore drills (`reconciler/drill.py` writes them), as written."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    #: The last drill: result, snapshot, startedTime, finishedTime, durationSeconds, message.
    last_verified_restore: dict[str, Any] | None = None
    #: The drill in progress: diskId, location, snapshotId, snapshot, startedTime, usableTime, created.
    restore_drill: dict[str, Any] | None = None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def drill_due(spec: RestoreDrillSpec, last: Mapping[str, Any] | None, now: datetime) -> datetime:
    """When the next drill is due: at once without a record, else `every` after the last one started."""
    started = _time((last or {}).get("startedTime"))
    return now if started is None else started + spec.every


def drill_rotation(
    disks: Iterable[tuple[str, str]], last_claim: str | None, *, again: bool = False
) -> list[tuple[str, str]]:
    """A claim policy's `(claim, disk ID)` pairs in the order to try for its next drill.

    By claim name, starting after `last_claim` (the one drilled last) and wrapping round, so the claims take turns;
    `again` (the last drill failed) starts at `last_claim` itself, so a failure is cleared only by its own disk.
    """
    ordered = sorted(set(disks))
    if last_claim is None:
        return ordered
    first = [d for d in ordered if d[0] > last_claim or (again and d[0] == last_claim)]
    return first + [d for d in ordered if d not in first]
