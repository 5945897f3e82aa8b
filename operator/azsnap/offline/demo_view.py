"""What `azsnap demo` shows: a live table and event log on a terminal, periodic plain lines elsewhere, the summary."""

from __future__ import annotations

import contextlib
import json
import sys
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from azsnap.offline.demo_restore import RestoreResult
from azsnap.tools.snapshots import PolicySnapshots, policy_json

__all__ = [
    "DemoEvent",
    "DemoSummary",
    "DemoView",
    "Frame",
    "JsonView",
    "LiveView",
    "PlainView",
    "PolicyResult",
    "PolicyRow",
    "demo_event",
    "make_view",
    "policy_key",
    "policy_row",
    "summary_table",
]

#: Events kept on screen under the live table.
LOG_LINES: Final = 12
#: The plain (non-terminal) output prints the table every this many emulated hours.
PLAIN_EVERY_HOURS: Final = 12
_WIDTH: Final = 132
#: Normal events the plain output prints as they come, as it does warnings: a drill proved, a restore made.
SHOWN_EVENTS: Final = frozenset({"RestoreVerified", "Restored"})


@dataclass(frozen=True)
class PolicyRow:
    """One line of the live table, read from the policy's status as `kubectl get snappol` would."""

    policy: str
    disk: str
    ready: str
    last: datetime | None
    next: datetime | None
    count: int | None
    cap: int | None
    missed: int


@dataclass(frozen=True)
class DemoEvent:
    """A Kubernetes Event on a policy, as the log shows it."""

    time: datetime | None
    type: str
    reason: str
    policy: str
    message: str


@dataclass(frozen=True)
class PolicyResult:
    """What one policy did over the run."""

    held: int
    created: int
    deleted: int
    missed: int


@dataclass
class DemoSummary:
    """The end of the run: per policy, Azure traffic, and every invariant that broke."""

    hours: float
    policies: dict[str, PolicyResult]
    azure_calls: dict[str, int]
    throttled: int
    violations: list[str]
    rows: list[PolicyRow] = field(default_factory=list)
    ended_at: datetime | None = None
    elapsed_hours: float = 0.0
    real_seconds: float = 0.0
    interrupted: bool = False
    #: `azsnap snapshots` for every policy at the end, when asked for (`--snapshots`).
    snapshots: list[PolicySnapshots] = field(default_factory=list)
    #: Each drilled policy's last restore drill, and every SnapshotRestore, at the end.
    drills: list[RestoreResult] = field(default_factory=list)
    restores: list[RestoreResult] = field(default_factory=list)
    #: Per publishing claim policy, its VolumeSnapshots at the end and how many are ready.
    volume_snapshots: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        return {
            "policies": {
                key: {"held": r.held, "created": r.created, "deleted": r.deleted, "missed": r.missed}
                for key, r in self.policies.items()
            },
            "totals": {
                "azure_calls": sum(self.azure_calls.values()),
                "throttled": self.throttled,
                "invariant_violations": len(self.violations),
                "azure_calls_by_operation": dict(sorted(self.azure_calls.items())),
            },
            "drills": {r.name: {"result": r.ready, "message": r.message} for r in self.drills},
            "restores": {r.name: {"ready": r.ready, "message": r.message} for r in self.restores},
            "volumeSnapshots": self.volume_snapshots,
            "hours": int(self.hours) if float(self.hours).is_integer() else self.hours,
        } | ({"snapshots": [policy_json(r) for r in self.snapshots]} if self.snapshots else {})


@dataclass(frozen=True)
class Frame:
    """What the screen shows at one moment of the run."""

    now: datetime
    elapsed_hours: float
    hours: float
    rows: list[PolicyRow]
    azure_calls: int
    throttled: int
    events: list[DemoEvent]


class DemoView:
    """Where the demo reports progress; the base class shows nothing (the `--json` mode)."""

    #: Real seconds between two frames (None: only when `wants_frame` says so).
    refresh_seconds: float | None = None

    def wants_frame(self, elapsed_hours: float) -> bool:
        return False

    def frame(self, frame: Frame) -> None:
        """Show the state of the run."""

    def log(self, line: str) -> None:
        """Show a warning logged by the operator or a library."""

    def finish(self, summary: DemoSummary) -> None:
        """Show the summary."""

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        yield


