"""The small interface through which the reconciler observes and changes Azure."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from azsnap.cloud.errors import PermanentError
from azsnap.domain.observed import Disk, Snapshot

__all__ = ["CloudClient", "DiskRequest", "ListsByPage", "SnapshotRequest", "existing_disk_answer"]


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
    #: Whether the source disk copies its snapshots in the background (Premium SSD v2, Ultra); None: not known.
    #: When it does not, the finished operation's answer is the whole snapshot and no final read is needed.
    background_copy: bool | None = None
    #: `Copy` (of the disk) or `CopyStart` (a cross-region copy: `source_disk_id` is then the source snapshot).
    create_option: Literal["Copy", "CopyStart"] = "Copy"


@dataclass(frozen=True)
class DiskRequest:
    """Everything needed to create one managed disk from a snapshot (`createOption: Copy`), as a restore asks."""

    subscription_id: str
    resource_group: str
    name: str
    #: The snapshot's region: Azure makes a disk from a snapshot only in the snapshot's region.
    location: str
    source_snapshot_id: str
    sku: str
    #: Tags that mark the disk as this restore's (a disk without them is never touched).
    tags: Mapping[str, str]
    #: At least the snapshot's size; None: the snapshot's size.
    size_gb: int | None = None
    #: An availability zone ("1", "2", "3"); None: a regional disk.
    zone: str | None = None

    @property
    def disk_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/disks/{self.name}"
        )


def existing_disk_answer(disk: Disk, request: DiskRequest) -> Disk:
    """What `create_disk` answers when the name is taken: the disk if it carries the request's tags, else a refusal."""
    if all(disk.tags.get(k) == v for k, v in request.tags.items()):
        return disk
    raise PermanentError(
        f"the disk {disk.name} already exists in resource group {disk.resource_group} and was not made by this "
        "restore; azsnap never overwrites or changes an existing disk: choose another name, or delete that disk",
        code="DiskExists",
        status=409,
    )


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

    async def get_snapshot(self, subscription_id: str, resource_group: str, name: str) -> Snapshot | None:
        """One snapshot by name, or None if it does not exist."""
        ...

    async def create_disk(self, request: DiskRequest) -> Disk:
        """Create a disk from a snapshot and wait, with a bound, for the operation; returns the disk as last seen.

        Never changes an existing disk: when the name is taken by a disk without every tag of `request.tags`,
        `PermanentError` (code `DiskExists`, status 409) is raised and nothing is sent; a disk carrying them (this
        request's own earlier create) is returned as it is.
        """
        ...

    async def delete_disk(self, disk_id: str) -> None:
        """Delete the disk, waiting with a bound; deleting one that does not exist is not an error."""
        ...

    async def close(self) -> None:
        """Release connections and credentials."""
        ...


@runtime_checkable
class ListsByPage(Protocol):
    """A client that hands a list over page by page, so a list of thousands of pages is never held whole."""

    async def list_snapshots_into(
        self, subscription_id: str, resource_group: str | None, sink: Callable[[list[Snapshot]], None]
    ) -> None:
        """`list_snapshots`, each page given to `sink` as it comes (nothing when the group does not exist).

        On an error, pages already given stay given: the caller drops what it built from them.
        """
        ...
