from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from azsnap import __version__
from azsnap.metrics import Metrics, MetricsServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def pol(ns: str = "prod", name: str = "db") -> tuple[tuple[str, str], ...]:
    return (("namespace", ns), ("policy", name))


def nsl(ns: str = "prod") -> tuple[tuple[str, str], ...]:
    return (("namespace", ns),)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Metrics, MetricsServer]]:
    metrics = Metrics()
    server = await metrics.start_server(0, host="127.0.0.1")
    try:
        yield metrics, server
    finally:
        await server.close()


async def scrape(server: MetricsServer, accept: str | None = None) -> tuple[str, str]:
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}/metrics", headers=headers) as resp,
    ):
        assert resp.status == 200
        return await resp.text(), resp.headers["Content-Type"]


async def test_server_binds_a_real_port_and_serves_prometheus_text(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    assert server.port > 0
    metrics.snapshot_event("prod", "db", "created")
    text, content_type = await scrape(server)
    assert content_type.startswith("text/plain")
    got = samples(text)
    assert got[("azsnap_snapshots_created_total", nsl())] == 1
    assert got[("azsnap_build_info", (("version", __version__),))] == 1


async def test_snapshot_events_count_per_namespace_and_kind(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    for _ in range(3):
        metrics.snapshot_event("prod", "db", "created")
    metrics.snapshot_event("prod", "db", "deleted")
    metrics.snapshot_event("prod", "web", "failed")
    metrics.snapshot_event("dev", "db", "failed")
    metrics.snapshot_event("dev", "db", "failed")
    got = samples((await scrape(server))[0])
    assert got[("azsnap_snapshots_created_total", nsl())] == 3
    assert got[("azsnap_snapshots_deleted_total", nsl())] == 1
    assert got[("azsnap_snapshots_failed_total", nsl("prod"))] == 1
    assert got[("azsnap_snapshots_failed_total", nsl("dev"))] == 2
    assert ("azsnap_snapshots_created_total", nsl("dev")) not in got
    assert not [key for key in got if dict(key[1]).get("policy")], "no per-policy series for snapshot events"


async def test_policy_state_gauges_and_namespace_aggregates(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    metrics.policy_state("prod", "db", held=12, last_success=1_899_996_400.0, ready=True, stale_after=7200.0)
    metrics.policy_state("prod", "web", held=3, last_success=None, ready=False, stalled=True)
    metrics.policy_state("dev", "db", held=1, last_success=5.0, ready=True, suspended=True)
    got = samples((await scrape(server))[0])
    assert got[("azsnap_policy_last_success_timestamp_seconds", pol())] == 1_899_996_400.0
    assert ("azsnap_policy_last_success_timestamp_seconds", pol("prod", "web")) not in got, "absent, not a fake 0"
    assert got[("azsnap_policies", nsl())] == 2
    assert got[("azsnap_snapshots_held", nsl())] == 15
    assert got[("azsnap_policies_stalled", nsl())] == 1
    assert got[("azsnap_policies_suspended", nsl())] == 0
    assert (got[("azsnap_policies_suspended", nsl("dev"))], got[("azsnap_policies", nsl("dev"))]) == (1, 1)

    # An update moves the aggregates; it does not add to them.
    metrics.policy_state("prod", "web", held=4, last_success=9.0, ready=True)
    got = samples((await scrape(server))[0])
    assert (got[("azsnap_policies", nsl())], got[("azsnap_snapshots_held", nsl())]) == (2, 16)
    assert got[("azsnap_policies_stalled", nsl())] == 0
    assert got[("azsnap_policy_last_success_timestamp_seconds", pol("prod", "web"))] == 9.0


async def test_four_series_per_policy(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    metrics.policy_state("prod", "db", held=1, last_success=1.0, ready=True, stale_after=7200.0)
    metrics.slots_missed("prod", "db", 0)
    metrics.snapshot_event("prod", "db", "created")
    one = samples((await scrape(server))[0])
    for i in range(10):
        metrics.policy_state("prod", f"p{i}", held=1, last_success=1.0, ready=True, stale_after=7200.0)
        metrics.snapshot_event("prod", f"p{i}", "created")
    eleven = samples((await scrape(server))[0])
    assert len(eleven) - len(one) == 10 * 4
    assert {name for name, labels in one if ("policy", "db") in labels} == {
        "azsnap_policy_ready",
        "azsnap_policy_last_success_timestamp_seconds",
        "azsnap_policy_stale_after_seconds",
        "azsnap_policy_missed_slots_total",
    }


async def test_forget_policy_drops_all_its_series_and_keeps_others(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    for name in ("db", "web"):
        metrics.snapshot_event("prod", name, "created")
        metrics.policy_state("prod", name, held=2, last_success=1.0, ready=False, stalled=True, stale_after=7200.0)
        metrics.slots_missed("prod", name, 1)
    metrics.forget_policy("prod", "db")
    metrics.forget_policy("prod", "never-seen")  # unknown policies are not an error
    got = samples((await scrape(server))[0])
    assert not [key for key in got if ("policy", "db") in key[1]]
    web = {key[0] for key in got if ("policy", "web") in key[1]}
    assert web == {
        "azsnap_policy_last_success_timestamp_seconds",
        "azsnap_policy_ready",
        "azsnap_policy_stale_after_seconds",
        "azsnap_policy_missed_slots_total",
    }
    assert web <= metrics.metric_names()
    # The namespace's aggregates no longer count the deleted policy; its counters keep their history.
    assert got[("azsnap_policies", nsl())] == 1
    assert got[("azsnap_policies_stalled", nsl())] == 1
    assert got[("azsnap_snapshots_held", nsl())] == 2
    assert got[("azsnap_snapshots_created_total", nsl())] == 2


async def test_alerting_gauges_and_the_missed_slots_counter(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    metrics.policy_state("prod", "db", held=0, last_success=1_000.0, ready=False, stalled=True, stale_after=262_800.0)
    got = samples((await scrape(server))[0])
    assert got[("azsnap_policy_ready", pol())] == 0
    assert got[("azsnap_policies_stalled", nsl())] == 1
    assert got[("azsnap_policy_stale_after_seconds", pol())] == 262_800
    # The missed-slots counter exists at 0 before the first miss, so increase() sees the first one.
    assert got[("azsnap_policy_missed_slots_total", pol())] == 0
    metrics.slots_missed("prod", "db", 2)
    metrics.slots_missed("prod", "db", 0)
    metrics.slots_missed("prod", "db", 1)
    assert samples((await scrape(server))[0])[("azsnap_policy_missed_slots_total", pol())] == 3

    # Suspended: nothing is owed, so the threshold goes (a staleness alert cannot fire).
    metrics.policy_state("prod", "db", held=0, last_success=1_000.0, ready=True, suspended=True)
    got = samples((await scrape(server))[0])
    assert (got[("azsnap_policy_ready", pol())], got[("azsnap_policies_suspended", nsl())]) == (1, 1)
    assert got[("azsnap_policies_stalled", nsl())] == 0
    assert ("azsnap_policy_stale_after_seconds", pol()) not in got


async def test_failed_snapshots_count_once_when_first_seen(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    # A create that ended Failed is counted by the create path; seeing it Failed later adds nothing.
    metrics.snapshot_event("prod", "db", "failed")
    assert metrics.failed_seen("prod", "db", ["snap-1"], counted=["snap-1"]) == 0
    # A snapshot that turned Failed after its create (or one someone else's call made) counts on first sight only.
    assert metrics.failed_seen("prod", "db", ["snap-1", "snap-2"]) == 1
    assert metrics.failed_seen("prod", "db", ["snap-1", "snap-2"]) == 0
    assert metrics.failed_seen("prod", "db", ["snap-2", "snap-3"]) == 1
    assert samples((await scrape(server))[0])[("azsnap_snapshots_failed_total", nsl())] == 3
    # Forgetting the policy forgets what was seen: a policy re-created under the name starts afresh.
    metrics.forget_policy("prod", "db")
    assert metrics.failed_seen("prod", "db", ["snap-2"]) == 1


def test_metric_names_are_the_exposed_sample_names() -> None:
    names = Metrics().metric_names()
    assert "azsnap_snapshots_created_total" in names
    assert "azsnap_snapshots_created" not in names  # a counter is exposed with _total only
    assert "azsnap_reconcile_duration_seconds_bucket" in names
    assert "azsnap_build_info" in names
    assert "azsnap_policy_ready" in names


async def test_azure_calls_throttling_and_budget(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    metrics.azure_call("snapshots.begin_create_or_update", "ok")
    metrics.azure_call("snapshots.begin_create_or_update", "ok")
    metrics.azure_call("snapshots.list_by_resource_group", "throttled")
    metrics.throttled("snapshots.list_by_resource_group")
    metrics.rate_limit_remaining("Microsoft.Compute/HighCostGet3Min", 139)
    metrics.rate_limit_remaining("Microsoft.Compute/HighCostGet3Min", 138)
    got = samples((await scrape(server))[0])
    ok = (("operation", "snapshots.begin_create_or_update"), ("outcome", "ok"))
    assert got[("azsnap_azure_calls_total", ok)] == 2
    listed = (("operation", "snapshots.list_by_resource_group"), ("outcome", "throttled"))
    assert got[("azsnap_azure_calls_total", listed)] == 1
    assert got[("azsnap_azure_throttled_total", (("operation", "snapshots.list_by_resource_group"),))] == 1
    budget = (("throttle_policy", "Microsoft.Compute/HighCostGet3Min"),)
    assert got[("azsnap_azure_ratelimit_remaining", budget)] == 138


async def test_reconcile_duration_histogram_buckets(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    for seconds in (0.003, 0.2, 0.2, 7.0):
        metrics.reconcile_duration(seconds, "ok")
    metrics.reconcile_duration(45.0, "error")
    got = samples((await scrape(server))[0])

    def bucket(le: str, outcome: str = "ok") -> float:
        return got[("azsnap_reconcile_duration_seconds_bucket", (("le", le), ("outcome", outcome)))]

    assert bucket("0.005") == 1
    assert bucket("0.25") == 3
    assert bucket("5.0") == 3
    assert bucket("10.0") == 4
    assert bucket("+Inf") == 4
    assert got[("azsnap_reconcile_duration_seconds_count", (("outcome", "ok"),))] == 4
    assert got[("azsnap_reconcile_duration_seconds_sum", (("outcome", "ok"),))] == pytest.approx(7.403)
    assert bucket("30.0", "error") == 0
    assert bucket("60.0", "error") == 1


async def test_openmetrics_on_request(served: tuple[Metrics, MetricsServer]) -> None:
    metrics, server = served
    metrics.snapshot_event("prod", "db", "created")
    text, content_type = await scrape(server, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["azsnap_snapshots_created"].type == "counter"


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.snapshot_event("prod", "db", "created")
    assert ("azsnap_snapshots_created_total", nsl()) in samples(a.exposition()[0].decode())
    assert ("azsnap_snapshots_created_total", nsl()) not in samples(b.exposition()[0].decode())


async def test_closed_server_refuses_connections() -> None:
    metrics = Metrics()
    server = await metrics.start_server(0, host="127.0.0.1")
    await server.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(server)


def test_sync_azure_adds_only_new_calls_and_reports_remaining_budget() -> None:
    from azsnap.cloud.accounting import RequestStats

    metrics = Metrics()
    stats = RequestStats()
    stats.record_call("snapshots.create", "ok")
    stats.record_call("snapshots.create", "ok")
    stats.record_response("snapshots.create", 429, {})
    stats.record_response(
        "snapshots.create",
        200,
        {"x-ms-ratelimit-remaining-resource": "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;239"},
    )
    metrics.sync_azure(stats)
    metrics.sync_azure(stats)  # nothing new: nothing added
    stats.record_call("snapshots.create", "throttled")
    metrics.sync_azure(stats)
    text = metrics.exposition()[0].decode()
    assert 'azsnap_azure_calls_total{operation="snapshots.create",outcome="ok"} 2.0' in text
    assert 'azsnap_azure_calls_total{operation="snapshots.create",outcome="throttled"} 1.0' in text
    assert 'azsnap_azure_throttled_total{operation="snapshots.create"} 1.0' in text
    assert (
        'azsnap_azure_ratelimit_remaining{throttle_policy="Microsoft.Compute/HighCostSnapshotCreateHydrate3Min"} 239.0'
        in text
    )
