"""Pydantic models of the SnapshotPolicy API (spec and status); they mirror `crds/snapshotpolicies.azsnap.io.yaml`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from azsnap.domain.durations import format_duration, parse_duration

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "DISK_ID_PATTERN",
    "KIND",
    "PLURAL",
    "Condition",
    "DeletionPolicy",
    "DiskRef",
    "Duration",
    "LastSnapshot",
    "Policy",
    "PolicyRef",
    "RetentionSpec",
    "ScheduleSpec",
    "SnapshotPolicySpec",
    "SnapshotPolicyStatus",
    "SnapshotSku",
    "SnapshotSpec",
    "parse_disk_id",
]

API_GROUP: Final = "azsnap.io"
API_VERSION: Final = "v1alpha1"
KIND: Final = "SnapshotPolicy"
PLURAL: Final = "snapshotpolicies"

#: ARM resource ID of a managed disk. ARM compares IDs case-insensitively, so does this pattern.
DISK_ID_PATTERN: Final = (
    r"(?i)^/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"/resourceGroups/[-\w.()]{1,90}/providers/Microsoft\.Compute/disks/[A-Za-z0-9_.-]{1,80}$"
)
_DISK_ID: Final = re.compile(DISK_ID_PATTERN)
#: Azure resource group names: 1-90 of letters, digits, `_`, `-`, `.`, `(`, `)`, not ending in `.`.
RESOURCE_GROUP_PATTERN: Final = r"^[-\w.()]{0,89}[-\w()]$"
#: Tag keys Azure refuses: `< > % & \ ? /`.
_BAD_TAG_KEY: Final = re.compile(r"[<>%&\\?/]")
#: Tags azsnap itself writes; leaves room under Azure's 50-tag cap and forbids user collisions.
RESERVED_TAG_PREFIX: Final = "azsnap"
MAX_USER_TAGS: Final = 40


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    return parse_duration(value)


#: A duration written as `30m`, `4h`, `7d`; serialized back in the same notation.
Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


@dataclass(frozen=True)
class DiskCoordinates:
    """The parts of a disk's ARM ID."""

    subscription_id: str
    resource_group: str
    name: str


def parse_disk_id(disk_id: str) -> DiskCoordinates:
    """Split a managed disk's ARM ID into subscription, resource group and name."""
    if not _DISK_ID.match(disk_id):
        raise ValueError(
            f"{disk_id!r} is not the ARM ID of a managed disk; expected "
            "/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.Compute/disks/<name>"
        )
    parts = disk_id.split("/")
    return DiskCoordinates(subscription_id=parts[2].lower(), resource_group=parts[4], name=parts[8])


class DiskRef(_Model):
    """Which managed disk the policy snapshots."""

    id: str = Field(description="ARM resource ID of the managed disk.")

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        parse_disk_id(value)
        return value

    @property
    def coordinates(self) -> DiskCoordinates:
        return parse_disk_id(self.id)


