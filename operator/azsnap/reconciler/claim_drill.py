"""Restore drills of a policy over PersistentVolumeClaims: which claim's disk the next round verifies.

A claim policy has one disk per claim; each drill round verifies one. The claims take turns by name
(`domain/drill.py`'s `drill_rotation`), starting after the claim drilled last (`status.lastVerifiedRestore.claim`;
at that claim again when its drill failed), and the drill (`reconciler/drill.py`) passes over a disk with no usable snapshot yet for the next in turn. The
chosen disk is drilled as a disk policy of its own (`disk_policy`), so its scratch disk, tags, scope check and
limits are those of a policy on that disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from azsnap.domain.drill import drill_rotation
from azsnap.domain.models import Policy
from azsnap.domain.targets import ClaimView
from azsnap.domain.volumes import resolve_targets
from azsnap.reconciler.targets import disk_policy

__all__ = ["claim_drill_targets"]


def claim_drill_targets(
    policy: Policy, claims: ClaimView | None, last: Mapping[str, Any] | None
) -> list[tuple[str, Policy]]:
    """The policy's claims that name a disk, each with the disk policy to drill, in the order to try them."""
    if claims is None:
        return []
    resolved = resolve_targets(policy.spec, policy.ref.namespace, claims)
    disks = [(t.claim.rpartition("/")[2], t.disk_id) for t in resolved if t.disk_id is not None]
    last = last or {}
    order = drill_rotation(disks, last.get("claim"), again=last.get("result") == "Failed")
    return [(claim, disk_policy(policy, disk_id)) for claim, disk_id in order]
