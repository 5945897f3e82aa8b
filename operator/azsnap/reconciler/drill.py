"""Restore drills of a policy: make a scratch disk from the newest good snapshot, wait until Azure reports it usable,
record the result and its duration, delete the scratch disk. One step per policy reconcile, level-based: the drill
in progress is kept in `status.restoreDrill`, so a restarted operator picks it up where it was. A policy over
claims drills one claim's disk a round, in turn (`claim_drill.py`); its records name the claim and the disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from azsnap.clock import Clock
from azsnap.cloud.errors import CloudError, TransientError
from azsnap.cloud.interface import CloudClient, DiskRequest
from azsnap.domain import naming
from azsnap.domain.drill import RestoreDrillSpec, drill_due
from azsnap.domain.durations import format_duration
from azsnap.domain.models import Policy
from azsnap.domain.naming import TAG_DRILL, drill_tags, scratch_disk_name
from azsnap.domain.restore import Phase, choose_snapshot, disk_phase
from azsnap.domain.targets import ClaimView
from azsnap.reconciler.claim_drill import claim_drill_targets
from azsnap.reconciler.observe import Observer
from azsnap.reconciler.report import Event, StatusReport
from azsnap.reconciler.restore import RestoreScope

__all__ = ["DrillReport", "Driller"]

#: How soon a drill in progress is looked at again.
DRILL_POLL = timedelta(minutes=1)
#: How soon to look again when there is no good snapshot to drill yet.
NOTHING_YET = timedelta(hours=1)


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _claim_fields(claim: str | None, disk: str) -> dict[str, str]:
    """What a claim policy's drill records say of the disk drilled (nothing for a disk policy's)."""
    return {} if claim is None else {"claim": claim, "disk": disk}


@dataclass(frozen=True)
class DrillReport:
    """One drill step: status fields, events, when to look again, and a finished drill's result and seconds."""

    fields: dict[str, Any] = field(default_factory=dict)
    events: tuple[Event, ...] = ()
    next_time: datetime | None = None
    finished: tuple[str, float] | None = None

    def merged(self, report: StatusReport) -> StatusReport:
        """The policy's report with this step in it."""
        wake = report.next_time if self.next_time is None else min(report.next_time, self.next_time)
        return replace(
            report, status={**report.status, **self.fields}, events=(*report.events, *self.events), next_time=wake
        )


