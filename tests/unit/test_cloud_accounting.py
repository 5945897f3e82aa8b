from typing import Any

import pytest
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline import PipelineContext, PipelineRequest, PipelineResponse
from azure.core.rest import HttpRequest
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential, WorkloadIdentityCredential

from azsnap.cloud.accounting import AccountingPolicy, RequestStats, operation_of, parse_remaining_resource
from azsnap.cloud.credentials import StaticTokenCredential, arm_scope, authority_host, make_credential
from azsnap.settings import CredentialMode, Settings, SettingsError

BASE = "https://management.azure.com/subscriptions/s1"
RG = BASE + "/resourceGroups/rg/providers/Microsoft.Compute"


@pytest.mark.parametrize(
    ("method", "url", "operation"),
    [
        ("GET", RG + "/disks/d1?api-version=2026-03-02", "disks.get"),
        ("GET", RG + "/disks?api-version=2026-03-02", "disks.list"),
        ("PUT", RG + "/snapshots/s1?api-version=2026-03-02", "snapshots.create"),
        ("GET", RG + "/snapshots/s1?api-version=2026-03-02", "snapshots.get"),
        ("DELETE", RG + "/snapshots/s1?api-version=2026-03-02", "snapshots.delete"),
        ("GET", RG + "/snapshots?api-version=2026-03-02&$skiptoken=abc", "snapshots.list"),
        ("GET", RG.replace("Microsoft.Compute", "microsoft.compute") + "/snapshots", "snapshots.list"),
        ("GET", BASE + "/providers/Microsoft.Compute/snapshots?api-version=2026-03-02", "snapshots.list"),
        ("POST", RG + "/snapshots/s1/beginGetAccess", "snapshots.post"),
        (
            "GET",
            BASE + "/providers/Microsoft.Compute/locations/westeurope/operations/op-1?api-version=x",
            "operations.get",
        ),
        ("GET", BASE + "/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a", "other.get"),
    ],
)
def test_operation_of(method: str, url: str, operation: str) -> None:
    assert operation_of(method, url) == operation


def test_parse_remaining_resource() -> None:
    value = "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;239,Microsoft.Compute/HighCostSnapshotCreateHydrate30Min;1919"
    assert parse_remaining_resource(value) == {
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min": 239,
        "Microsoft.Compute/HighCostSnapshotCreateHydrate30Min": 1919,
    }
    assert parse_remaining_resource("garbage, Microsoft.Compute/X;notanumber, ;5, Microsoft.Compute/Y;0") == {
        "Microsoft.Compute/Y": 0
    }


def test_stats_record_responses_and_last_seen_budget() -> None:
    stats = RequestStats()
    stats.record_response(
        "snapshots.create",
        202,
        {
            "x-ms-ratelimit-remaining-resource": "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min;10",
            "x-ms-ratelimit-remaining-subscription-writes": "1199",
        },
    )
    stats.record_response(
        "snapshots.list",
        200,
        {
            "X-Ms-Ratelimit-Remaining-Resource": "Microsoft.Compute/HighCostGet3Min;100",
            "x-ms-ratelimit-remaining-subscription-reads": "11999",
        },
    )
    stats.record_response("snapshots.create", 429, {"x-ms-ratelimit-remaining-subscription-writes": "oops"})
    assert stats.remaining_resource == {
        "Microsoft.Compute/HighCostSnapshotCreateHydrate3Min": 10,
        "Microsoft.Compute/HighCostGet3Min": 100,
    }
    assert stats.remaining_subscription == {"writes": 1199, "reads": 11999}
    assert stats.responses[("snapshots.create", 429)] == 1
    assert stats.throttled == 1
    assert stats.throttled_responses == {"snapshots.create": 1}
    stats.record_call("snapshots.create", "ok")
    stats.record_call("snapshots.create", "throttled")
    stats.record_call("snapshots.create", "ok")
    assert stats.calls_of("snapshots.create") == {"ok": 2, "throttled": 1}
    dumped = stats.as_dict()
    assert dumped["calls"] == {"snapshots.create:ok": 2, "snapshots.create:throttled": 1}
    assert dumped["throttled"] == 1


