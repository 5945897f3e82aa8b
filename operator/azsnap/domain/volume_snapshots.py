"""Publishing a claim policy's snapshots as pre-provisioned VolumeSnapshots: the spec field, names, manifests, plan.

Pure. Each usable snapshot (Azure reports it `Succeeded`, its data complete) that a policy made of a claim's disk
is published as a `VolumeSnapshotContent` (cluster-scoped; driver `disk.csi.azure.com`, `snapshotHandle` the
snapshot's ARM ID, `deletionPolicy: Retain` so that the CSI side never deletes what azsnap owns) bound to a
`VolumeSnapshot` in the policy's namespace. Both are named from the Azure snapshot (its name, made valid for
Kubernetes, and a hash of its ARM ID), so a retry, a restart or a second replica asks for the same objects.
Both carry azsnap's labels; only objects with them are ever removed, and only when their snapshot is gone from
Azure (or the policy stops publishing).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator
from pydantic.alias_generators import to_camel

from azsnap.domain.observed import Snapshot

__all__ = [
    "CONTENTS",
    "DRIVER",
    "GROUP",
    "PUBLISH_PER_RECONCILE",
    "SNAPSHOTS",
    "VERSION",
    "ObjectPlan",
    "Owner",
    "VolumeSnapshotFields",
    "VolumeSnapshotStatus",
    "VolumeSnapshotsSpec",
    "Wanted",
    "content_manifest",
    "object_name",
    "owner_selector",
    "plan_objects",
    "snapshot_manifest",
]

GROUP: Final = "snapshot.storage.k8s.io"
VERSION: Final = "v1"
SNAPSHOTS: Final = "volumesnapshots"
CONTENTS: Final = "volumesnapshotcontents"
#: At most this many snapshots are published (a VolumeSnapshotContent and a VolumeSnapshot each, so twice as many
#: creates) by one reconcile, newest first; a policy with more pending comes back soon for the next batch.
PUBLISH_PER_RECONCILE: Final = 25
#: The Azure Disk CSI driver's name: its `CreateVolume` makes a disk from the snapshot a content's handle names.
DRIVER: Final = "disk.csi.azure.com"

LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
MANAGED_BY: Final = "azsnap"
LABEL_POLICY_UID: Final = "azsnap.io/policy-uid"
LABEL_POLICY: Final = "azsnap.io/policy"
LABEL_CLAIM: Final = "azsnap.io/claim"
ANNOTATION_SNAPSHOT_ID: Final = "azsnap.io/snapshot-id"
ANNOTATION_DISK_ID: Final = "azsnap.io/disk-id"
ANNOTATION_SNAPSHOT_TIME: Final = "azsnap.io/snapshot-time"

#: Kubernetes label values: at most 63 characters, alphanumeric at both ends.
_LABEL_VALUE: Final = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_PREFIX: Final = 54  # + "-" + 8 hex characters = 63, a name that fits wherever a label value must hold it
_CLASS_NAME: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class Owner(Protocol):
    """The policy the objects belong to (`PolicyRef`; `domain/models.py` takes this module's spec field in)."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def uid(self) -> str: ...


class VolumeSnapshotsSpec(BaseModel):
    """`spec.volumeSnapshots`: publish the policy's snapshots as VolumeSnapshots (claim targets only)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    enabled: StrictBool
    volume_snapshot_class_name: str | None = Field(default=None, min_length=1, max_length=253, pattern=_CLASS_NAME)


class VolumeSnapshotFields(BaseModel):
    """The policy spec's publishing field (`SnapshotPolicySpec` takes it in)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    volume_snapshots: VolumeSnapshotsSpec | None = None

    @model_validator(mode="after")
    def _claims_only(self) -> Self:
        if self.volume_snapshots is not None and getattr(self, "disk", None) is not None:
            raise ValueError(
                "volumeSnapshots needs volumeClaim or volumeClaimSelector (a VolumeSnapshot is restored into a "
                "PersistentVolumeClaim of the policy's namespace)"
            )
        return self


class VolumeSnapshotStatus(BaseModel):
    """The policy status field of publishing (`reconciler/volume_snapshots.py` writes it), as written."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    #: state (Published, Unavailable, Failed), reason, message, published (a count), checkedTime.
    volume_snapshots: dict[str, Any] | None = None


@dataclass(frozen=True)
class Wanted:
    """One snapshot to publish: the objects' name, the snapshot, its disk and the claim it was taken through."""

    name: str
    snapshot_id: str
    disk_id: str
    claim: str
    time: datetime


@dataclass(frozen=True)
class ObjectPlan:
    """What to create and remove: contents and VolumeSnapshots, each by name; `pending` waits for a later batch."""

    create_contents: tuple[Wanted, ...] = ()
    create_snapshots: tuple[Wanted, ...] = ()
    delete_snapshots: tuple[str, ...] = ()
    delete_contents: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.create_contents or self.create_snapshots or self.delete_snapshots or self.delete_contents)


