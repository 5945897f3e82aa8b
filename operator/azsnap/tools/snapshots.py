"""`azsnap snapshots`: a policy's snapshots in Azure, each with its state, size, holds and the rules that keep it.

Policies are read from the cluster (`read_policies`, the `kubernetes` client with the kubeconfig as kubectl
reads it); snapshots through `cloud/` with the operator's own settings and credentials, read the way a reconcile
reads them (one list of the subscription, shared by its policies); why each snapshot is kept is
`domain.explain`, retention's own decision told per snapshot. Nothing is written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final, TextIO

from azsnap.clock import Clock, WallClock
from azsnap.cloud.errors import CloudError
from azsnap.cloud.interface import CloudClient
from azsnap.domain import naming
from azsnap.domain.copies import TargetState, disk_hash, plan_copies, target_key
from azsnap.domain.explain import Explanation, RestorePoints, explain, restore_points
from azsnap.domain.models import API_GROUP, API_VERSION, KIND, OnSourceDiskDelete, Policy, PolicyRef, parse_disk_id
from azsnap.domain.observed import Disk, Limits, Snapshot
from azsnap.domain.validation import format_errors, validate_manifest
from azsnap.reconciler.observe import Observer
from azsnap.settings import ENV_PREFIX, CredentialMode, Settings, SettingsError
from azsnap.tools.cluster import ClusterError, Selection, connect
from azsnap.tools.policy_disks import policy_disks, same_disk
from azsnap.tools.published import PublishedView, face_cells, face_json, read_published

__all__ = [
    "PolicySnapshots",
    "SnapshotsOptions",
    "gather",
    "parse_policy",
    "policy_json",
    "render",
    "render_table",
    "run_snapshots",
]

_GIB: Final = 1024**3


@dataclass(frozen=True)
class PolicySnapshots:
    """One policy's snapshots of one disk as Azure has them now, explained; or why they could not be read."""

    namespace: str
    name: str
    disk_id: str
    problem: str | None = None
    #: The claim the disk was found through (`namespace/name`), for a policy that targets claims.
    claim: str | None = None
    disk_exists: bool = True
    #: Snapshots of the disk's ARM ID in Azure, the policy's and everyone else's.
    disk_snapshots: int = 0
    snapshots: tuple[Explanation, ...] = ()
    points: RestorePoints = field(default_factory=lambda: RestorePoints(None, None, 0))
    #: For a policy that publishes VolumeSnapshots: which snapshot is published as which, and whether it is ready.
    published: PublishedView | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_policy(obj: Mapping[str, Any]) -> tuple[Policy | None, str]:
    """The policy a cluster object describes, or what is wrong with its spec."""
    meta = obj.get("metadata") or {}
    spec, errors = validate_manifest(
        {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "metadata": meta, "spec": obj.get("spec")}
    )
    if spec is None or errors:
        return None, f"the policy is invalid: {format_errors(errors)}"
    ref = PolicyRef(namespace=meta.get("namespace") or "", name=meta.get("name") or "", uid=meta.get("uid") or "")
    return Policy(ref=ref, spec=spec), ""


async def gather(
    objects: Sequence[Mapping[str, Any]], cloud: CloudClient, clock: Clock, limits: Limits, *, disk: str | None = None
) -> list[PolicySnapshots]:
    """Each policy's snapshots, disk by disk, read from Azure and explained, in the order given; only `disk`'s."""
    observer = Observer(cloud, clock)
    rows: list[PolicySnapshots] = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        policy, problem = parse_policy(obj)
        if policy is None:
            disk_id = str(((obj.get("spec") or {}).get("disk") or {}).get("id") or "")
            if disk is not None and not same_disk(disk_id, disk):
                continue
            rows.append(PolicySnapshots(namespace, name, disk_id, problem=problem))
            continue
        targets = await policy_disks(observer, obj, policy, disk)  # with `disk`: none when it is not the policy's
        if not targets and disk is None:
            rows.append(PolicySnapshots(namespace, name, "", problem="no disk found through its claims yet"))
        for claim, disk_id in targets:
            rows.append(await _one(policy, obj.get("status") or {}, claim, disk_id, observer, clock.now(), limits))
    return rows


