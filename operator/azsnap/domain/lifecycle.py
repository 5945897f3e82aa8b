"""What happens to a policy's snapshots when the policy goes, or while its disk does not exist (the spec's enums)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DeletionPolicy", "OnSourceDiskDelete"]


class DeletionPolicy(StrEnum):
    """What happens to a policy's snapshots when the policy is deleted."""

    RETAIN = "Retain"
    DELETE = "Delete"


class OnSourceDiskDelete(StrEnum):
    """What happens to a policy's snapshots while its disk does not exist (deleted, or not yet recreated)."""

    KEEP = "Keep"
    APPLY_RETENTION = "ApplyRetention"