class _Http:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status_code = status
        self.headers = headers


def test_policy_counts_each_answer_and_calls_the_hook() -> None:
    seen: list[tuple[str, int, Any]] = []
    stats = RequestStats()
    policy = AccountingPolicy(stats, lambda op, status, headers: seen.append((op, status, dict(headers))))
    context = PipelineContext(None)
    request = PipelineRequest(HttpRequest("PUT", RG + "/snapshots/s1?api-version=2026-03-02"), context)
    for status in (429, 429, 200):
        response: PipelineResponse[Any, Any] = PipelineResponse(
            request.http_request, _Http(status, {"Retry-After": "1"}), context
        )
        policy.on_response(request, response)
    policy.on_exception(request)
    assert [s for _, s, _ in seen] == [429, 429, 200]
    assert seen[0][0] == "snapshots.create"
    assert stats.throttled_responses == {"snapshots.create": 2}
    assert stats.connection_errors == {"snapshots.create": 1}


# ---- credentials ---------------------------------------------------------------------------------------------------


async def test_static_token_credential_never_expires_and_hides_its_token() -> None:
    cred = StaticTokenCredential("secret-value")
    assert isinstance(cred, AsyncTokenCredential)
    token = await cred.get_token("https://127.0.0.1/.default")
    info = await cred.get_token_info("https://127.0.0.1/.default")
    assert token.token == info.token == "secret-value"
    assert token.expires_on == info.expires_on >= 4_000_000_000
    assert "secret-value" not in repr(cred)
    async with cred as same:
        assert same is cred


def test_arm_scope() -> None:
    assert arm_scope("https://management.azure.com") == "https://management.azure.com/.default"
    assert arm_scope("https://127.0.0.1:8443/") == "https://127.0.0.1:8443/.default"


async def test_make_credential_by_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("federated")
    monkeypatch.setenv("AZURE_CLIENT_ID", "env-client")
    monkeypatch.setenv("AZURE_TENANT_ID", "tenant")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    made = [
        make_credential(Settings(credential=CredentialMode.WORKLOAD_IDENTITY, client_id="override")),
        make_credential(Settings(credential=CredentialMode.MANAGED_IDENTITY, client_id="uami")),
        make_credential(Settings(credential=CredentialMode.DEFAULT)),
        make_credential(Settings(credential=CredentialMode.STATIC_TOKEN)),
    ]
    try:
        assert isinstance(made[0], WorkloadIdentityCredential)
        assert isinstance(made[1], ManagedIdentityCredential)
        assert isinstance(made[2], DefaultAzureCredential)
        assert isinstance(made[3], StaticTokenCredential)
    finally:
        for cred in made:
            await cred.close()


def test_workload_identity_without_its_environment_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_FEDERATED_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsError, match="workload identity"):
        make_credential(Settings(credential=CredentialMode.WORKLOAD_IDENTITY))


def test_the_authority_follows_azure_authority_host_unless_azsnap_says_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    china = "https://login.chinacloudapi.cn"
    assert authority_host(Settings(), {}) == "https://login.microsoftonline.com"
    assert authority_host(Settings(), {"AZURE_AUTHORITY_HOST": china}) == china  # set by the AKS webhook
    assert authority_host(Settings(cloud="china"), {}) == china
    with caplog.at_level("WARNING", logger="azsnap.cloud.credentials"):
        chosen = authority_host(
            Settings(authority_host="https://login.microsoftonline.us"), {"AZURE_AUTHORITY_HOST": china}
        )
    assert chosen == "https://login.microsoftonline.us"
    (record,) = caplog.records
    assert record.__dict__["environment_authority_host"] == china
    caplog.clear()
    with caplog.at_level("WARNING", logger="azsnap.cloud.credentials"):
        assert authority_host(Settings(cloud="china"), {"AZURE_AUTHORITY_HOST": china + "/"}) == china
    assert not caplog.records  # the same host written twice is no disagreement
