"""The demo's invariants: Azure's side watched during the run, and the hand-made snapshots azsnap must leave alone.

Checked at the end: no two snapshots for one slot, no unowned snapshot deleted, no disk deleted that was there before
the policies (drills and restores only add and delete their own), no per-disk limit exceeded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from azsnap.domain import naming
from azsnap.domain.copies import ROLE_COPY, TAG_ROLE
from azsnap.emulator import DEMO_LOCATION, DEMO_RESOURCE_GROUP, DEMO_SUBSCRIPTION, Emulator
from azsnap.offline.sandbox import disk_id

__all__ = ["Witness", "seed_unowned"]


@dataclass
class Witness:
    """Watches Azure's side during the run: every snapshot ever seen, and the unowned ones that must survive."""

    emulator: Emulator
    unowned: list[str] = field(default_factory=list)
    #: Snapshot key → (policy UID, source disk, slot) for every scheduled snapshot azsnap made that was ever seen (a
    #: policy over claims takes one snapshot of each of its disks per slot).
    seen: dict[tuple[str, str, str], tuple[str, str, str]] = field(default_factory=dict)
    #: ARM IDs of the disks there before the policies: drills and restores may add disks, never delete one of these.
    disks: list[str] = field(default_factory=list)

    def sample(self) -> None:
        """Remember snapshots that appeared since the last sample."""
        store = self.emulator.store
        for k in store.snapshots.keys() - self.seen.keys():
            body = store.snapshots[k].body
            tags = body.get("tags") or {}
            uid, slot = naming.tag(tags, naming.TAG_POLICY_UID), naming.tag(tags, naming.TAG_SLOT)
            kind = naming.tag(tags, naming.TAG_KIND) or naming.KIND_SCHEDULED
            source = str(((body.get("properties") or {}).get("creationData") or {}).get("sourceResourceId") or "")
            if uid and slot and kind == naming.KIND_SCHEDULED and naming.tag(tags, TAG_ROLE) != ROLE_COPY:
                self.seen[k] = (uid, source.lower(), slot)

    def violations(self, policies: Mapping[str, str]) -> list[str]:
        """Duplicate slots, unowned snapshots gone, and every per-disk limit Azure saw broken."""
        self.sample()
        broken: list[str] = []
        slots = Counter(self.seen.values())
        names = {uid: key for key, uid in policies.items()}
        for (uid, source, slot), count in sorted(slots.items()):
            if count > 1:
                disk = source.rpartition("/")[2]
                broken.append(f"duplicate slot: {count} snapshots for slot {slot} of {names.get(uid, uid)} ({disk})")
        present = {k[2] for k in self.emulator.store.snapshots}
        for name in self.unowned:
            if name.lower() not in present:
                broken.append(f"unowned snapshot deleted: {name}")
        ids = {str(d["id"]).lower() for d in self.emulator.disks()}
        broken.extend(f"disk deleted: {d.rpartition('/')[2]}" for d in self.disks if d.lower() not in ids)
        broken.extend(f"limit exceeded: {v}" for v in self.emulator.violations)
        return broken


def seed_unowned(emulator: Emulator, now: datetime, disks: int) -> list[str]:
    """Snapshots azsnap must never delete: two made by hand, one tagged by another azsnap installation."""
    seeds: list[tuple[str, str, dict[str, str]]] = []
    if disks > 0:
        seeds.append(("disk-0-before-upgrade", "disk-0", {"owner": "dba-team"}))
    if disks > 2:
        seeds.append(("disk-2-manual", "disk-2", {}))
        seeds.append(
            (
                "disk-2-other-cluster-20260301T0000Z",
                "disk-2",
                {
                    naming.TAG_MANAGED_BY: naming.MANAGED_BY_VALUE,
                    naming.TAG_POLICY_UID: "0b7cf6a2-3c55-4b8e-9f3e-other-cluster",
                    naming.TAG_SLOT: "2026-03-01T00:00:00Z",
                    naming.TAG_KIND: naming.KIND_SCHEDULED,
                },
            )
        )
    for name, disk, tags in seeds:
        body = {
            "location": DEMO_LOCATION,
            "tags": tags,
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": disk_id(disk)},
                "incremental": True,
            },
        }
        emulator.store.create_snapshot(now, DEMO_SUBSCRIPTION, DEMO_RESOURCE_GROUP, name, body)
    return [name for name, _, _ in seeds]
