import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError
from azure.mgmt.compute.models import Disk as SdkDisk
from azure.mgmt.compute.models import Snapshot as SdkSnapshot
from azure.mgmt.core.exceptions import ARMErrorFormat

from azsnap.cloud.errors import Forbidden, NotFound, PermanentError, Throttled, TransientError
from azsnap.cloud.mapping import (
    disk_from_azure,
    map_error,
    outcome_of,
    parse_resource_id,
    retry_after_from_headers,
    snapshot_from_azure,
)
from azsnap.domain.observed import DiskTier, SnapshotState

SUB = "11111111-2222-3333-4444-555555555555"
DISK_ID = f"/subscriptions/{SUB}/resourceGroups/rg-data/providers/Microsoft.Compute/disks/pg-0"
SNAP_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-snaps/providers/Microsoft.Compute/snapshots/azsnap-pg-0-20260302t1000"
)


class FakeResponse:
    """Just enough of an azure-core response for HttpResponseError to read."""

    def __init__(self, status: int, body: object = None, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status
        self.reason = "reason"
        self.headers = dict(headers or {})
        self._body = body

    def text(self, encoding: str | None = None) -> str:
        return self._body if isinstance(self._body, str) else json.dumps(self._body)


def arm_error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None, **extra: Any) -> Any:
    body = {"error": {"code": code, "message": message, **extra}}
    return HttpResponseError(response=FakeResponse(status, body, headers), error_format=ARMErrorFormat)


# ---- resource IDs --------------------------------------------------------------------------------------------------


def test_parse_resource_id() -> None:
    rid = parse_resource_id(DISK_ID)
    assert (rid.subscription_id, rid.resource_group, rid.provider, rid.resource_type, rid.name) == (
        SUB,
        "rg-data",
        "Microsoft.Compute",
        "disks",
        "pg-0",
    )


def test_parse_resource_id_is_case_insensitive_on_segments() -> None:
    rid = parse_resource_id(
        DISK_ID.replace("resourceGroups", "RESOURCEGROUPS").replace("subscriptions", "Subscriptions")
    )
    assert rid.resource_group == "rg-data"
    assert rid.name == "pg-0"


@pytest.mark.parametrize("bad", ["", "pg-0", "/subscriptions/x/resourceGroups/rg", DISK_ID + "/extra/more"])
def test_parse_resource_id_rejects_malformed(bad: str) -> None:
    with pytest.raises(PermanentError) as info:
        parse_resource_id(bad)
    assert info.value.code == "InvalidResourceId"


# ---- SDK models -> domain ------------------------------------------------------------------------------------------


def snapshot_json(**props: Any) -> dict[str, Any]:
    return {
        "id": SNAP_ID,
        "name": "azsnap-pg-0-20260302t1000",
        "type": "Microsoft.Compute/snapshots",
        "location": "westeurope",
        "tags": {"azsnap.io/managed-by": "azsnap", "azsnap.io/slot": "2026-03-02T10:00:00Z"},
        "sku": {"name": "Standard_ZRS", "tier": "Standard"},
        "properties": {
            "creationData": {
                "createOption": "Copy",
                "sourceResourceId": DISK_ID,
                "sourceUniqueId": "aaaaaaaa-0000-0000-0000-000000000001",
            },
            "incremental": True,
            "incrementalSnapshotFamilyId": "ffffffff-0000-0000-0000-000000000001",
            "diskSizeGB": 128,
            "diskSizeBytes": 137438953472,
            "uniqueId": "bbbbbbbb-0000-0000-0000-000000000002",
            "timeCreated": "2026-03-02T10:00:03.1234567+00:00",
            "provisioningState": "Succeeded",
            **props,
        },
    }


def test_snapshot_from_sdk_model() -> None:
    snap = snapshot_from_azure(SdkSnapshot(snapshot_json()))
    assert snap.id == SNAP_ID
    assert snap.name == "azsnap-pg-0-20260302t1000"
    assert snap.resource_group == "rg-snaps"
    assert snap.location == "westeurope"
    assert snap.source_resource_id == DISK_ID
    assert snap.source_unique_id == "aaaaaaaa-0000-0000-0000-000000000001"
    assert snap.time_created == datetime(2026, 3, 2, 10, 0, 3, 123456, tzinfo=UTC)
    assert snap.provisioning_state == "Succeeded"
    assert snap.tags == {"azsnap.io/managed-by": "azsnap", "azsnap.io/slot": "2026-03-02T10:00:00Z"}
    assert snap.incremental is True
    assert snap.completion_percent is None
    assert snap.size_bytes == 137438953472
    assert snap.state is SnapshotState.SUCCEEDED


def test_snapshot_background_copy_is_copying_until_complete() -> None:
    copying = snapshot_from_azure(SdkSnapshot(snapshot_json(completionPercent=42.5)))
    assert copying.completion_percent == 42.5
    assert copying.state is SnapshotState.COPYING
    done = snapshot_from_azure(snapshot_json(completionPercent=100))
    assert done.state is SnapshotState.SUCCEEDED


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("Creating", SnapshotState.CREATING),
        ("Updating", SnapshotState.CREATING),
        ("Failed", SnapshotState.FAILED),
        ("Canceled", SnapshotState.FAILED),
        ("Migrating", SnapshotState.UNKNOWN),
        (None, SnapshotState.UNKNOWN),
    ],
)
def test_snapshot_states(state: str | None, expected: SnapshotState) -> None:
    assert snapshot_from_azure(snapshot_json(provisioningState=state)).state is expected


