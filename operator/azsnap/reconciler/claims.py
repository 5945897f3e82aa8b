"""The claims side of claim targets: an in-memory view of PVCs and PVs, and which policies care about which claim.

`ClaimStore` is the `ClaimView` tests and offline tools fill by hand; the operator reads kopf's indexes of the
watched claims and volumes instead (`handlers/volumes.py`). `ClaimInterest` remembers each claim policy's target
so that a claim's change wakes exactly the policies whose selector (or name) covers it, without listing anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from azsnap.domain.models import SnapshotPolicySpec
from azsnap.domain.selectors import LabelSelector
from azsnap.domain.targets import ClaimView

__all__ = ["ClaimInterest", "ClaimStore", "slim_claim", "slim_volume"]


def slim_claim(body: Mapping[str, Any]) -> dict[str, Any]:
    """What azsnap reads of a PersistentVolumeClaim (name, namespace, uid, labels, volumeName, phase)."""
    meta, spec, status = body.get("metadata") or {}, body.get("spec") or {}, body.get("status") or {}
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "labels": dict(meta.get("labels") or {}),
        },
        "spec": {"volumeName": spec.get("volumeName")},
        "status": {"phase": status.get("phase")},
    }


def slim_volume(body: Mapping[str, Any]) -> dict[str, Any]:
    """What azsnap reads of a PersistentVolume: its name, claimRef and volume source (disk fields only)."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    slim: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "claimRef" and isinstance(value, Mapping):
            slim[key] = {k: value.get(k) for k in ("namespace", "name", "uid")}
        elif key == "csi" and isinstance(value, Mapping):
            slim[key] = {k: value.get(k) for k in ("driver", "volumeHandle")}
        elif key == "azureDisk" and isinstance(value, Mapping):
            slim[key] = {"diskURI": value.get("diskURI")}
        elif isinstance(value, Mapping):
            slim[key] = {}  # another volume source: its name is enough to say what it is
    return {"metadata": {"name": meta.get("name")}, "spec": slim}


@dataclass
class ClaimStore:
    """An in-memory `ClaimView`: claims by namespace and name, volumes by name, as the API server returns them."""

    claims_by_namespace: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    volumes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put_claim(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        self.claims_by_namespace.setdefault(str(meta.get("namespace")), {})[str(meta.get("name"))] = dict(body)

    def remove_claim(self, namespace: str, name: str) -> None:
        self.claims_by_namespace.get(namespace, {}).pop(name, None)

    def put_volume(self, body: Mapping[str, Any]) -> None:
        self.volumes[str((body.get("metadata") or {}).get("name"))] = dict(body)

    def remove_volume(self, name: str) -> None:
        self.volumes.pop(name, None)

    def claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.claims_by_namespace.get(namespace, {}).get(name)

    def claims(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        return list(self.claims_by_namespace.get(namespace, {}).values())

    def volume(self, name: str) -> Mapping[str, Any] | None:
        return self.volumes.get(name)


@dataclass(frozen=True)
class _Target:
    namespace: str
    name: str | None
    selector: LabelSelector | None


@dataclass
class ClaimInterest:
    """Which policy (by UID) targets which claims: a claim's change wakes only the policies that cover it."""

    targets: dict[str, _Target] = field(default_factory=dict)
    #: The claims each policy covered at its last reconcile: one relabelled out of a selector still wakes it once.
    listed: dict[str, frozenset[str]] = field(default_factory=dict)

    def remember(self, uid: str, namespace: str, spec: SnapshotPolicySpec) -> None:
        """Record the policy's target (a policy with a disk target is forgotten: no claim concerns it)."""
        if spec.volume_claim is not None:
            self.targets[uid] = _Target(namespace, spec.volume_claim, None)
        elif spec.volume_claim_selector is not None:
            self.targets[uid] = _Target(namespace, None, spec.volume_claim_selector.selector)
        else:
            self.targets.pop(uid, None)

    def forget(self, uid: str) -> None:
        self.targets.pop(uid, None)
        self.listed.pop(uid, None)

    def remember_listed(self, uid: str, status: Mapping[str, Any], claims: ClaimView | None = None) -> None:
        """The claims `status.disks` lists after a reconcile of the policy, and those it leaves out (from `claims`).

        The claims left out are every claim the target covers now: named only in the view, never in the status.
        """
        listed = {str(e.get("claim")) for e in status.get("disks") or [] if isinstance(e, Mapping)}
        target = self.targets.get(uid)
        if status.get("disksNotShown") and claims is not None and target is not None:
            for body in claims.claims(target.namespace):
                meta = body.get("metadata") or {}
                name, labels = str(meta.get("name")), meta.get("labels") or {}
                if name == target.name or (target.selector is not None and target.selector.matches(labels)):
                    listed.add(name)
        self.listed[uid] = frozenset(listed)

    def covering(self, namespace: str, name: str, labels: Mapping[str, str] | None) -> list[str]:
        """The policies whose target covers the claim `namespace/name` (labels None: the claim is not known)."""
        found = []
        for uid, target in self.targets.items():
            if target.namespace != namespace:
                continue
            if name in self.listed.get(uid, ()):
                hit = True  # it was the policy's: a change (relabelled, deleted) may take it out
            elif target.name is not None:
                hit = target.name == name
            else:
                # Without the claim's labels (a volume whose claim is not known) every selector in the namespace
                # looks again: it costs one reconcile each, and misses nothing.
                hit = labels is None or (target.selector is not None and target.selector.matches(labels))
            if hit:
                found.append(uid)
        return found
