"""Cross-region copies through the one door: start a `CopyStart` of a snapshot, and read why Azure refused one.

A copy is a snapshot PUT with `createOption: CopyStart` in the target region; Azure's operation ends at once
and the copy runs on, its progress in the snapshot's `completionPercent` (read from the list every reconcile
already makes) and its failure in `copyCompletionError`. Every `CloudClient` (the SDK adapter, the in-memory
twin) makes it through `create_snapshot`, so it is paced, counted and mapped like any other create.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from azsnap.cloud.errors import CloudError, NotFound
from azsnap.cloud.interface import CloudClient, SnapshotRequest
from azsnap.domain.observed import Snapshot

__all__ = ["CopyRequest", "Refusal", "refusal_of", "start_copy"]

#: Why Azure would not start a copy now, from its 409 message (Azure documents the rules, not the words).
Refusal = Literal["RegionBusy", "DiskBusy", "OutOfOrder", "SourceGone", "Other"]
_WORDS: Final[tuple[tuple[str, Refusal], ...]] = (
    ("in parallel", "RegionBusy"),
    ("one incremental snapshot of a disk", "DiskBusy"),
    ("in the order they were created", "OutOfOrder"),
)


@dataclass(frozen=True)
class CopyRequest:
    """Copy one snapshot into another region (and resource group, maybe subscription) under this name."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    source_snapshot_id: str
    tags: Mapping[str, str]

    def as_snapshot_request(self) -> SnapshotRequest:
        return SnapshotRequest(
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            name=self.name,
            location=self.location,
            source_disk_id=self.source_snapshot_id,
            tags=dict(self.tags),
            incremental=True,
            create_option="CopyStart",
        )


async def start_copy(cloud: CloudClient, request: CopyRequest) -> Snapshot:
    """Start the copy (a name that exists comes back unchanged); raises `azsnap.cloud.errors` like any create."""
    return await cloud.create_snapshot(request.as_snapshot_request())


def refusal_of(error: CloudError) -> Refusal:
    """Which of Azure's copy rules a refusal names (a missing source is `SourceGone`)."""
    if isinstance(error, NotFound):
        return "SourceGone"
    text = error.message.lower()
    for words, refusal in _WORDS:
        if words in text:
            return refusal
    return "Other"
