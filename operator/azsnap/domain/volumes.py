"""From a PersistentVolumeClaim and its bound PersistentVolume to the Azure managed disk behind it, or why not."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Final

from azsnap.domain.models import DiskRef, SnapshotPolicySpec, parse_disk_id
from azsnap.domain.schedule import slot_offset
from azsnap.domain.targets import ClaimView

__all__ = [
    "AZURE_DISK_CSI_DRIVER",
    "ClaimDisk",
    "ClaimProblem",
    "disk_ref",
    "policy_offset",
    "resolve_claim_disk",
    "resolve_targets",
    "target_text",
]

#: The Azure Disk CSI driver's name, as PersistentVolumes it provisions carry it in `spec.csi.driver`.
AZURE_DISK_CSI_DRIVER: Final = "disk.csi.azure.com"
#: PersistentVolume spec fields that are not a volume source.
_NOT_A_SOURCE: Final = frozenset(
    {
        "accessModes", "capacity", "claimRef", "mountOptions", "nodeAffinity", "persistentVolumeReclaimPolicy",
        "storageClassName", "volumeAttributesClassName", "volumeMode",
    }
)  # fmt: skip


class ClaimProblem(StrEnum):
    """Why a claim names no Azure disk (a reason a status condition or event can carry)."""

    CLAIM_NOT_FOUND = "ClaimNotFound"
    CLAIM_PENDING = "ClaimPending"
    CLAIM_LOST = "ClaimLost"
    VOLUME_NOT_FOUND = "VolumeNotFound"
    VOLUME_BOUND_ELSEWHERE = "VolumeBoundElsewhere"
    NOT_AZURE_DISK = "NotAzureDisk"
    NOT_A_DISK_ID = "NotADiskId"
    #: Another claim of the policy already names this disk, or a disk of the same name (their snapshots would share
    #: names in one resource group).
    DUPLICATE_DISK = "DuplicateDisk"


@dataclass(frozen=True)
class ClaimDisk:
    """A claim's disk: its ARM ID, or the problem and a message a person can act on."""

    claim: str
    disk_id: str | None = None
    problem: ClaimProblem | None = None
    message: str = ""


def resolve_claim_disk(claim: str, pvc: Mapping[str, Any] | None, pv: Mapping[str, Any] | None) -> ClaimDisk:
    """The Azure disk behind `claim` (`namespace/name`), given the claim and the volume its `spec.volumeName` names.

    `pvc` is None when the claim does not exist, `pv` when the named volume does not (or the claim names none).
    The ARM ID is returned as the volume spells it: Azure compares IDs case-insensitively, so do callers.
    """
    if pvc is None:
        return _problem(claim, ClaimProblem.CLAIM_NOT_FOUND, f"PersistentVolumeClaim {claim} does not exist; "
                        "create it or remove it from the policy")  # fmt: skip
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    phase, volume_name = status.get("phase") or "Pending", spec.get("volumeName") or ""
    if phase == "Lost":
        return _problem(claim, ClaimProblem.CLAIM_LOST, f"PersistentVolumeClaim {claim} lost its volume "
                        f"{volume_name or '(none)'}; restore the PersistentVolume or rebind the claim")  # fmt: skip
    if phase != "Bound" or not volume_name:
        return _problem(claim, ClaimProblem.CLAIM_PENDING, f"PersistentVolumeClaim {claim} is {phase}, not bound to "
                        "a volume yet; it is snapshotted once it is bound (see kubectl describe pvc)")  # fmt: skip
    if pv is None:
        return _problem(claim, ClaimProblem.VOLUME_NOT_FOUND, f"PersistentVolume {volume_name}, bound to "
                        f"PersistentVolumeClaim {claim}, does not exist")  # fmt: skip
    pv_name = (pv.get("metadata") or {}).get("name")
    if pv_name != volume_name:
        raise ValueError(f"resolve_claim_disk got PersistentVolume {pv_name!r} for a claim bound to {volume_name!r}")
    bound_elsewhere = _bound_elsewhere(claim, pvc, pv)
    if bound_elsewhere:
        return _problem(claim, ClaimProblem.VOLUME_BOUND_ELSEWHERE, f"PersistentVolume {volume_name} is bound to "
                        f"{bound_elsewhere}, not to PersistentVolumeClaim {claim}")  # fmt: skip
    return _disk_of_volume(claim, volume_name, pv.get("spec") or {})


def _bound_elsewhere(claim: str, pvc: Mapping[str, Any], pv: Mapping[str, Any]) -> str:
    """The claim the volume is bound to when it is not this one (by namespace/name, and by UID when both have one)."""
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    if not ref:
        return ""
    named = f"{ref.get('namespace', '')}/{ref.get('name', '')}"
    uid, ref_uid = (pvc.get("metadata") or {}).get("uid"), ref.get("uid")
    if named != claim:
        return f"PersistentVolumeClaim {named}"
    if uid and ref_uid and uid != ref_uid:
        return f"an earlier PersistentVolumeClaim {named} (uid {ref_uid})"
    return ""