def policy_key(obj: Mapping[str, Any]) -> str:
    """`namespace/name` of an object."""
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def policy_row(obj: Mapping[str, Any]) -> PolicyRow:
    """The table line of one SnapshotPolicy object."""
    status = obj.get("status") or {}
    ready = next((c.get("status", "") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "")
    reason = next((c.get("reason", "") for c in status.get("conditions") or [] if c.get("type") == "Ready"), "")
    disk = status.get("diskName") or str((obj.get("spec") or {}).get("disk", {}).get("id", "")).rsplit("/", 1)[-1]
    many = not disk and bool(status.get("disksReady"))
    if many:  # a policy over claims: how many of its disks are ready; the cap is per disk, so not beside the sum
        disk = f"{status['disksReady']} disks"
    return PolicyRow(
        policy=policy_key(obj),
        disk=disk,
        ready=f"{ready} ({reason})" if ready and ready != "True" and reason else ready or "-",
        last=_time((status.get("lastSnapshot") or {}).get("createdTime")),
        next=_time(status.get("nextSnapshotTime")),
        count=status.get("snapshotCount"),
        cap=None if many else status.get("diskSnapshotLimit"),
        missed=int(status.get("missedSlots") or 0),
    )


def demo_event(obj: Mapping[str, Any]) -> DemoEvent:
    """A Kubernetes Event, with the time the (emulated) API server stored it."""
    involved = obj.get("involvedObject") or {}
    return DemoEvent(
        time=_time((obj.get("metadata") or {}).get("creationTimestamp")),
        type=str(obj.get("type") or "Normal"),
        reason=str(obj.get("reason") or ""),
        policy=f"{involved.get('namespace') or 'default'}/{involved.get('name')}",
        message=str(obj.get("message") or ""),
    )


# ---- rendering -----------------------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return value.strftime("%m-%d %H:%M") if value else "-"


def _header(frame: Frame, speed: float) -> Text:
    pace = "as fast as possible" if speed <= 0 else f"{speed:g} emulated h/s"
    return Text(
        f"azsnap demo · {frame.now:%a %Y-%m-%d %H:%M} UTC · {frame.elapsed_hours:.1f} of {frame.hours:g} h · {pace}\n"
        f"Azure calls {frame.azure_calls} · throttled {frame.throttled}",
        style="bold",
    )


def _name(policy: str) -> str:
    # As `kubectl get` in the default namespace: the namespace only where it is not the default one.
    return policy.removeprefix("default/")


def policy_table(rows: list[PolicyRow]) -> Table:
    """The policies as `kubectl get snappol` would list them, with the counts the demo watches."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("POLICY", "DISK", "READY", "LAST SNAPSHOT", "NEXT SNAPSHOT", "COUNT/CAP", "MISSED"):
        table.add_column(column, no_wrap=True, justify="right" if column in ("COUNT/CAP", "MISSED") else "left")
    for row in rows:
        ready = Text(row.ready, style="green" if row.ready == "True" else "yellow")
        count = f"{row.count if row.count is not None else '-'}/{row.cap if row.cap is not None else '-'}"
        table.add_row(_name(row.policy), row.disk, ready, _when(row.last), _when(row.next), count, str(row.missed))
    return table


def _event_line(event: DemoEvent) -> Text:
    style = "yellow" if event.type == "Warning" else ""
    line = f"{_when(event.time)}  {event.reason:<16} {_name(event.policy):<16} {event.message}"
    return Text(line, style=style, no_wrap=True, overflow="ellipsis")


def summary_table(summary: DemoSummary) -> RenderableType:
    """Per policy and in total: what the run did, what Azure saw, and whether every invariant held."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("POLICY", "HELD", "CREATED", "DELETED", "MISSED"):
        table.add_column(column, justify="left" if column == "POLICY" else "right")
    for key, result in summary.policies.items():
        table.add_row(_name(key), str(result.held), str(result.created), str(result.deleted), str(result.missed))
    calls = ", ".join(f"{op} {n}" for op, n in sorted(summary.azure_calls.items())) or "none"
    lines: list[RenderableType] = [
        Text("Summary", style="bold"),
        table,
        Text(""),
        Text(f"Azure calls: {sum(summary.azure_calls.values())} ({calls})"),
        Text(f"Throttled (429): {summary.throttled}"),
    ]
    lines.extend(Text(f"Restore drill of {_name(d.name)}: {d.ready} ({d.message})") for d in summary.drills)
    lines.extend(Text(f"SnapshotRestore {_name(r.name)}: Ready {r.ready}, {r.message}") for r in summary.restores)
    lines.extend(Text(line) for line in summary.volume_snapshots)
    if summary.violations:
        lines.append(Text(f"Invariants: {len(summary.violations)} broken", style="bold red"))
        lines.extend(Text(f"  - {v}", style="red") for v in summary.violations)
    else:
        lines.append(
            Text(
                "Invariants: all held (no duplicate slot, no unowned snapshot deleted, no disk deleted, "
                "no limit exceeded)",
                "green",
            )
        )
    ran = f"{summary.elapsed_hours:.1f} of {summary.hours:g}" if summary.interrupted else f"{summary.hours:g}"
    stop = "Interrupted after" if summary.interrupted else "Done:"
    ended = f"{summary.ended_at:%Y-%m-%d %H:%M} UTC" if summary.ended_at else "-"
    lines.append(Text(f"{stop} {ran} emulated hours (to {ended}) in {summary.real_seconds:.0f} s of real time"))
    return Group(*lines)


class LiveView(DemoView):
    """A terminal: the table and the latest events redrawn in place a few times a second."""

    refresh_seconds = 0.2

    def __init__(self, out: TextIO, speed: float) -> None:
        self.console = Console(file=out)
        self.speed = speed
        self.events: deque[Text] = deque(maxlen=LOG_LINES)
        self._live: Live | None = None
        self._last: Frame | None = None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        with Live(console=self.console, auto_refresh=False, transient=False, redirect_stderr=False) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None

    def frame(self, frame: Frame) -> None:
        self._last = frame
        self.events.extend(_event_line(e) for e in frame.events)
        self._draw()

    def log(self, line: str) -> None:
        self.events.append(Text(line, style="dim"))

    def _draw(self) -> None:
        if self._live is None or self._last is None:
            return
        log = list(self.events) or [Text("(no events yet)", style="dim")]
        screen = Group(
            _header(self._last, self.speed),
            Text(""),
            policy_table(self._last.rows),
            Text(""),
            Text("Events", style="bold"),
            *log,
        )
        self._live.update(screen, refresh=True)

    def finish(self, summary: DemoSummary) -> None:
        self.console.print()
        self.console.print(summary_table(summary))


class PlainView(DemoView):
    """Not a terminal (CI, a pipe): a progress line and the table every few emulated hours, warnings as they come."""

    def __init__(self, out: TextIO, speed: float, err: TextIO | None = None) -> None:
        self.console = Console(file=out, width=_WIDTH, no_color=True, highlight=False)
        self.err = err or sys.stderr
        self.speed = speed
        self._hour = -1
        self._created = self._deleted = self._warnings = 0

    def wants_frame(self, elapsed_hours: float) -> bool:
        return int(elapsed_hours) != self._hour

    def frame(self, frame: Frame) -> None:
        self._hour = int(frame.elapsed_hours)
        for event in frame.events:
            self._created += event.reason == "SnapshotCreated"
            self._deleted += event.reason == "SnapshotDeleted"
            if event.type == "Warning":
                self._warnings += 1
            if event.type == "Warning" or event.reason in SHOWN_EVENTS:
                self.console.print(_event_line(event), soft_wrap=True)  # a whole line, however long, as a log has
        if self._hour % PLAIN_EVERY_HOURS == 0 or frame.elapsed_hours >= frame.hours:
            self.console.print(
                f"[{frame.now:%Y-%m-%d %H:%M} UTC, {frame.elapsed_hours:.0f} of {frame.hours:g} h] "
                f"created {self._created}, deleted {self._deleted}, warnings {self._warnings}, "
                f"Azure calls {frame.azure_calls}, throttled {frame.throttled}"
            )
            self.console.print(policy_table(frame.rows))
            self.console.print()

    def log(self, line: str) -> None:
        self.err.write(line + "\n")

    def finish(self, summary: DemoSummary) -> None:
        self.console.print(summary_table(summary))


class JsonView(DemoView):
    """`--json`: nothing while running (warnings to stderr), the summary as one line of JSON at the end."""

    def __init__(self, out: TextIO, err: TextIO | None = None) -> None:
        self.out = out
        self.err = err or sys.stderr

    def log(self, line: str) -> None:
        self.err.write(line + "\n")

    def finish(self, summary: DemoSummary) -> None:
        self.out.write(json.dumps(summary.to_json(), separators=(",", ":")) + "\n")
        self.out.flush()


def make_view(out: TextIO, *, speed: float, as_json: bool) -> LiveView | PlainView | JsonView:
    """The view for this output: JSON when asked, live on a terminal, plain lines otherwise."""
    if as_json:
        return JsonView(out)
    if out.isatty():
        return LiveView(out, speed)
    return PlainView(out, speed)
