"""Pydantic models of the SnapshotPolicy spec; they mirror `crds/snapshotpolicies.azsnap.io.yaml` (status: policy_status.py)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

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

from azsnap.domain.drill import DrillFields
from azsnap.domain.durations import format_duration, parse_duration
from azsnap.domain.lifecycle import DeletionPolicy, OnSourceDiskDelete
from azsnap.domain.observed import Disk
from azsnap.domain.targets import ClaimTargets, exactly_one_target
from azsnap.domain.volume_snapshots import VolumeSnapshotFields

__all__ = [
    "API_GROUP",
    "API_VERSION",
    "CRON_PATTERN",
    "DISK_ID_PATTERN",
    "KIND",
    "MAX_USER_TAGS",
    "PLURAL",
    "RESERVED_TAG_PREFIX",
    "RESOURCE_GROUP_PATTERN",
    "TIME_ZONE_PATTERN",
    "CopyTarget",
    "DeletionPolicy",
    "DiskRef",
    "Duration",
    "OnSourceDiskDelete",
    "Policy",
    "PolicyRef",
    "RetentionSpec",
    "ScheduleSpec",
    "SnapshotPolicySpec",
    "SnapshotSku",
    "SnapshotSpec",
    "parse_disk_id",
]

API_GROUP: Final = "azsnap.io"
API_VERSION: Final = "v1alpha1"
KIND: Final = "SnapshotPolicy"
PLURAL: Final = "snapshotpolicies"

# The patterns below are shared with the CRD schema, where the API server evaluates them with Go's RE2:
# they use only syntax RE2 and Python's `re` read the same way (ASCII classes, no `\w`, no look-around).

#: ARM resource ID of a managed disk. ARM compares IDs case-insensitively, so does this pattern.
DISK_ID_PATTERN: Final = (
    r"(?i)^/subscriptions/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    r"/resourceGroups/[-a-z0-9_.()]{0,89}[-a-z0-9_()]/providers/Microsoft\.Compute/disks/[a-z0-9][a-z0-9_.-]{0,79}$"
)
_DISK_ID: Final = re.compile(DISK_ID_PATTERN)
MAX_DISK_ID: Final = 300
#: Azure resource group names: 1-90 of letters, digits, `_`, `-`, `.`, `(`, `)`, not ending in `.`.
RESOURCE_GROUP_PATTERN: Final = r"^[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]$"
_RESOURCE_GROUP: Final = re.compile(RESOURCE_GROUP_PATTERN)
#: The CRD's first check of a cron line: a macro such as `@daily`, or five whitespace-separated fields.
#: The model leaves cron lines to `schedule.validate_schedule`, which explains what is wrong with one.
CRON_PATTERN: Final = r"^\s*(@[A-Za-z]+|\S+(\s+\S+){4})\s*$"
MAX_CRON: Final = 100
#: The shape of an IANA time zone name (`Europe/Berlin`, `Etc/GMT+5`); the name must also be known.
TIME_ZONE_PATTERN: Final = r"^[A-Za-z][-A-Za-z0-9_+]*(/[A-Za-z0-9][-A-Za-z0-9_+]*){0,2}$"
_TIME_ZONE: Final = re.compile(TIME_ZONE_PATTERN)
MAX_TIME_ZONE: Final = 64
#: Durations in a policy are short; the cap also keeps `timedelta` far from overflowing.
MAX_DURATION_TEXT: Final = 20
#: Upper bounds of the retention counts, shared with the CRD schema.
MAX_COUNT: Final = 500
MAX_YEARLY: Final = 100
#: Tag keys Azure refuses: `< > % & \ ? /`.
_BAD_TAG_KEY: Final = re.compile(r"[<>%&\\?/]")
#: Tags azsnap itself writes; leaves room under Azure's 50-tag cap and forbids user collisions.
RESERVED_TAG_PREFIX: Final = "azsnap"
MAX_USER_TAGS: Final = 40


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        if len(value) > MAX_DURATION_TEXT:
            raise ValueError(f"a duration is at most {MAX_DURATION_TEXT} characters, e.g. '4h' or '7d'")
        if value != value.strip():
            raise ValueError(f"{value!r} has spaces around it; write the duration alone, e.g. '4h'")
    return parse_duration(value)


def _bounded(value: timedelta, *, low: timedelta, high: timedelta) -> timedelta:
    if value < low:
        raise ValueError(f"must be at least {format_duration(low)}")
    if value > high:
        raise ValueError(f"must be at most {format_duration(high)}")
    return value


@cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


#: A count in the spec: an integer, never a string or float that looks like one (the CRD says `integer`).
StrictCount = Annotated[int, Field(strict=True)]
StrictBool = Annotated[bool, Field(strict=True)]


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
    # ASCII first: under `(?i)` both regex engines also match look-alikes such as the Kelvin sign for `k`.
    if not disk_id.isascii() or len(disk_id) > MAX_DISK_ID or not _DISK_ID.fullmatch(disk_id):
        raise ValueError(
            f"{disk_id!r} is not the ARM ID of a managed disk; expected "
            "/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.Compute/disks/<name>"
        )
    parts = disk_id.split("/")
    return DiskCoordinates(subscription_id=parts[2].lower(), resource_group=parts[4], name=parts[8])


class DiskRef(_Model):
    """Which managed disk the policy snapshots."""

    id: str = Field(description="ARM resource ID of the managed disk.", max_length=MAX_DISK_ID)

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        parse_disk_id(value)
        return value

    @property
    def coordinates(self) -> DiskCoordinates:
        return parse_disk_id(self.id)

    def stand_in(self, location: str, unique_id: str) -> Disk:
        """The disk as this reference names it, where Azure has not described it (a preview, a missing disk)."""
        coords = self.coordinates
        return Disk(
            id=self.id,
            name=coords.name,
            subscription_id=coords.subscription_id,
            resource_group=coords.resource_group,
            location=location,
            unique_id=unique_id,
        )


class ScheduleSpec(_Model):
    """When snapshots are taken: `every` or `cron`, in a time zone."""

    cron: str | None = Field(default=None, max_length=MAX_CRON)
    every: Duration | None = None
    time_zone: str = Field(default="UTC", max_length=MAX_TIME_ZONE)
    starting_deadline: Duration = timedelta(hours=1)
    jitter: Duration | None = None

    @field_validator("time_zone")
    @classmethod
    def _valid_zone(cls, value: str) -> str:
        if value != "UTC" and (not _TIME_ZONE.fullmatch(value) or value not in _known_zones()):
            raise ValueError(f"unknown IANA time zone {value[:40]!r}; use a name such as 'Europe/Berlin' or 'UTC'")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(f"unknown IANA time zone {value[:40]!r}; use a name such as 'Europe/Berlin'") from exc
        return value

    @field_validator("starting_deadline")
    @classmethod
    def _valid_deadline(cls, value: timedelta) -> timedelta:
        return _bounded(value, low=timedelta(minutes=1), high=timedelta(days=7))

    @field_validator("jitter")
    @classmethod
    def _valid_jitter(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _bounded(value, low=timedelta(0), high=timedelta(days=1))

    @field_validator("every")
    @classmethod
    def _valid_every(cls, value: timedelta | None) -> timedelta | None:
        if value is None:
            return value
        seconds = int(value.total_seconds())
        if seconds < 3600:
            raise ValueError("must be at least 1h")
        if seconds > 366 * 86400:
            raise ValueError("must be at most 366d")
        if seconds % 3600:
            raise ValueError("must be a whole number of hours")
        if 86400 % seconds and seconds % 86400:
            raise ValueError("must divide a day (1h, 2h, 3h, 4h, 6h, 8h, 12h) or be a whole number of days")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ScheduleSpec:
        if (self.cron is None) == (self.every is None):
            raise ValueError("set exactly one of 'cron' and 'every'")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)


class RetentionSpec(_Model):
    """Which snapshots to keep; a snapshot is kept if any rule keeps it."""

    keep_last: StrictCount | None = Field(default=None, ge=1, le=MAX_COUNT)
    max_age: Duration | None = None
    hourly: StrictCount | None = Field(default=None, ge=1, le=MAX_COUNT)
    daily: StrictCount | None = Field(default=None, ge=1, le=MAX_COUNT)
    weekly: StrictCount | None = Field(default=None, ge=1, le=MAX_COUNT)
    monthly: StrictCount | None = Field(default=None, ge=1, le=MAX_COUNT)
    yearly: StrictCount | None = Field(default=None, ge=1, le=MAX_YEARLY)
    min_keep: StrictCount = Field(default=1, ge=1, le=MAX_COUNT)

    @field_validator("max_age")
    @classmethod
    def _valid_max_age(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else _bounded(value, low=timedelta(hours=1), high=timedelta(days=36600))

    @model_validator(mode="after")
    def _at_least_one(self) -> RetentionSpec:
        rules = (self.keep_last, self.max_age, self.hourly, self.daily, self.weekly, self.monthly, self.yearly)
        if all(rule is None for rule in rules):
            raise ValueError(
                "set at least one retention rule: keepLast, maxAge, hourly, daily, weekly, monthly or yearly"
            )
        return self


class SnapshotSku(StrEnum):
    """Storage SKUs a snapshot may use."""

    STANDARD_LRS = "Standard_LRS"
    STANDARD_ZRS = "Standard_ZRS"
    PREMIUM_LRS = "Premium_LRS"


class SnapshotSpec(_Model):
    """How snapshots are made."""

    incremental: StrictBool = True
    resource_group: str | None = Field(default=None, max_length=90)
    sku: SnapshotSku | None = None
    tags: dict[str, Annotated[str, Field(max_length=256)]] = Field(default_factory=dict)

    @field_validator("resource_group")
    @classmethod
    def _valid_group(cls, value: str | None) -> str | None:
        if value is not None and not _RESOURCE_GROUP.fullmatch(value):
            raise ValueError(
                f"{value[:40]!r} is not a resource group name: 1-90 ASCII letters, digits, '_', '-', '.', '(' "
                "or ')', not ending in '.'"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_USER_TAGS:
            raise ValueError(f"at most {MAX_USER_TAGS} tags (Azure allows 50; azsnap needs the rest)")
        seen: dict[str, str] = {}
        for key, value in tags.items():
            twin = seen.setdefault(key.lower(), key)
            if twin != key:
                raise ValueError(
                    f"tag keys {twin!r} and {key!r} differ only in case; Azure compares tag keys without case, "
                    "so keep one of them"
                )
            if not key or len(key) > 512:
                raise ValueError(f"tag key {key[:40]!r} must be 1-512 characters")
            if _BAD_TAG_KEY.search(key):
                raise ValueError(f"tag key {key!r} contains one of < > % & \\ ? / which Azure refuses")
            if key.lower().startswith(RESERVED_TAG_PREFIX):
                raise ValueError(f"tag key {key!r} starts with 'azsnap', which is reserved for azsnap's own tags")
            if len(value) > 256:
                raise ValueError(f"tag {key!r}: value must be at most 256 characters")
        return tags


class CopyTarget(_Model):
    """`spec.copies[]`: copy each snapshot to this region and group (the rules: domain/copies.py)."""

    region: str = Field(pattern=r"^[a-z][a-z0-9]{1,39}$")
    resource_group: str = Field(pattern=RESOURCE_GROUP_PATTERN)
    subscription_id: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
    retention: RetentionSpec | None = None  # None: the policy's own
    copy_deadline: Duration = timedelta(hours=6)


class SnapshotPolicySpec(DrillFields, VolumeSnapshotFields, ClaimTargets):
    """The desired state: which disks (exactly one target, `domain/targets.py`), how often, how long to keep."""

    disk: DiskRef | None = None
    schedule: ScheduleSpec
    retention: RetentionSpec
    snapshot: SnapshotSpec = Field(default_factory=SnapshotSpec)
    suspend: StrictBool = False
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN
    on_source_disk_delete: OnSourceDiskDelete = OnSourceDiskDelete.KEEP
    copies: list[CopyTarget] | None = Field(default=None, max_length=3)

    @model_validator(mode="after")
    def _one_target(self) -> SnapshotPolicySpec:
        exactly_one_target(self.disk, self.volume_claim, self.volume_claim_selector)
        return self


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