def object_name(snapshot: Snapshot) -> str:
    """The name of both objects: the snapshot's name made a DNS label, and 8 hex characters of its ARM ID's hash.

    Azure names may hold capitals, `_` and `.` and are unique only in their resource group; the hash keeps two
    snapshots apart however their names fold, and the name stays at most 63 characters.
    """
    folded = re.sub(r"[^a-z0-9-]", "-", snapshot.name.lower())[:_NAME_PREFIX].strip("-") or "snapshot"
    digest = hashlib.sha256(snapshot.id.lower().encode()).hexdigest()[:8]
    return f"{folded}-{digest}"


def owner_selector(policy: Owner) -> str:
    """The label selector of the objects azsnap published for this policy."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_POLICY_UID}={policy.uid}"


def _labels(policy: Owner, claim: str) -> dict[str, str]:
    labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_POLICY_UID: policy.uid}
    for key, value in ((LABEL_POLICY, policy.name), (LABEL_CLAIM, claim)):
        if len(value) <= 63 and _LABEL_VALUE.match(value):  # longer names are in the annotations only
            labels[key] = value
    return labels


def _metadata(policy: Owner, item: Wanted) -> dict[str, Any]:
    return {
        "name": item.name,
        "labels": _labels(policy, item.claim),
        "annotations": {
            ANNOTATION_SNAPSHOT_ID: item.snapshot_id,
            ANNOTATION_DISK_ID: item.disk_id,
            ANNOTATION_SNAPSHOT_TIME: item.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            LABEL_POLICY: f"{policy.namespace}/{policy.name}",
        },
    }


def content_manifest(policy: Owner, spec: VolumeSnapshotsSpec, item: Wanted) -> dict[str, Any]:
    """The pre-provisioned VolumeSnapshotContent: the snapshot's handle, bound to the VolumeSnapshot of that name.

    `Retain`: deleting the VolumeSnapshot or the content never makes the CSI driver delete the Azure snapshot,
    which azsnap's retention owns.
    """
    body: dict[str, Any] = {
        "deletionPolicy": "Retain",
        "driver": DRIVER,
        "source": {"snapshotHandle": item.snapshot_id},
        "volumeSnapshotRef": {"name": item.name, "namespace": policy.namespace},
    }
    if spec.volume_snapshot_class_name:
        body["volumeSnapshotClassName"] = spec.volume_snapshot_class_name
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshotContent", "metadata": _metadata(policy, item),
            "spec": body}  # fmt: skip


def snapshot_manifest(policy: Owner, spec: VolumeSnapshotsSpec, item: Wanted) -> dict[str, Any]:
    """The VolumeSnapshot in the policy's namespace, naming its pre-provisioned content."""
    body: dict[str, Any] = {"source": {"volumeSnapshotContentName": item.name}}
    if spec.volume_snapshot_class_name:
        body["volumeSnapshotClassName"] = spec.volume_snapshot_class_name
    metadata = {**_metadata(policy, item), "namespace": policy.namespace}
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VolumeSnapshot", "metadata": metadata, "spec": body}


def _snapshot_id(obj: Mapping[str, Any]) -> str:
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION_SNAPSHOT_ID) or "").lower()


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def plan_objects(
    desired: Sequence[Wanted],
    snapshots: Sequence[Mapping[str, Any]],
    contents: Sequence[Mapping[str, Any]],
    in_azure: set[str] | None,
    limit: int = PUBLISH_PER_RECONCILE,
) -> ObjectPlan:
    """Create what is missing of `desired` (the newest `limit` of it); remove azsnap's objects whose snapshot Azure
    no longer lists.

    `snapshots` and `contents` are the objects carrying this policy's labels. `in_azure` holds the (lower-case)
    ARM IDs of the snapshots Azure lists for the disks concerned; None removes every one of them (the policy stopped
    publishing). An object whose snapshot is still in Azure is kept even when no longer desired (its claim was
    left out of status, say): only a snapshot's end takes its objects away. What is missing beyond `limit` is
    `pending`, newest first, for the next reconcile: a first publish of a large selector is spread over several.
    """
    want = {w.name: w for w in desired}
    have_snapshots = {_name(o) for o in snapshots}
    have_contents = {_name(o) for o in contents}

    def stale(obj: Mapping[str, Any]) -> bool:
        if in_azure is None:
            return True
        return _name(obj) not in want and _snapshot_id(obj) not in in_azure

    missing = [w for w in want.values() if w.name not in have_contents or w.name not in have_snapshots]
    missing = sorted(missing, key=lambda w: (w.time, w.name), reverse=True) if in_azure is not None else []
    creating = sorted(missing[: max(limit, 0)], key=lambda w: w.name)
    return ObjectPlan(
        create_contents=tuple(w for w in creating if w.name not in have_contents),
        create_snapshots=tuple(w for w in creating if w.name not in have_snapshots),
        delete_snapshots=tuple(sorted(_name(o) for o in snapshots if stale(o))),
        delete_contents=tuple(sorted(_name(o) for o in contents if stale(o))),
        pending=tuple(w.name for w in missing[max(limit, 0) :]),
    )