class ScheduleSpec(_Model):
    """When snapshots are taken: `every` or `cron`, in a time zone."""

    cron: str | None = None
    every: Duration | None = None
    time_zone: str = "UTC"
    starting_deadline: Duration = timedelta(hours=1)
    jitter: Duration | None = None

    @field_validator("time_zone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}; use a name such as 'Europe/Berlin'") from exc
        return value

    @field_validator("every")
    @classmethod
    def _valid_every(cls, value: timedelta | None) -> timedelta | None:
        if value is None:
            return value
        seconds = int(value.total_seconds())
        if seconds < 3600:
            raise ValueError("must be at least 1h")
        if seconds % 3600:
            raise ValueError("must be a whole number of hours")
        if 86400 % seconds and seconds % 86400:
            raise ValueError("must divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h) or be a whole number of days")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("set exactly one of 'cron' and 'every'")
        if self.starting_deadline <= timedelta(0):
            raise ValueError("startingDeadline must be positive")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class RetentionSpec(_Model):
    """Which snapshots to keep; a snapshot is kept if any rule keeps it."""

    keep_last: int | None = Field(default=None, ge=1, le=500)
    max_age: Duration | None = None
    hourly: int | None = Field(default=None, ge=1, le=500)
    daily: int | None = Field(default=None, ge=1, le=500)
    weekly: int | None = Field(default=None, ge=1, le=500)
    monthly: int | None = Field(default=None, ge=1, le=500)
    yearly: int | None = Field(default=None, ge=1, le=100)
    min_keep: int = Field(default=1, ge=1, le=500)

    @model_validator(mode="after")
    def _at_least_one(self) -> RetentionSpec:
        rules = (self.keep_last, self.max_age, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        if all(rule is None for rule in rules):
            raise ValueError(
                "set at least one retention rule: keepLast, maxAge, hourly, daily, weekly, monthly or yearly"
            )
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ValueError("maxAge must be positive")
        return self


class SnapshotSku(StrEnum):
    """Storage SKUs a snapshot may use."""

    STANDARD_LRS = "Standard_LRS"
    STANDARD_ZRS = "Standard_ZRS"
    PREMIUM_LRS = "Premium_LRS"


class SnapshotSpec(_Model):
    """How snapshots are made."""

    incremental: bool = True
    resource_group: str | None = Field(default=None, pattern=RESOURCE_GROUP_PATTERN)
    sku: SnapshotSku | None = None
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_USER_TAGS:
            raise ValueError(f"at most {MAX_USER_TAGS} tags (Azure allows 50; azsnap needs the rest)")
        for key, value in tags.items():
            if not key or len(key) > 512:
                raise ValueError(f"tag key {key[:40]!r} must be 1-512 characters")
            if _BAD_TAG_KEY.search(key):
                raise ValueError(f"tag key {key!r} contains one of < > % & \\ ? / which Azure refuses")
            if key.lower().startswith(RESERVED_TAG_PREFIX):
                raise ValueError(f"tag key {key!r} starts with 'azsnap', which is reserved for azsnap's own tags")
            if len(value) > 256:
                raise ValueError(f"tag {key!r}: value must be at most 256 characters")
        return tags


class DeletionPolicy(StrEnum):
    """What happens to a policy's snapshots when the policy is deleted."""

    RETAIN = "Retain"
    DELETE = "Delete"


class SnapshotPolicySpec(_Model):
    """The desired state: which disk, how often, how long to keep."""

    disk: DiskRef
    schedule: ScheduleSpec
    retention: RetentionSpec
    snapshot: SnapshotSpec = Field(default_factory=SnapshotSpec)
    suspend: bool = False
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN


@dataclass(frozen=True)
class PolicyRef:
    """Identity of a SnapshotPolicy object in the cluster."""

    namespace: str
    name: str
    uid: str
    generation: int = 1


@dataclass(frozen=True)
class Policy:
    """A policy as the planner sees it: identity plus validated spec."""

    ref: PolicyRef
    spec: SnapshotPolicySpec


class Condition(_Model):
    """A Kubernetes condition (`Ready`, `Reconciling`, `Stalled`)."""

    type: Literal["Ready", "Reconciling", "Stalled"]
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: datetime
    observed_generation: int | None = None


class LastSnapshot(_Model):
    """The most recent snapshot the policy asked for."""

    name: str
    scheduled_time: datetime
    created_time: datetime | None = None
    state: Literal["Creating", "Copying", "Succeeded", "Failed"]


class SnapshotPolicyStatus(_Model):
    """What the operator observed and did; written only through the status subresource."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    last_snapshot: LastSnapshot | None = None
    last_successful_snapshot_time: datetime | None = None
    next_snapshot_time: datetime | None = None
    snapshot_count: int | None = None
    disk_snapshot_count: int | None = None
    disk_snapshot_limit: int | None = None
    missed_slots: int | None = None
    pending_deletions: int | None = None
    last_on_demand_token: str | None = None
    #: Scheduled slots up to this instant have been accounted for (taken or counted in missedSlots).
    slots_accounted_until: datetime | None = None
