"""Prometheus metrics of the operator, kept in one registry per `Metrics` and served over HTTP on the operator's loop."""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.exposition import choose_encoder

from azsnap import __version__
from azsnap.cloud.accounting import RequestStats

__all__ = ["RECONCILE_BUCKETS", "Metrics", "MetricsServer", "SnapshotEventKind"]

SnapshotEventKind = Literal["created", "deleted", "failed"]

#: Reconcile rounds range from a cached no-op (milliseconds) to a create waiting on Azure (up to the LRO deadline).
RECONCILE_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: A restore drill lasts from a minute (a Standard disk) to hours (a large Premium SSD v2 or Ultra disk hydrating).
DRILL_BUCKETS: Final = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0)

_POLICY_LABELS: Final = ("namespace", "policy")
_NAMESPACE_LABELS: Final = ("namespace",)

# The `_created` sample of every counter would double the per-policy series; nothing azsnap ships queries it.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


@dataclass(frozen=True)
class _PolicyRow:
    """What a policy adds to its namespace's aggregates (kept so an update or deletion can take it back)."""

    stalled: bool = False
    suspended: bool = False
    held: int = 0


class Metrics:
    """Every metric azsnap exports; each instance owns its registry, so tests and processes never share state.

    Per policy only what the alerts need (Ready, the newest good snapshot's time and the age allowed, missed slots):
    four series. The rest is per namespace, so a replica serving 10,000 policies is not 80,000 series.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Info("azsnap_build", "Version of the running operator.", registry=r).info({"version": __version__})
        ns = _NAMESPACE_LABELS
        self._created = Counter("azsnap_snapshots_created", "Snapshots created, by namespace.", ns, registry=r)
        self._deleted = Counter(
            "azsnap_snapshots_deleted",
            "Snapshots deleted by retention or policy deletion, by namespace.",
            ns,
            registry=r,
        )
        self._failed = Counter(
            "azsnap_snapshots_failed",
            "Snapshots that failed, by namespace: creates Azure refused, and each of a policy's snapshots the first "
            "time azsnap sees it Failed (whoever's call made it).",
            ns,
            registry=r,
        )
        self._policies = Gauge("azsnap_policies", "SnapshotPolicies azsnap reconciled, by namespace.", ns, registry=r)
        self._stalled = Gauge(
            "azsnap_policies_stalled",
            "SnapshotPolicies whose Stalled condition is True (a person must act, or backups are overdue), "
            "by namespace.",
            ns,
            registry=r,
        )
        self._suspended = Gauge(
            "azsnap_policies_suspended", "SnapshotPolicies with spec.suspend true, by namespace.", ns, registry=r
        )
        self._held = Gauge("azsnap_snapshots_held", "Snapshots the namespace's policies currently own.", ns, registry=r)
        self._last_success = Gauge(
            "azsnap_policy_last_success_timestamp_seconds",
            "Unix time of the policy's newest snapshot that reached Succeeded; before the first one, the policy's "
            "creation time (so staleness alerts fire for a policy that never succeeded).",
            _POLICY_LABELS,
            registry=r,
        )
        self._stale_after = Gauge(
            "azsnap_policy_stale_after_seconds",
            "Age past which the policy's newest good snapshot is overdue: the schedule's longest gap, the disk's "
            "jitter offset and startingDeadline (absent while suspended).",
            _POLICY_LABELS,
            registry=r,
        )
        self._ready = Gauge(
            "azsnap_policy_ready",
            "1 when the policy's Ready condition is True, 0 otherwise.",
            _POLICY_LABELS,
            registry=r,
        )
        self._missed = Counter(
            "azsnap_policy_missed_slots",
            "Scheduled slots counted missed (not taken within startingDeadline), by policy.",
            _POLICY_LABELS,
            registry=r,
        )
        self._reconcile = Histogram(
            "azsnap_reconcile_duration_seconds",
            "Time one reconcile round took, by outcome.",
            ("outcome",),
            buckets=RECONCILE_BUCKETS,
            registry=r,
        )
        self._azure_calls = Counter(
            "azsnap_azure_calls",
            "Azure Resource Manager calls, by operation and outcome.",
            ("operation", "outcome"),
            registry=r,
        )
        self._throttled = Counter(
            "azsnap_azure_throttled",
            "Azure calls answered with 429 Too Many Requests, by operation.",
            ("operation",),
            registry=r,
        )
        self._remaining = Gauge(
            "azsnap_azure_ratelimit_remaining",
            "Remaining request budget Azure reported for a throttling policy (x-ms-ratelimit-remaining-*).",
            ("throttle_policy",),
            registry=r,
        )
        # Copies (spec.copies): per policy and target region, only for policies that copy.
        copy = (*_POLICY_LABELS, "region")
        self._copy_newest = Gauge(
            "azsnap_copy_newest_restore_point_timestamp_seconds",
            "Unix time of the newest restore point (slot) with a completed copy in the target region.",
            copy,
            registry=r,
        )
        self._copy_lag = Gauge(
            "azsnap_copy_lag_seconds",
            "Copy lag (a snapshot's slot to its copy seen complete) over the last copies: quantile 0.5 and 1 (max).",
            (*copy, "quantile"),
            registry=r,
        )
        self._copy_running = Gauge(
            "azsnap_copies_running", "Copies of the policy running to the region.", copy, registry=r
        )
        self._copy_missed = Gauge(
            "azsnap_copies_missed",
            "Snapshots whose copy to the region was missed (status copiesMissed).",
            copy,
            registry=r,
        )
        self._copy_regions: dict[tuple[str, str], set[str]] = {}
        self._drills = Counter(
            "azsnap_restore_drills",
            "Restore drills finished, by namespace and result (Succeeded, Failed).",
            (*ns, "result"),
            registry=r,
        )
        self._drill_duration = Histogram(
            "azsnap_restore_drill_duration_seconds",
            "Time from a restore drill's start until its scratch disk was usable (or the drill failed).",
            buckets=DRILL_BUCKETS,
            registry=r,
        )
        self._last_verified = Gauge(
            "azsnap_policy_last_verified_restore_timestamp_seconds",
            "Unix time the policy's newest restore drill that succeeded ended (policies with spec.restoreDrill).",
            _POLICY_LABELS,
            registry=r,
        )
        self._seen_calls: collections.Counter[tuple[str, str]] = collections.Counter()
        self._seen_throttled: collections.Counter[str] = collections.Counter()
        self._per_policy: Final = (
            self._last_success,
            self._stale_after,
            self._ready,
            self._missed,
            self._last_verified,
        )
        self._rows: dict[tuple[str, str], _PolicyRow] = {}
        self._failed_seen: dict[tuple[str, str], set[str]] = {}

    def snapshot_event(self, namespace: str, name: str, kind: SnapshotEventKind) -> None:
        """Count a snapshot of policy `name` created, deleted or failed (in its namespace's series)."""
        counter = {"created": self._created, "deleted": self._deleted, "failed": self._failed}[kind]
        counter.labels(namespace).inc()

    def failed_seen(self, namespace: str, name: str, failed: Iterable[str], counted: Iterable[str] = ()) -> int:
        """Count each of the policy's Failed snapshots once, the first time it is seen; `counted` were counted already
        (a create that ended Failed). Returns how many were new. A restart sees them afresh, as counters restart."""
        seen = self._failed_seen.setdefault((namespace, name), set())
        seen.update(counted)
        new = [n for n in failed if n not in seen]
        seen.update(new)
        if new:
            self._failed.labels(namespace).inc(len(new))
        return len(new)

    def slots_missed(self, namespace: str, name: str, count: int) -> None:
        """Add slots a reconcile counted missed (the series exists, at 0, from the policy's first reconcile)."""
        self._missed.labels(namespace, name).inc(max(count, 0))

    def policy_state(
        self,
        namespace: str,
        name: str,
        *,
        held: int,
        last_success: float | None,
        ready: bool,
        stalled: bool = False,
        suspended: bool = False,
        stale_after: float | None = None,
    ) -> None:
        """Record a policy's state after a reconcile; `None` values remove the series rather than report a fake 0."""
        self._ready.labels(namespace, name).set(float(ready))
        for gauge, value in ((self._last_success, last_success), (self._stale_after, stale_after)):
            if value is None:
                gauge.remove(namespace, name)
            else:
                gauge.labels(namespace, name).set(value)
        self._missed.labels(namespace, name)  # present at 0 before the first miss, so increase() sees the first one
        self._account(namespace, name, _PolicyRow(stalled=stalled, suspended=suspended, held=held))

    def _account(self, namespace: str, name: str, row: _PolicyRow | None) -> None:
        """Move the namespace aggregates from the policy's previous row to `row` (None: the policy is gone)."""
        old = self._rows.pop((namespace, name), None)
        if old is None and row is None:
            return
        before, after = old or _PolicyRow(), row or _PolicyRow()
        if row is not None:
            self._rows[(namespace, name)] = row
        self._policies.labels(namespace).inc((row is not None) - (old is not None))
        self._stalled.labels(namespace).inc(after.stalled - before.stalled)
        self._suspended.labels(namespace).inc(after.suspended - before.suspended)
        self._held.labels(namespace).inc(after.held - before.held)

    def copy_state(self, namespace: str, name: str, targets: Iterable[Mapping[str, Any]]) -> None:
        """The policy's copy targets as `status.copies` has them; a target no longer there loses its series."""
        regions = set()
        for t in targets:
            region = str(t.get("region") or "")
            regions.add(region)
            labels = (namespace, name, region)
            self._copy_running.labels(*labels).set(float(t.get("copiesRunning") or 0))
            self._copy_missed.labels(*labels).set(float(t.get("copiesMissed") or 0))
            newest = t.get("newestCopiedSlot")
            if isinstance(newest, str):
                self._copy_newest.labels(*labels).set(datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp())
            for quantile, key in (("0.5", "lagP50Seconds"), ("1", "lagMaxSeconds")):
                if t.get(key) is not None:
                    self._copy_lag.labels(*labels, quantile).set(float(t[key]))
        for region in self._copy_regions.get((namespace, name), set()) - regions:
            self._forget_copies(namespace, name, region)
        self._copy_regions[(namespace, name)] = regions

    def _forget_copies(self, namespace: str, name: str, region: str) -> None:
        for gauge in (self._copy_newest, self._copy_running, self._copy_missed):
            gauge.remove(namespace, name, region)  # absent series: nothing to do
        for quantile in ("0.5", "1"):
            self._copy_lag.remove(namespace, name, region, quantile)

    def restore_drill(self, namespace: str, name: str, result: str, seconds: float, finished: float) -> None:
        """A restore drill of the policy finished (`finished`: its Unix end time)."""
        self._drills.labels(namespace, result).inc()
        self._drill_duration.observe(seconds)
        if result == "Succeeded":
            self._last_verified.labels(namespace, name).set(finished)

    def forget_policy(self, namespace: str, name: str) -> None:
        """Drop every series of a deleted policy and take it out of its namespace's aggregates."""
        for region in self._copy_regions.pop((namespace, name), set()):
            self._forget_copies(namespace, name, region)
        for metric in self._per_policy:
            metric.remove(namespace, name)
        self._account(namespace, name, None)
        self._failed_seen.pop((namespace, name), None)

    def metric_names(self) -> frozenset[str]:
        """Every sample name the Prometheus text format exposes (counters with `_total`, histograms `_bucket`...)."""
        names: set[str] = set()
        for family in self.registry.collect():
            kind = family.type
            suffixes = {
                "counter": ("_total",),
                "histogram": ("_bucket", "_sum", "_count"),
                "info": ("_info",),
                "gauge": ("",),
            }.get(kind, ("",))
            names.update(family.name + suffix for suffix in suffixes)
        return frozenset(names)

    def reconcile_duration(self, seconds: float, outcome: str) -> None:
        self._reconcile.labels(outcome).observe(seconds)

    def azure_call(self, operation: str, outcome: str) -> None:
        self._azure_calls.labels(operation, outcome).inc()

    def throttled(self, operation: str) -> None:
        self._throttled.labels(operation).inc()

    def rate_limit_remaining(self, policy_name: str, remaining: float) -> None:
        self._remaining.labels(policy_name).set(remaining)

    def sync_azure(self, stats: RequestStats) -> None:
        """Bring the Azure call counters up to the adapter's own accounting (adds only what is new since last time)."""
        for (operation, outcome), total in list(stats.calls.items()):
            delta = total - self._seen_calls[(operation, outcome)]
            if delta > 0:
                self._azure_calls.labels(operation, outcome).inc(delta)
                self._seen_calls[(operation, outcome)] = total
        for operation, total in list(stats.throttled_responses.items()):
            delta = total - self._seen_throttled[operation]
            if delta > 0:
                self._throttled.labels(operation).inc(delta)
                self._seen_throttled[operation] = total
        for policy_name, remaining in list(stats.remaining_resource.items()):
            self.rate_limit_remaining(policy_name, remaining)
        for kind, remaining in list(stats.remaining_subscription.items()):
            self.rate_limit_remaining(f"subscription-{kind}", remaining)

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format the `Accept` header asks for (Prometheus text or OpenMetrics), and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    async def start_server(self, port: int, host: str = "0.0.0.0") -> MetricsServer:
        """Serve `GET /metrics` on the running event loop; port 0 picks a free port (see `MetricsServer.port`)."""
        app = web.Application()
        app.router.add_get("/metrics", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        # All interfaces by default: Prometheus scrapes the pod IP. The bound port matters when 0 was asked.
        bound = int(runner.addresses[0][1]) if runner.addresses else port
        return MetricsServer(runner, bound)

    async def _handle(self, request: web.Request) -> web.Response:
        body, content_type = self.exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})


class MetricsServer:
    """A running metrics endpoint; `await close()` stops it."""

    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def close(self) -> None:
        await self._runner.cleanup()
