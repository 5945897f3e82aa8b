"""The soak's referee: watches every create and delete inside the Azure emulator and checks azsnap's invariants.

It hooks the emulator's store (not azsnap), so it sees what Azure would see: each new snapshot as it is
accepted, each delete as it is asked for, with the snapshot's tags and state at that instant.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azsnap.domain import naming, schedule
from azsnap.domain.models import Policy
from azsnap.domain.observed import Limits, Snapshot, SnapshotState
from azsnap.domain.retention import decide_retention
from azsnap.emulator import Emulator
from azsnap.emulator.state import Key, SnapshotRecord

__all__ = ["Ledger", "PolicyLife", "SlotKey", "SlotTally", "record_snapshot"]

#: (policy UID, disk unique ID, slot): one snapshot at most, ever.
SlotKey = tuple[str, str, datetime]


@dataclass
class PolicyLife:
    """One policy of the soak: what it is, when it lived, and the status the cluster keeps for it."""

    policy: Policy
    kind: str
    started: datetime
    #: When its deletion began (deletionPolicy Delete); None while it lives.
    deleting_since: datetime | None = None
    finalized: bool = False
    #: The status as Kubernetes would hold it (written only when a reconcile returned).
    status: dict[str, Any] = field(default_factory=dict)


def key_of(record: SnapshotRecord) -> Key:
    return (record.subscription_id.lower(), record.resource_group.lower(), record.name.lower())


def _tags(record: SnapshotRecord) -> dict[str, str]:
    return dict(record.body.get("tags") or {})


def _slot(record: SnapshotRecord) -> datetime | None:
    text = naming.tag(_tags(record), naming.TAG_SLOT)
    return None if text is None else naming.parse_slot(text)


def record_snapshot(record: SnapshotRecord, state: str | None = None) -> Snapshot:
    """The emulator's record as azsnap's domain value (what a list would have shown)."""
    props = record.body.get("properties") or {}
    creation = props.get("creationData") or {}
    created = props.get("timeCreated")
    return Snapshot(
        id=str(record.body.get("id", "")),
        name=record.name,
        resource_group=record.resource_group,
        location=record.location,
        source_resource_id=creation.get("sourceResourceId"),
        source_unique_id=creation.get("sourceUniqueId"),
        time_created=datetime.fromisoformat(created) if created else None,
        provisioning_state=state or record.state,
        tags=_tags(record),
        incremental=bool(props.get("incremental", True)),
    )


class Ledger:
    """Every snapshot the emulator ever held, and every breach of the soak's invariants as it happened."""

    def __init__(self, emulator: Emulator, lives: dict[str, PolicyLife], limits: Limits) -> None:
        self.emulator = emulator
        self.lives = lives
        self.limits = limits
        #: Slots that already had a snapshot which was (or still is) real, by key → name.
        self.slots: dict[SlotKey, str] = {}
        #: Names whose create operation failed and left nothing behind (a retry of that slot is no duplicate).
        self.failed_creates: set[str] = set()
        #: Last known state of every snapshot ever created (lower-cased name): deleted ones included.
        self.history: dict[str, Snapshot] = {}
        self.duplicates: list[str] = []
        self.wrong_deletes: list[str] = []
        self.deletes = 0
        self.creates = 0
        #: Names seeded as someone else's (foreign) or forged: azsnap must never delete them.
        self.protected: set[str] = set()
        #: The store's keys of each (policy UID, disk-UID tag)'s snapshots, so a delete is judged without a scan.
        self._by_owner: dict[tuple[str, str], set[Key]] = {}

    # ---- hooks -------------------------------------------------------------------------------------------------

    def attach(self) -> None:
        store = self.emulator.store
        create: Callable[..., Any] = store.create_snapshot
        delete: Callable[..., Any] = store.delete_snapshot
        finish: Callable[..., Any] = store._finish

        def on_create(now: datetime, *args: Any, fail: str | None = None, **kwargs: Any) -> Any:
            record, operation = create(now, *args, fail=fail, **kwargs)  # type: ignore[arg-type]
            if operation is not None:
                self._created(record, failed=fail == "lro_failed")
            return record, operation

        def on_delete(now: datetime, subscription_id: str, resource_group: str, name: str, **kwargs: Any) -> Any:
            record = store.snapshots.get((subscription_id.lower(), resource_group.lower(), name.lower()))
            if record is not None:
                self._deleting(record, now)
            return delete(now, subscription_id, resource_group, name, **kwargs)

        def on_finish(operation: Any, now: datetime) -> None:
            finish(operation, now)
            record = store.snapshots.get(operation.target)
            if record is not None:
                self.history[record.name.lower()] = record_snapshot(record)
            else:
                for keys in self._by_owner.values():
                    keys.discard(operation.target)

        store.create_snapshot = on_create  # type: ignore[method-assign]
        store.delete_snapshot = on_delete  # type: ignore[method-assign]
        store._finish = on_finish  # type: ignore[method-assign]

    def _created(self, record: SnapshotRecord, *, failed: bool) -> None:
        self.creates += 1
        name = record.name.lower()
        tags = _tags(record)
        self.history[name] = record_snapshot(record)
        owner = (naming.tag(tags, naming.TAG_POLICY_UID) or "", naming.tag(tags, naming.TAG_DISK_UID) or "")
        self._by_owner.setdefault(owner, set()).add(key_of(record))
        slot = _slot(record)
        if all(owner) and slot is not None and not naming.is_on_demand(self.history[name]):
            key = (*owner, slot)
            earlier = self.slots.get(key)
            ended_failed = earlier is not None and self.history[earlier].state is SnapshotState.FAILED
            # a retry of a slot whose snapshot ended Failed (or whose create left nothing) is no duplicate
            if earlier is not None and earlier not in self.failed_creates and not ended_failed:
                self.duplicates.append(
                    f"{record.name}: slot {naming.format_slot(slot)} of policy {owner[0]} taken twice"
                )
            self.slots[key] = name
        # a create whose operation fails leaves nothing: retrying its slot afterwards is no duplicate
        if failed:
            self.failed_creates.add(name)
        else:
            self.failed_creates.discard(name)

    def _deleting(self, record: SnapshotRecord, now: datetime) -> None:
        self.deletes += 1
        self.history[record.name.lower()] = record_snapshot(record)
        problem = self._delete_problem(record, now)
        if problem is not None:
            self.wrong_deletes.append(f"{now.isoformat()} {record.name}: {problem}")

    # ---- the delete invariant ----------------------------------------------------------------------------------

    def _delete_problem(self, record: SnapshotRecord, now: datetime) -> str | None:
        tags = _tags(record)
        if record.name.lower() in self.protected:
            return "seeded as not azsnap's (foreign or forged tags)"
        if naming.tag(tags, naming.TAG_MANAGED_BY) != naming.MANAGED_BY_VALUE:
            return "not made by azsnap"
        if naming.tag(tags, naming.TAG_HOLD) is not None:
            return "carries the hold tag"
        uid = naming.tag(tags, naming.TAG_POLICY_UID) or ""
        life = self.lives.get(uid)
        if life is None:
            return f"its policy UID {uid!r} is no policy of the soak"
        if not naming.tag(tags, naming.TAG_DISK_UID):
            return "it carries no disk-UID tag"
        if record.state == "Updating":
            return "still being created"
        if life.deleting_since is not None or record.state != "Succeeded":
            return None  # the policy's own deletion, or a Failed snapshot past its grace
        # lineage: the policy's snapshots of every incarnation of the disk are one set for minKeep; the newest
        # good snapshot of each incarnation (Azure's sourceUniqueId) is never deleted
        good = self._good(uid)
        family = [r for r in good if r.source_unique_id == record.source_unique_id]
        newest = max(family, key=lambda r: (r.created, r.name), default=None)
        if newest is record:
            return "the newest good snapshot of its disk incarnation"
        if len(good) - 1 < life.policy.spec.retention.min_keep:
            return f"leaves {len(good) - 1} good snapshot(s), fewer than minKeep {life.policy.spec.retention.min_keep}"
        return None

    def _good(self, uid: str) -> list[SnapshotRecord]:
        store = self.emulator.store
        leaving = {op.target for op in store.operations.values() if op.kind == "delete" and op.status == "InProgress"}
        keys = set().union(*(k for (owner, _), k in self._by_owner.items() if owner == uid))
        records = (store.snapshots.get(k) for k in keys - leaving)
        return [
            r
            for r in records
            if r is not None
            and r.state == "Succeeded"
            and naming.tag(_tags(r), naming.TAG_POLICY_UID) == uid
            and naming.tag(_tags(r), naming.TAG_HOLD) is None
        ]

    # ---- end-of-run checks -------------------------------------------------------------------------------------

    def taken(self, life: PolicyLife, disk_uids: Iterable[str]) -> dict[datetime, str]:
        """Slots of the policy with a real snapshot (created and not failed at creation): slot → last state."""
        found: dict[datetime, str] = {}
        uids = set(disk_uids)
        for (uid, disk_uid, slot), name in self.slots.items():
            if uid == life.policy.ref.uid and disk_uid in uids and name not in self.failed_creates:
                snap = self.history.get(name)
                found[slot] = (snap.provisioning_state or "") if snap is not None else ""
        return found

    def final_set_problems(self, life: PolicyLife, disk_uid: str, now: datetime) -> list[str]:
        """What differs between the snapshots the policy holds and what retention keeps of everything it made."""
        uid = life.policy.ref.uid
        store = self.emulator.store
        store.settle(now)
        held = {
            r.name.lower()
            for r in store.snapshots.values()
            if naming.tag(_tags(r), naming.TAG_POLICY_UID) == uid
            and naming.tag(_tags(r), naming.TAG_DISK_UID) == disk_uid
        }
        if life.finalized:
            left = {n for n in held if naming.tag(self.history[n].tags, naming.TAG_HOLD) is None}
            return [f"{uid}: deleted policy still holds {sorted(left)}"] if left else []
        made = [
            s
            for name, s in self.history.items()
            if name not in self.failed_creates
            and naming.tag(s.tags, naming.TAG_POLICY_UID) == uid
            and naming.tag(s.tags, naming.TAG_DISK_UID) == disk_uid
        ]
        # deleted ones as they were when deleted; the ones still there as they are now
        current = {r.name.lower(): record_snapshot(r) for r in store.snapshots.values() if r.name.lower() in held}
        everything = [current.get(s.name.lower(), s) for s in made]
        spec = life.policy.spec
        decision = decide_retention(spec.retention, spec.schedule.zone, everything, now, self.limits)
        expected = {name.lower() for name in decision.keep}
        problems = []
        if held - expected:
            problems.append(f"{uid}: holds {sorted(held - expected)} which retention would not keep")
        if expected - held:
            problems.append(f"{uid}: lost {sorted(expected - held)} which retention keeps")
        return problems

    def slot_tally(self, life: PolicyLife, disk_uids: Iterable[str], until: datetime) -> SlotTally:
        """The policy's slots decided by `until` (their startingDeadline has passed): taken, failed, missed."""
        sched = life.policy.spec.schedule
        offset = schedule.slot_offset(sched, life.policy.spec.disk.id)
        end = min(until, life.deleting_since or until)
        first = schedule.previous_slot(sched, life.started - offset)
        slots = [first] if first is not None and life.started < first + offset + sched.starting_deadline else []
        slots += schedule.slots_between(sched, life.started - offset, end - offset)
        decided = [s for s in slots if s + offset + sched.starting_deadline <= end]
        taken = self.taken(life, disk_uids)
        missed = [s for s in decided if s not in taken or taken[s] == "Failed"]
        windows = [(s + offset, s + offset + sched.starting_deadline) for s in missed]
        return SlotTally(
            due=len(decided),
            taken=len(decided) - len(missed),
            failed=sum(1 for s in decided if taken.get(s) == "Failed"),
            missed_windows=windows,
        )

    def summary(self) -> Counter[str]:
        return Counter(creates=self.creates, deletes=self.deletes)


@dataclass(frozen=True)
class SlotTally:
    """One policy's decided slots. A slot whose every snapshot ended `Failed` is missed (azsnap counts it so)."""

    due: int
    taken: int
    #: Slots whose last snapshot ended `Failed` (counted in `missed_windows` too).
    failed: int
    #: (from, until) of each missed slot: its due time and its startingDeadline.
    missed_windows: list[tuple[datetime, datetime]]

    def missed_while_up(self, outages: Iterable[tuple[datetime, datetime]]) -> int:
        """Missed slots none of whose window overlapped an outage (the operator down or restarting, the disk gone)."""
        spans = list(outages)
        return sum(1 for start, end in self.missed_windows if not any(a <= end and start <= b for a, b in spans))


def utc(when: datetime) -> datetime:
    return when.astimezone(UTC)