class Driller:
    """Runs the restore drills of policies that ask for one; never touches a disk a drill did not make."""

    def __init__(
        self, cloud: CloudClient, clock: Clock, observer: Observer, *, scope: RestoreScope | None = None
    ) -> None:
        self.cloud = cloud
        self.clock = clock
        self.observer = observer
        self.scope = scope

    async def step(self, policy: Policy, status: Mapping[str, Any], *, claims: ClaimView | None = None) -> DrillReport:
        """One step of the policy's drill (`claims`: the view a policy over claims finds its disks in)."""
        now = self.clock.now()
        spec = policy.spec.restore_drill
        running = status.get("restoreDrill")
        if spec is None:
            return await self._abandon(policy, running) if running else DrillReport()
        if running:
            return await self._follow(policy, spec, dict(running), now)
        due = drill_due(spec, status.get("lastVerifiedRestore"), now)
        if now < due:
            return DrillReport(next_time=due)
        targets: list[tuple[str | None, Policy]] = [(None, policy)]
        if policy.spec.disk is None:
            targets = [*claim_drill_targets(policy, claims, status.get("lastVerifiedRestore"))]
        for claim, target in targets:
            report = await self._start(target, spec, now, claim)
            if report is not None:
                return report  # this disk is drilled (or its drill could not start)
        return DrillReport(next_time=now + NOTHING_YET)  # no disk has a usable snapshot yet

    async def _start(
        self, policy: Policy, spec: RestoreDrillSpec, now: datetime, claim: str | None
    ) -> DrillReport | None:
        """Start the drill of the policy's disk; None when the disk has no usable snapshot to restore yet."""
        assert policy.spec.disk is not None  # a claim policy's drill runs as the policy of the claim's disk
        disk = policy.spec.disk
        coords = disk.coordinates
        snapshot_rg = policy.spec.snapshot.resource_group or coords.resource_group
        groups = {coords.resource_group, snapshot_rg}
        if self.scope is not None and spec.resource_group is not None:
            # Scratch disks in the policy's own snapshot group need no more than the policy; another group is checked
            # as a restore's target is, before any Azure call.
            refusal = self.scope.check_restore(
                policy.ref.namespace, coords.subscription_id, spec.resource_group, snapshot_rg
            )
            if refusal is not None:
                record = {"snapshot": "", "startedTime": _iso(now), **_claim_fields(claim, coords.name)}
                return self._finish(
                    record, now, "Failed", f"spec.restoreDrill.resourceGroup is out of scope: {refusal}"
                )
        try:
            observed = await self.observer.of_disk(disk.stand_in(location="", unique_id=""), groups)
        except CloudError:
            return DrillReport(next_time=now + DRILL_POLL)
        snapshot = choose_snapshot(observed, policy.ref, disk.id, None)
        if snapshot is None:
            return None
        name = scratch_disk_name(coords.name, policy.ref.uid, now)
        group = spec.resource_group or snapshot.resource_group
        running = {
            "diskId": DiskRequest(coords.subscription_id, group, name, "", "", "", {}).disk_id,
            "location": snapshot.location,
            "snapshotId": snapshot.id,
            "snapshot": snapshot.name,
            "startedTime": _iso(now),
            **_claim_fields(claim, coords.name),
        }
        return await self._follow(policy, spec, running, now)

    def _request(self, policy: Policy, spec: RestoreDrillSpec, running: Mapping[str, Any]) -> DiskRequest:
        parts = str(running["diskId"]).split("/")
        return DiskRequest(
            subscription_id=parts[2],
            resource_group=parts[4],
            name=parts[8],
            location=str(running["location"]),
            source_snapshot_id=str(running["snapshotId"]),
            sku=str(spec.sku),
            tags=drill_tags(policy.ref.uid, f"{policy.ref.namespace}/{policy.ref.name}", str(running["snapshot"])),
        )

    async def _follow(
        self, policy: Policy, spec: RestoreDrillSpec, running: dict[str, Any], now: datetime
    ) -> DrillReport:
        started = _time(running["startedTime"])
        late = now - started > spec.timeout
        try:
            disk = await self.cloud.get_disk(str(running["diskId"]))
            if disk is not None and naming.tag(disk.tags, TAG_DRILL) != policy.ref.uid:
                return self._finish(
                    running,
                    now,
                    "Failed",
                    f"a disk named {disk.name} exists that no drill of this "
                    "policy made; the drill left it alone. Set spec.restoreDrill.resourceGroup elsewhere.",
                )
            if disk is None:
                if running.get("created"):
                    return self._finish(running, now, "Failed", "the scratch disk disappeared before it was usable")
                if late:
                    return self._finish(
                        running, now, "Failed", f"no scratch disk within {format_duration(spec.timeout)}"
                    )
                disk = await self.cloud.create_disk(self._request(policy, spec, running))
                running["created"] = True
            phase = disk_phase(disk)
            if phase is Phase.READY:
                running.setdefault("usableTime", _iso(now))  # the drill's duration ends here, not at the delete
            if phase is Phase.READY or phase is Phase.FAILED or late:
                await self.cloud.delete_disk(disk.id)
        except TransientError:
            return DrillReport(fields={"restoreDrill": running}, next_time=now + DRILL_POLL)
        except CloudError as exc:
            left = f" The scratch disk {running['diskId']} may remain: delete it." if running.get("created") else ""
            return self._finish(running, now, "Failed", f"Azure refused ({exc.code}): {exc.message}{left}")
        if phase is Phase.READY:
            return self._finish(running, now, "Succeeded", f"disk {disk.name} was usable; it is deleted again")
        if phase is Phase.FAILED:
            return self._finish(running, now, "Failed", f"Azure reports the scratch disk {disk.provisioning_state}")
        if late:
            percent = f" ({disk.completion_percent:g}% hydrated)" if disk.completion_percent is not None else ""
            return self._finish(
                running,
                now,
                "Failed",
                f"the scratch disk was not usable within {format_duration(spec.timeout)}{percent}",
            )
        return DrillReport(fields={"restoreDrill": running}, next_time=now + DRILL_POLL)

    def _finish(self, running: Mapping[str, Any], now: datetime, result: str, message: str) -> DrillReport:
        started = _time(running["startedTime"])
        ended = _time(running["usableTime"]) if running.get("usableTime") else now
        seconds = (ended - started).total_seconds()
        record = {
            "result": result,
            "snapshot": running["snapshot"],
            "startedTime": running["startedTime"],
            "finishedTime": _iso(now),
            "durationSeconds": int(seconds),
            "message": message,
            **{key: running[key] for key in ("claim", "disk") if running.get(key)},
        }
        of = f" (claim {running['claim']}, disk {running.get('disk')})" if running.get("claim") else ""
        text = f"Restore drill of snapshot {running['snapshot']}{of} {result.lower()} in {int(seconds)}s: {message}."
        event = (
            Event("Normal", "RestoreVerified", text)
            if result == "Succeeded"
            else Event("Warning", "RestoreDrillFailed", text)
        )
        return DrillReport(
            fields={"restoreDrill": None, "lastVerifiedRestore": record}, events=(event,), finished=(result, seconds)
        )

    async def _abandon(self, policy: Policy, running: Mapping[str, Any]) -> DrillReport:
        """The drill was turned off mid-way: delete its scratch disk (if the drill made it) and forget it."""
        try:
            disk = await self.cloud.get_disk(str(running["diskId"]))
            if disk is not None and naming.tag(disk.tags, TAG_DRILL) == policy.ref.uid:
                await self.cloud.delete_disk(disk.id)
        except CloudError:
            return DrillReport(next_time=self.clock.now() + DRILL_POLL)
        return DrillReport(fields={"restoreDrill": None})
