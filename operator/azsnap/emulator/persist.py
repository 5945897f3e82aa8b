"""The emulator's state as JSON, so `azsnap emulator --state FILE` survives a restart."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from azsnap.emulator.records import DiskRecord, Key, Operation, SnapshotRecord
from azsnap.emulator.state import Store

__all__ = ["FORMAT", "dump_store", "load_store", "read_state", "write_state"]

FORMAT: Final = "azsnap-emulator-state/2"


def _key(k: Key) -> list[str]:
    return list(k)


def _unkey(raw: Any) -> Key:
    sub, rg, name = (str(part) for part in raw)
    return (sub, rg, name)


def _time(raw: Any) -> datetime:
    return datetime.fromisoformat(str(raw))


def dump_store(store: Store) -> dict[str, Any]:
    """Everything that is Azure's state; requests, faults and buckets are not saved."""
    return {
        "format": FORMAT,
        "groups": [[sub, rg, loc] for (sub, rg), loc in store.groups.items()],
        "disks": [
            {
                "subscription_id": d.subscription_id,
                "resource_group": d.resource_group,
                "name": d.name,
                "location": d.location,
                "sku": d.sku,
                "size_gb": d.size_gb,
                "written_gb": d.written_gb,
                "unique_id": d.unique_id,
                "family_id": d.family_id,
                "time_created": d.time_created.isoformat(),
                "state": d.state,
                "creation": d.creation,
                "tags": d.tags,
                "carried": d.carried,
                "encryption": d.encryption,
                "zones": d.zones,
                "hydrate_minutes": d.hydrate_minutes,
                "completion": d.completion,
            }
            for d in store.disks.values()
        ],
        "snapshots": [
            {
                "subscription_id": s.subscription_id,
                "resource_group": s.resource_group,
                "name": s.name,
                "body": s.body,
                "created": s.created.isoformat(),
                "state": s.state,
                "source_unique_id": s.source_unique_id,
                "copy_minutes": s.copy_minutes,
                "access_until": s.access_until.isoformat() if s.access_until else None,
                "copy": _copy_fields(s),
            }
            for s in store.snapshots.values()
        ],
        "operations": [
            {
                "id": o.id,
                "subscription_id": o.subscription_id,
                "location": o.location,
                "kind": o.kind,
                "target": _key(o.target),
                "start": o.start.isoformat(),
                "due": o.due.isoformat(),
                "error": o.error,
                "keep_failed": o.keep_failed,
                "status": o.status,
                "end": o.end.isoformat() if o.end else None,
                "target_kind": o.target_kind,
                "changes": o.changes,
                "partition": o.partition,
            }
            for o in store.operations.values()
        ],
        "created_at": {uid: [t.isoformat() for t in times] for uid, times in store.created_at.items()},
        "violations": list(store.violations),
    }


def load_store(store: Store, data: dict[str, Any]) -> None:
    """Replace `store`'s content with a dump; ValueError if it is not one."""
    if data.get("format") != FORMAT:
        raise ValueError(f"not an emulator state file (format {data.get('format')!r}, expected {FORMAT!r})")
    store.reset(keep_disks=False)
    for sub, rg, loc in data["groups"]:
        store.groups[(str(sub), str(rg))] = str(loc)
    for d in data["disks"]:
        disk = DiskRecord(
            d["subscription_id"],
            d["resource_group"],
            d["name"],
            d["location"],
            d["sku"],
            int(d["size_gb"]),
            float(d["written_gb"]),
            d["unique_id"],
            d["family_id"],
            _time(d["time_created"]),
            d["state"],
            d["creation"],
            d["tags"],
            d["carried"],
            d["encryption"],
            zones=d.get("zones"),
            hydrate_minutes=d.get("hydrate_minutes"),
            completion=d.get("completion"),
        )
        store.disks[(disk.subscription_id.lower(), disk.resource_group.lower(), disk.name.lower())] = disk
    for s in data["snapshots"]:
        snap = SnapshotRecord(
            s["subscription_id"],
            s["resource_group"],
            s["name"],
            s["body"],
            _time(s["created"]),
            s["state"],
            s["source_unique_id"],
            s["copy_minutes"],
            _time(s["access_until"]) if s["access_until"] else None,
        )
        _load_copy(snap, s.get("copy"))
        store.snapshots[(snap.subscription_id.lower(), snap.resource_group.lower(), snap.name.lower())] = snap
    for o in data["operations"]:
        store.operations[o["id"]] = Operation(
            o["id"],
            o["subscription_id"],
            o["location"],
            o["kind"],
            _unkey(o["target"]),
            _time(o["start"]),
            _time(o["due"]),
            o["error"],
            bool(o["keep_failed"]),
            o["status"],
            _time(o["end"]) if o["end"] else None,
            o["target_kind"],
            o["changes"],
            o["partition"],
        )
    store.created_at.update({uid: [_time(t) for t in times] for uid, times in data["created_at"].items()})
    store.violations.extend(str(v) for v in data["violations"])


def write_state(store: Store, path: Path) -> None:
    """Write atomically: a crash mid-write leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w") as out:
        json.dump(dump_store(store), out, indent=1, sort_keys=True)
    os.replace(tmp, path)


def read_state(store: Store, path: Path) -> None:
    load_store(store, json.loads(path.read_text()))


def _copy_fields(s: SnapshotRecord) -> dict[str, Any] | None:
    if s.copy_source is None:
        return None
    return {
        "source": list(s.copy_source),
        "family": s.copy_family,
        "source_time": s.copy_source_time.isoformat() if s.copy_source_time else None,
        "stop": s.copy_stop.isoformat() if s.copy_stop else None,
        "error": s.copy_error,
    }


def _load_copy(snap: SnapshotRecord, raw: dict[str, Any] | None) -> None:
    if not raw:
        return
    source = raw["source"]
    snap.copy_source = (source[0], source[1], source[2])
    snap.copy_family = raw["family"]
    snap.copy_source_time = _time(raw["source_time"]) if raw["source_time"] else None
    snap.copy_stop = _time(raw["stop"]) if raw["stop"] else None
    snap.copy_error = raw["error"]