def _disk_of_volume(claim: str, volume_name: str, spec: Mapping[str, Any]) -> ClaimDisk:
    csi, in_tree = spec.get("csi"), spec.get("azureDisk")
    if isinstance(csi, Mapping):
        driver = csi.get("driver") or ""
        if driver != AZURE_DISK_CSI_DRIVER:
            return _problem(claim, ClaimProblem.NOT_AZURE_DISK, f"PersistentVolume {volume_name} (claim {claim}) "
                            f"is provisioned by the CSI driver {driver!r}, not {AZURE_DISK_CSI_DRIVER}; azsnap "
                            "snapshots Azure managed disks only")  # fmt: skip
        return _checked(claim, volume_name, "spec.csi.volumeHandle", str(csi.get("volumeHandle") or ""))
    if isinstance(in_tree, Mapping):
        return _checked(claim, volume_name, "spec.azureDisk.diskURI", str(in_tree.get("diskURI") or ""))
    sources = sorted(key for key in spec if key not in _NOT_A_SOURCE)
    source = sources[0] if sources else "no volume source"
    return _problem(claim, ClaimProblem.NOT_AZURE_DISK, f"PersistentVolume {volume_name} (claim {claim}) uses "
                    f"{source}, not an Azure disk; azsnap snapshots Azure managed disks only")  # fmt: skip


def _checked(claim: str, volume_name: str, field: str, value: str) -> ClaimDisk:
    try:
        parse_disk_id(value)
    except ValueError:
        return _problem(claim, ClaimProblem.NOT_A_DISK_ID, f"PersistentVolume {volume_name} (claim {claim}) has "
                        f"{field} {value!r}, which is not the ARM ID of a managed disk "
                        "(/subscriptions/<guid>/resourceGroups/<group>/providers/Microsoft.Compute/disks/<name>)")  # fmt: skip
    return ClaimDisk(claim=claim, disk_id=value)


def _problem(claim: str, problem: ClaimProblem, message: str) -> ClaimDisk:
    return ClaimDisk(claim=claim, problem=problem, message=message)


def disk_ref(spec: SnapshotPolicySpec) -> DiskRef:
    """The disk a per-disk flow works on: `spec.disk` (the disks of claim targets are resolved first, one by one)."""
    if spec.disk is None:
        raise ValueError("the policy targets PersistentVolumeClaims: resolve them to disks first")
    return spec.disk


def target_text(spec: SnapshotPolicySpec) -> str:
    """The policy's target in words, for logs: the disk's ARM ID, `claim <name>` or `claims <selector>`."""
    if spec.disk is not None:
        return spec.disk.id
    if spec.volume_claim is not None:
        return f"claim {spec.volume_claim}"
    return f"claims {spec.volume_claim_selector.summary() if spec.volume_claim_selector else ''}"


def policy_offset(spec: SnapshotPolicySpec) -> timedelta:
    """When a slot is due after its time: the disk's jitter offset, or for claim targets the latest any disk's can be."""
    if spec.disk is not None:
        return slot_offset(spec.schedule, spec.disk.id)
    return spec.schedule.jitter or timedelta(0)


def resolve_targets(spec: SnapshotPolicySpec, namespace: str, view: ClaimView) -> list[ClaimDisk]:
    """The claims a claim target names in `namespace` (never another), each with its disk or why it has none.

    A selector's claims come in name order. Two claims naming one disk, or two disks of one name (their snapshot
    names would collide in one resource group), leave the later claim with `DuplicateDisk`.
    """
    if spec.volume_claim is not None:
        found: list[tuple[str, Mapping[str, Any] | None]] = [
            (spec.volume_claim, view.claim(namespace, spec.volume_claim))
        ]
    elif spec.volume_claim_selector is not None:
        selector = spec.volume_claim_selector.selector
        found = sorted(
            (str(meta.get("name") or ""), claim)
            for claim in view.claims(namespace)
            if (meta := claim.get("metadata") or {}).get("namespace") == namespace
            and selector.matches(meta.get("labels") or {})
        )
    else:
        return []
    resolved: list[ClaimDisk] = []
    ids: dict[str, str] = {}
    names: dict[str, str] = {}
    for name, claim in found:
        volume_name = str(((claim or {}).get("spec") or {}).get("volumeName") or "")
        answer = resolve_claim_disk(f"{namespace}/{name}", claim, view.volume(volume_name) if volume_name else None)
        disk_id = answer.disk_id
        if disk_id is not None:
            disk_name = parse_disk_id(disk_id).name.lower()
            twin = ids.get(disk_id.lower()) or names.get(disk_name)
            if twin is not None:
                answer = _problem(answer.claim, ClaimProblem.DUPLICATE_DISK, f"PersistentVolumeClaim {answer.claim} "
                                  f"names disk {disk_id}, and {twin} already names that disk or one of the same "
                                  "name; azsnap snapshots it once, through the first claim")  # fmt: skip
            else:
                ids[disk_id.lower()] = names[disk_name] = answer.claim
        resolved.append(answer)
    return resolved
