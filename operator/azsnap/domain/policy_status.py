"""Pydantic models of the SnapshotPolicy status: conditions, the last snapshot, and what the operator counted."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from azsnap.domain.copy_fields import CopyRecordStatus
from azsnap.domain.drill import DrillStatus
from azsnap.domain.targets import ClaimStatus
from azsnap.domain.volume_snapshots import VolumeSnapshotStatus

__all__ = ["Condition", "LastSnapshot", "SnapshotPolicyStatus"]


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


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


class SnapshotPolicyStatus(DrillStatus, VolumeSnapshotStatus, ClaimStatus, CopyRecordStatus):
    """What the operator observed and did; written only through the status subresource."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    last_snapshot: LastSnapshot | None = None
    last_successful_snapshot_time: datetime | None = None
    next_snapshot_time: datetime | None = None
    snapshot_count: int | None = None
    #: Of `snapshot_count`, the snapshots taken from an earlier incarnation of the disk (all of them while it is gone).
    earlier_incarnations: int | None = None
    #: The incarnation (Azure's `uniqueId`) of the disk last seen; a new one means it was recreated or restored.
    disk_unique_id: str | None = None
    disk_snapshot_count: int | None = None
    disk_snapshot_limit: int | None = None
    missed_slots: int | None = None
    pending_deletions: int | None = None
    #: `{count, newest: {name, time}, oldest: {name, time}}`, the usable snapshots (`domain.explain.restore_points`).
    restore_points: dict[str, Any] | None = None
    last_on_demand_token: str | None = None
    #: Scheduled slots up to this instant have been accounted for (taken or counted in missedSlots).
    slots_accounted_until: datetime | None = None
    #: The disk's name (the last segment of `spec.disk.id`), for `kubectl get`.
    disk_name: str | None = None
    #: A one-line summary of the schedule (`0 * * * * Europe/Berlin`, `every 4h`), for `kubectl get`.
    schedule: str | None = None
    copies: list[dict[str, Any]] | None = None  # per copy target: domain/copies.py's CopyStatus
