"""The small interface through which the reconciler observes and changes Azure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from azsnap.domain.observed import Disk, Snapshot

__all__ = ["CloudClient", "SnapshotRequest"]


@dataclass(frozen=True)
class SnapshotRequest:
    """Everything needed to create one snapshot of one disk."""

    subscription_id: str
    resource_group: str
    name: str
    location: str
    source_disk_id: str
    tags: Mapping[str, str]
    incremental: bool = True
    sku: str | None = None
    #: `Copy` (of the disk) or `CopyStart` (a cross-region copy: `source_disk_id` is then the source snapshot).
    create_option: Literal["Copy", "CopyStart"] = "Copy"


class CloudClient(Protocol):
    """Read and write disks and snapshots. Implementations raise only `azsnap.cloud.errors` exceptions."""

    async def get_disk(self, disk_id: str) -> Disk | None:
        """The disk, or None if it does not exist."""
        ...

    async def list_snapshots(self, subscription_id: str, resource_group: str | None) -> list[Snapshot]:
        """Every snapshot in the resource group (all pages), or in the whole subscription when it is None.

        An empty list if the group does not exist.
        """
        ...

    async def create_snapshot(self, request: SnapshotRequest) -> Snapshot:
        """Start creating the snapshot and wait, with a bound, for the operation.

        Returns the snapshot as last seen (it may still be `Creating` when the bound ran out: the next
        reconcile finds it again by its deterministic name). Creating an existing name returns it unchanged.
        """
        ...

    async def delete_snapshot(self, subscription_id: str, resource_group: str, name: str) -> None:
        """Delete the snapshot; deleting one that does not exist is not an error."""
        ...

    async def close(self) -> None:
        """Release connections and credentials."""
        ...