async def _one(
    policy: Policy,
    status: Mapping[str, Any],
    claim: str | None,
    disk_id: str,
    observer: Observer,
    now: datetime,
    limits: Limits,
) -> PolicySnapshots:
    ref, spec = policy.ref, policy.spec
    coords = parse_disk_id(disk_id)
    groups = (coords.resource_group, spec.snapshot.resource_group or coords.resource_group)
    row = PolicySnapshots(ref.namespace, ref.name, disk_id, claim=claim)
    try:
        disk = await observer.disk(disk_id)
        if disk is not None:
            of_disk = await observer.of_disk(disk, groups)
            owned = [s for s in of_disk if naming.is_owned(s, ref, disk)]
        else:
            listed = await observer.in_subscription(coords.subscription_id, groups)
            of_disk = [s for s in listed if (s.source_resource_id or "").lower() == disk_id.lower()]
            owned = [s for s in of_disk if naming.owns(s, ref, disk_id)]
    except CloudError as exc:
        return replace(row, problem=f"Azure refused to answer: {exc}")
    needs = {} if disk is None else await _copy_sources(policy, status, disk, owned, observer, now, limits)
    stopped_by = None
    if spec.suspend:
        stopped_by = "suspended"
    elif disk is None and spec.on_source_disk_delete is OnSourceDiskDelete.KEEP:
        stopped_by = "onSourceDiskDelete"
    return replace(
        row,
        disk_exists=disk is not None,
        disk_snapshots=len(of_disk),
        snapshots=tuple(
            explain(spec.retention, spec.schedule.zone, owned, now, limits, stopped_by=stopped_by, copy_sources=needs)
        ),
        points=restore_points(owned, now),
    )


async def _copy_sources(
    policy: Policy,
    status: Mapping[str, Any],
    disk: Disk,
    owned: Sequence[Snapshot],
    observer: Observer,
    now: datetime,
    limits: Limits,
) -> dict[str, str]:
    """The policy's snapshots a cross-region copy still needs (name -> why), as the copy planner protects them."""
    needs: dict[str, str] = {}
    previous = {(e.get("region"), e.get("resourceGroup")): e for e in status.get("copies") or []}
    for target in policy.spec.copies or []:
        key = target_key(target, disk.subscription_id)
        try:
            seen = await observer.copies_of(key[0], [target.resource_group], disk_hash(disk.id))
        except CloudError:
            # as the operator does: while a target cannot be read, no source is deleted
            needs.update({s.name: f"copies to {target.region} unreadable" for s in owned})
            continue
        in_target = [c for c in seen if c.resource_group.lower() == key[1] and c.location.lower() == key[2]]
        state = TargetState.from_status(previous.get((target.region, target.resource_group)))
        the_plan = plan_copies(
            policy, disk.id, target, owned, in_target, state, now, limits,
            room=limits.max_parallel_copies, disk_busy=False, default_subscription=disk.subscription_id,
        )  # fmt: skip
        for name in the_plan.protected:
            needs.setdefault(name, f"needed by the copy to {target.region}")
    return needs


# ---- JSON ----------------------------------------------------------------------------------------------------


def _iso(when: datetime | None) -> str | None:
    return None if when is None else naming.format_slot(when)


def _point(snapshot: Snapshot | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    return {"name": snapshot.name, "id": snapshot.id, "time": _iso(snapshot.time_created or naming.slot_of(snapshot))}


def snapshot_json(e: Explanation) -> dict[str, Any]:
    """One snapshot, every field the table shows and the rest a script wants (ARM ID, raw state, reasons)."""
    s = e.snapshot
    return {
        "name": s.name,
        "id": s.id,
        "resourceGroup": s.resource_group,
        "time": _iso(e.time),
        "slot": _iso(e.slot),
        "onDemand": naming.is_on_demand(s),
        "state": str(e.state),
        "provisioningState": s.provisioning_state,
        "completionPercent": s.completion_percent,
        "sizeBytes": s.size_bytes,
        "incremental": s.incremental,
        "restorePoint": e.restore_point,
        "held": e.held,
        "holds": list(e.holds),
        "keptBy": list(e.rules),
        "notes": list(e.notes),
        "deleting": e.deleting,
    }


def policy_json(row: PolicySnapshots) -> dict[str, Any]:
    """One policy's part of `azsnap snapshots --json`."""
    ids = [e.snapshot.id for e in row.snapshots]
    faces = {} if row.published is None else {"volumeSnapshots": row.published.json(ids)}
    return {
        "namespace": row.namespace,
        "name": row.name,
        "disk": row.disk_id,
        "claim": row.claim,
        "diskExists": row.disk_exists,
        "diskSnapshotCount": row.disk_snapshots,
        "problem": row.problem,
        "restorePoints": {
            "count": row.points.count,
            "newest": _point(row.points.newest),
            "oldest": _point(row.points.oldest),
        },
        **faces,
        "snapshots": [{**snapshot_json(e), **face_json(row.published, e.snapshot.id)} for e in row.snapshots],
    }


# ---- the table -----------------------------------------------------------------------------------------------

_COLUMNS: Final = ("NAME", "TIME (UTC)", "SLOT", "STATE", "SIZE", "HELD", "KEPT BY")


def _minute(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M")


def _slot(e: Explanation) -> str:
    if naming.is_on_demand(e.snapshot):
        return "on demand"
    if e.slot is None:
        return "-"
    if e.time is not None and e.time.date() == e.slot.date():
        return e.slot.strftime("%H:%M")
    return _minute(e.slot)


def _size(snapshot: Snapshot) -> str:
    if not snapshot.size_bytes:
        return "-"
    gib = snapshot.size_bytes / _GIB
    return f"{gib:.0f} GiB" if gib >= 1 else f"{snapshot.size_bytes / 1024**2:.0f} MiB"


def _state(e: Explanation) -> str:
    if e.snapshot.completion_percent is not None and e.snapshot.completion_percent < 100:
        return f"{e.state} {e.snapshot.completion_percent:.0f}%"
    return str(e.state)


def _kept_by(e: Explanation) -> str:
    if e.deleting is not None:
        return f"deleted at the next reconcile: {e.deleting}"
    return ", ".join(e.notes)


def _header(row: PolicySnapshots) -> str:
    disk = row.disk_id.rsplit("/", 1)[-1] or "?"
    if row.claim is not None:
        disk = f"{disk} (claim {row.claim})"
    if row.problem is not None:
        return f"{row.key}  disk {disk}: {row.problem}"
    gone = "" if row.disk_exists else " (the disk does not exist)"
    points = row.points
    text = f"{row.key}  disk {disk}{gone}: {len(row.snapshots)} snapshot(s), {points.count} restore point(s)"
    if points.newest is not None and points.oldest is not None:
        text += f" from {_minute(points.oldest.time_created)} to {_minute(points.newest.time_created)}"
    others = row.disk_snapshots - len(row.snapshots)
    if others > 0:
        text += f"; {others} other snapshot(s) of the disk azsnap does not manage for this policy"
    if row.published is not None:
        text += f"; {row.published.summary([e.snapshot.id for e in row.snapshots])}"
    return text


def render_table(rows: Sequence[PolicySnapshots]) -> str:
    """Per policy, a heading and one line per snapshot, newest first."""
    if not rows:
        return "No SnapshotPolicy matched.\n"
    blocks: list[str] = []
    for row in rows:
        lines = [_header(row)]
        table = [
            (e.snapshot.name, _minute(e.time), _slot(e), _state(e), _size(e.snapshot), "yes" if e.held else "no",
             *face_cells(row.published, e.snapshot.id))
            for e in row.snapshots
        ]  # fmt: skip
        columns = (*_COLUMNS[:-1], *(("VOLUMESNAPSHOT", "READY") if row.published is not None else ()))
        if table:
            widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(columns)]
            lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + "  KEPT BY")
            for cells, e in zip(table, row.snapshots, strict=True):
                body = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
                lines.append(f"{body}  {_kept_by(e)}".rstrip())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def render(rows: Sequence[PolicySnapshots], *, as_json: bool) -> str:
    """The command's output: the table, or `{"policies": [...]}` as indented JSON."""
    if as_json:
        return json.dumps({"policies": [policy_json(r) for r in rows]}, indent=2) + "\n"
    return render_table(rows)