def test_snapshot_with_missing_and_malformed_fields_does_not_crash() -> None:
    raw = {
        "id": SNAP_ID,
        "tags": None,
        "properties": {
            "creationData": None,
            "timeCreated": "yesterday",
            "diskSizeBytes": "lots",
            "completionPercent": "NaN",
            "incremental": "yes",
            "somethingNew": {"x": 1},
        },
    }
    snap = snapshot_from_azure(SdkSnapshot(raw))
    assert snap.name == "azsnap-pg-0-20260302t1000"  # from the ID when the name is missing
    assert snap.source_resource_id is None
    assert snap.source_unique_id is None
    assert snap.time_created is None
    assert snap.size_bytes == 0
    assert snap.completion_percent is None
    assert snap.incremental is False
    assert snap.tags == {}
    assert snap.state is SnapshotState.UNKNOWN


def test_snapshot_naive_time_is_utc() -> None:
    snap = snapshot_from_azure(snapshot_json(timeCreated="2026-03-02T10:00:00"))
    assert snap.time_created == datetime(2026, 3, 2, 10, tzinfo=UTC)


def test_snapshot_without_properties() -> None:
    snap = snapshot_from_azure({"id": SNAP_ID, "name": "x", "location": "westeurope"})
    assert snap.provisioning_state is None
    assert snap.resource_group == "rg-snaps"


def test_disk_from_sdk_model() -> None:
    raw = {
        "id": DISK_ID,
        "name": "pg-0",
        "location": "westeurope",
        "sku": {"name": "PremiumV2_LRS", "tier": "Premium"},
        "properties": {
            "uniqueId": "aaaaaaaa-0000-0000-0000-000000000001",
            "diskSizeGB": 256,
            "diskSizeBytes": 274877906944,
            "provisioningState": "Succeeded",
            "creationData": {"createOption": "Empty"},
        },
    }
    disk = disk_from_azure(SdkDisk(raw))
    assert disk.id == DISK_ID
    assert (disk.subscription_id, disk.resource_group, disk.name) == (SUB, "rg-data", "pg-0")
    assert disk.location == "westeurope"
    assert disk.unique_id == "aaaaaaaa-0000-0000-0000-000000000001"
    assert disk.sku == "PremiumV2_LRS"
    assert disk.tier is DiskTier.PREMIUM_V2
    assert disk.size_bytes == 274877906944
    assert disk.completion_percent is None
    assert not disk.is_copying


def test_disk_being_restored_reports_its_copy_progress() -> None:
    disk = disk_from_azure({"id": DISK_ID, "properties": {"completionPercent": 12}})
    assert disk.completion_percent == 12.0
    assert disk.is_copying
    assert disk.sku is None
    assert disk.unique_id == ""


# ---- errors --------------------------------------------------------------------------------------------------------


def test_not_found() -> None:
    exc = ResourceNotFoundError(response=FakeResponse(404, {"error": {"code": "ResourceNotFound", "message": "gone"}}))
    err = map_error(exc)
    assert isinstance(err, NotFound)
    assert (err.code, err.status, err.message) == ("ResourceNotFound", 404, "gone")
    assert outcome_of(err) == "not_found"


def test_resource_group_not_found_as_plain_http_error() -> None:
    err = map_error(arm_error(404, "ResourceGroupNotFound", "Resource group 'rg-x' could not be found."))
    assert isinstance(err, NotFound)
    assert err.code == "ResourceGroupNotFound"


def test_429_is_throttled_with_retry_after() -> None:
    exc = arm_error(
        429,
        "OperationNotAllowed",
        "The server rejected the request because too many requests have been received for this subscription.",
        headers={"Retry-After": "17"},
        details=[{"code": "TooManyRequests", "message": "HighCostSnapshotCreateHydrate3Min"}],
    )
    err = map_error(exc)
    assert isinstance(err, Throttled)
    assert err.retry_after == 17.0
    assert err.code == "OperationNotAllowed"
    assert err.status == 429
    assert outcome_of(err) == "throttled"


def test_429_without_retry_after_uses_the_default() -> None:
    err = map_error(arm_error(429, "TooManyRequests", "slow down"), default_retry_after=12.5)
    assert isinstance(err, Throttled)
    assert err.retry_after == 12.5


def test_per_disk_window_409_is_transient_not_permanent() -> None:
    exc = arm_error(
        409,
        "OperationNotAllowed",
        "Only 7 incremental snapshots of a disk can be created within 5 minutes.",
        headers={"Retry-After": "120"},
    )
    err = map_error(exc)
    assert type(err) is TransientError
    assert err.retry_after == 120.0
    assert err.code == "OperationNotAllowed"
    assert outcome_of(err) == "transient"