# ---- the command ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotsOptions:
    """What `azsnap snapshots` was asked for."""

    policy: str | None = None
    namespace: str | None = None
    all_namespaces: bool = False
    disk: str | None = None
    as_json: bool = False
    kubeconfig: str | None = None
    context: str | None = None


def _settings(environ: Mapping[str, str]) -> Settings:
    """The operator's settings from `AZSNAP_*`; the credential defaults to azure-identity's chain (az login too)."""
    env = dict(environ)
    env.setdefault(f"{ENV_PREFIX}CREDENTIAL", str(CredentialMode.DEFAULT))
    return Settings.from_env(env)


async def _read_azure(
    objects: Sequence[Mapping[str, Any]], settings: Settings, disk: str | None
) -> list[PolicySnapshots]:
    from azsnap.cloud.azure import AzureCloud  # the SDK is imported only where it is used

    cloud = AzureCloud.from_settings(settings)
    try:
        return await gather(objects, cloud, WallClock(), settings.limits, disk=disk)
    finally:
        await cloud.close()


def run_snapshots(
    options: SnapshotsOptions, *, out: TextIO, err: TextIO, environ: Mapping[str, str] = os.environ
) -> int:
    """`azsnap snapshots`: 0 when every policy was read, 1 when one could not be, 2 on bad input or no cluster."""
    if options.policy is not None and options.all_namespaces:
        err.write("azsnap snapshots: a policy is named in one namespace: drop --all-namespaces or the name\n")
        return 2
    if options.disk is not None:
        try:
            parse_disk_id(options.disk)
        except ValueError as exc:
            err.write(f"azsnap snapshots: --disk: {exc}\n")
            return 2
    try:
        settings = _settings(environ)
    except SettingsError as exc:
        err.write(f"azsnap snapshots: {exc}\n")
        return 2
    try:
        cluster = connect(options.kubeconfig, options.context)
        namespace = None if options.all_namespaces else options.namespace or cluster.namespace
        objects = cluster.read_policies(Selection(namespace, options.policy, options.disk))
    except ClusterError as exc:
        err.write(f"azsnap snapshots: {exc}\n")
        return 2
    rows = asyncio.run(_read_azure(objects, settings, options.disk))
    views = read_published(cluster, objects)
    rows = [replace(r, published=views.get(r.key)) if r.problem is None else r for r in rows]
    out.write(render(rows, as_json=options.as_json))
    return 1 if any(r.problem for r in rows) else 0