@pytest.mark.parametrize(
    "message",
    [
        "Disk is attached to a VM that is being deallocated.",
        "Only 7 incremental snapshots of a disk can be created within 5 minutes.",
        "Ein Vorgang ist nicht zulässig.",  # no English words to match: the code decides
    ],
)
def test_a_409_is_judged_by_its_code_not_its_words(message: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="azsnap.cloud.mapping"):
        err = map_error(arm_error(409, "OperationNotAllowed", message), default_retry_after=30)
    assert type(err) is TransientError and err.code == "OperationNotAllowed" and err.retry_after == 30
    assert err.message == message
    (record,) = caplog.records
    assert record.__dict__["code"] == "OperationNotAllowed" and record.__dict__["azure_message"] == message


def test_identity_errors_without_an_answer_or_with_a_5xx_are_transient() -> None:
    def fetch_token() -> None:
        try:
            raise ServiceRequestError("Connection reset by peer")
        except ServiceRequestError as network:
            raise ClientAuthenticationError("the token request failed") from network

    with pytest.raises(ClientAuthenticationError) as failed:
        fetch_token()
    blip = map_error(failed.value)
    assert type(blip) is TransientError and blip.code == "IdentityUnavailable"
    unconfigured = map_error(CredentialUnavailableError("no federated token file"))
    assert isinstance(unconfigured, PermanentError) and unconfigured.code == "AuthenticationFailed"


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (409, "SnapshotsLimitReached"),
        (400, "InvalidParameter"),
        (400, "InvalidResourceName"),
    ],
)
def test_other_4xx_are_permanent_with_azure_code_and_message(status: int, code: str) -> None:
    err = map_error(arm_error(status, code, f"{code} happened"))
    assert isinstance(err, PermanentError)
    assert (err.code, err.message, err.status) == (code, f"{code} happened", status)
    assert outcome_of(err) == "permanent"


@pytest.mark.parametrize("code", ["AuthorizationFailed", "LinkedAuthorizationFailed"])
def test_a_missing_permission_is_forbidden_and_says_what_to_do(code: str) -> None:
    said = "The client 'x' does not have authorization to perform action 'Microsoft.Compute/disks/write'."
    err = map_error(arm_error(403, code, said))
    assert type(err) is Forbidden and isinstance(err, PermanentError)
    assert (err.code, err.status) == (code, 403)
    assert said in err.message and "docs/azure-setup.md" in err.message
    assert outcome_of(err) == "permanent"


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_5xx_and_408_are_transient(status: int) -> None:
    err = map_error(arm_error(status, "InternalServerError", "oops", headers={"Retry-After": "3"}))
    assert type(err) is TransientError
    assert err.status == status
    assert err.retry_after == 3.0


def test_error_without_json_body() -> None:
    err = map_error(HttpResponseError(response=FakeResponse(502, "<html>Bad Gateway</html>")))
    assert type(err) is TransientError
    assert err.status == 502
    assert err.code is None
    err = map_error(HttpResponseError(response=FakeResponse(400, "")))
    assert isinstance(err, PermanentError)
    assert err.code == "HTTP400"


def test_lro_that_ended_failed_maps_by_its_code() -> None:
    # azure-core raises the poll's 200 answer whose body holds the operation's error.
    body = {"status": "Failed", "error": {"code": "SnapshotsLimitReached", "message": "500 snapshots"}}
    err = map_error(HttpResponseError(response=FakeResponse(200, body)))
    assert isinstance(err, PermanentError)
    assert err.code == "SnapshotsLimitReached"
    body = {"status": "Failed", "error": {"code": "InternalExecutionError", "message": "try again"}}
    err = map_error(HttpResponseError(response=FakeResponse(200, body)))
    assert type(err) is TransientError
    assert err.code == "InternalExecutionError"


def test_connection_errors_and_timeouts_are_transient() -> None:
    for exc in (
        ServiceRequestError("connection refused"),
        ServiceResponseError("connection reset"),
        TimeoutError(),
        ConnectionResetError("reset"),
    ):
        err = map_error(exc)
        assert type(err) is TransientError, exc
        assert outcome_of(err) == "transient"


def test_credential_failure_is_permanent_and_says_what_to_do() -> None:
    err = map_error(ClientAuthenticationError("WorkloadIdentityCredential authentication unavailable"))
    assert isinstance(err, PermanentError)
    assert err.code == "AuthenticationFailed"
    assert "identity" in err.message


def test_cloud_errors_pass_through() -> None:
    original = Throttled("x", retry_after=1)
    assert map_error(original) is original


def test_retry_after_headers() -> None:
    assert retry_after_from_headers({"Retry-After": "5"}) == 5.0
    assert retry_after_from_headers({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_from_headers({"x-ms-retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert retry_after_from_headers({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert retry_after_from_headers({"Retry-After": "-1"}) is None
    assert retry_after_from_headers(None) is None


def test_retry_after_zero_is_kept() -> None:
    err = map_error(arm_error(429, "TooManyRequests", "slow down", headers={"Retry-After": "0"}))
    assert isinstance(err, Throttled)
    assert err.retry_after == 0.0
