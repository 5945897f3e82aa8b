"""Translate between Azure and azsnap: ARM resource IDs, SDK models to domain values, SDK errors to `cloud.errors`."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, overload

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.identity import CredentialUnavailableError

from azsnap.cloud.errors import CloudError, Forbidden, NotFound, PermanentError, Throttled, TransientError
from azsnap.domain.observed import Disk, Snapshot

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RETRY_AFTER",
    "ResourceId",
    "disk_from_azure",
    "map_error",
    "outcome_of",
    "parse_resource_id",
    "retry_after_from_headers",
    "snapshot_from_azure",
]

#: Seconds to wait after a throttling or transient answer that named no `Retry-After`.
DEFAULT_RETRY_AFTER: Final = 30.0

#: Codes an operation can end with (LRO `Failed`) that are worth trying again.
_TRANSIENT_CODES: Final = frozenset(
    {
        "internalservererror",
        "internalexecutionerror",
        "internaloperationerror",
        "servertimeout",
        "serviceunavailable",
        "operationpreempted",
        "retryableerror",
        "toomanyrequests",
        "conflictingoperation",
        "operationinprogress",
    }
)

_ID_RE: Final = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/(?P<provider>[^/]+)/(?P<type>[^/]+)/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)

#: 409 codes about one resource's state right now (the per-disk snapshot window, a disk busy in another operation):
#: worth trying again. Azure documents no wording for them, so only the code decides, never the message; azsnap's own
#: per-disk ledger keeps it from sending a create its window cannot take, so such a 409 is someone else's doing.
_CONFLICT_CODES: Final = frozenset({"operationnotallowed", "conflict", "conflictingoperation", "operationinprogress"})


@dataclass(frozen=True)
class ResourceId:
    """The parts of an ARM resource ID azsnap needs."""

    subscription_id: str
    resource_group: str
    provider: str
    resource_type: str
    name: str


def parse_resource_id(resource_id: str) -> ResourceId:
    """Split `/subscriptions/{sub}/resourceGroups/{rg}/providers/{ns}/{type}/{name}`; PermanentError if malformed."""
    match = _ID_RE.match(resource_id.strip())
    if match is None:
        raise PermanentError(
            f"{resource_id!r} is not an Azure resource ID of the form "
            "/subscriptions/<id>/resourceGroups/<group>/providers/<namespace>/<type>/<name>",
            code="InvalidResourceId",
        )
    return ResourceId(match["sub"], match["rg"], match["provider"], match["type"], match["name"])


def _sub(value: object, key: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        inner = value.get(key)
        if isinstance(inner, Mapping):
            return inner
    return {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = float(value)
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def _int(value: object) -> int:
    number = _number(value)
    return int(number) if number is not None else 0


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    else:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _tags(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _group_and_sub(resource_id: str) -> tuple[str, str]:
    match = _ID_RE.match(resource_id)
    return (match["sub"], match["rg"]) if match else ("", "")


def disk_from_azure(raw: Mapping[str, Any]) -> Disk:
    """A domain Disk from an SDK `Disk` (or its ARM JSON); unknown or missing fields never raise."""
    disk_id = _str(raw.get("id")) or ""
    subscription_id, resource_group = _group_and_sub(disk_id)
    props = _sub(raw, "properties")
    return Disk(
        id=disk_id,
        name=_str(raw.get("name")) or disk_id.rsplit("/", 1)[-1],
        subscription_id=subscription_id,
        resource_group=resource_group,
        location=_str(raw.get("location")) or "",
        unique_id=_str(props.get("uniqueId")) or "",
        sku=_str(_sub(raw, "sku").get("name")),
        size_bytes=_int(props.get("diskSizeBytes")),
        provisioning_state=_str(props.get("provisioningState")) or "Unknown",
        completion_percent=_number(props.get("completionPercent")),
        tags=_tags(raw.get("tags")),
        source_resource_id=_str(_sub(props, "creationData").get("sourceResourceId")),
        zone=_zone(raw.get("zones")),
    )


def _zone(value: object) -> str | None:
    return str(value[0]) if isinstance(value, list) and len(value) == 1 else None


def snapshot_from_azure(raw: Mapping[str, Any]) -> Snapshot:
    """A domain Snapshot from an SDK `Snapshot` (or its ARM JSON); unknown or missing fields never raise.

    A subscription's list holds every snapshot at once (hundreds of thousands in a large one), and most of their
    strings repeat (the group, the region, the source disk, the state, the tags): those are kept once each.
    """
    snapshot_id = _str(raw.get("id")) or ""
    _, resource_group = _group_and_sub(snapshot_id)
    props = _sub(raw, "properties")
    creation = _sub(props, "creationData")
    incremental = props.get("incremental")
    return Snapshot(
        id=snapshot_id,
        name=_str(raw.get("name")) or snapshot_id.rsplit("/", 1)[-1],
        resource_group=_shared(resource_group),
        location=_shared(_str(raw.get("location")) or ""),
        source_resource_id=_shared(_str(creation.get("sourceResourceId"))),
        source_unique_id=_shared(_str(creation.get("sourceUniqueId"))),
        time_created=_time(props.get("timeCreated")),
        provisioning_state=_shared(_str(props.get("provisioningState"))),
        tags={sys.intern(k): sys.intern(v) for k, v in _tags(raw.get("tags")).items()},
        incremental=incremental if isinstance(incremental, bool) else False,
        completion_percent=_number(props.get("completionPercent")),
        size_bytes=_int(props.get("diskSizeBytes")),
        create_option=_str(creation.get("createOption")),
        copy_error=_str(_sub(props, "copyCompletionError").get("errorCode")),
    )


@overload
def _shared(value: str) -> str: ...
@overload
def _shared(value: None) -> None: ...
def _shared(value: str | None) -> str | None:
    """One copy of a string that many listed snapshots carry (interned: it goes when the last one goes)."""
    return None if value is None else sys.intern(value)


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from `retry-after-ms`, `x-ms-retry-after-ms` or a numeric `Retry-After`; None if absent."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("x-ms-retry-after-ms", 1000.0), ("retry-after", 1.0)):
        number = _number(lower.get(name))
        if number is not None and number >= 0:
            return number / scale
    return None


def _code_and_message(exc: HttpResponseError) -> tuple[str | None, str, list[str]]:
    """Azure's error code, message and detail codes, from the parsed error or else the raw body."""
    code: str | None = None
    message = ""
    details: list[str] = []
    if exc.error is not None:
        code = exc.error.code
        message = exc.error.message or ""
        details = [d.code for d in exc.error.details or [] if d.code]
    if code is None and exc.response is not None:
        try:
            body = json.loads(exc.response.text())
        except (ValueError, TypeError, UnicodeDecodeError):
            body = None
        error = _sub(body, "error") if isinstance(body, Mapping) else {}
        code = _str(error.get("code"))
        message = _str(error.get("message")) or message
    if not message:
        message = exc.message or str(exc)
    return code, message, details


def _headers(exc: HttpResponseError) -> Mapping[str, str] | None:
    headers = getattr(exc.response, "headers", None)
    return headers if isinstance(headers, Mapping) else None


def map_error(exc: BaseException, *, default_retry_after: float = DEFAULT_RETRY_AFTER) -> CloudError:
    """Turn an SDK or transport exception into azsnap's error vocabulary (see `azsnap.cloud.errors`).

    404 → NotFound; 429 → Throttled; 408, 5xx, dropped connections and timeouts → TransientError; the per-disk
    snapshot window (409 `OperationNotAllowed`) → TransientError; a long-running operation that ended `Failed`
    → transient or permanent by its code; 403 (a missing permission) → Forbidden; any other 4xx → PermanentError
    with Azure's code and message.
    """
    if isinstance(exc, CloudError):
        return exc
    if isinstance(exc, ResourceNotFoundError) or (isinstance(exc, HttpResponseError) and exc.status_code == 404):
        code, message, _ = _code_and_message(exc)
        return NotFound(message, code=code or "NotFound", status=404)
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        return _map_http(exc, exc.status_code, default_retry_after)
    if isinstance(exc, ClientAuthenticationError) and _identity_unreachable(exc):
        return TransientError(
            f"Entra ID could not be reached for a token: {exc.message}; azsnap tries again",
            code="IdentityUnavailable",
        )
    if isinstance(exc, ClientAuthenticationError):
        return PermanentError(
            f"could not get an Azure token: {exc.message}. Check the operator's identity configuration.",
            code="AuthenticationFailed",
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError(f"Azure could not be reached: {exc.message}", retry_after=None, code="ConnectionError")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return TransientError("the call to Azure timed out", code="Timeout")
    if isinstance(exc, OSError):
        return TransientError(f"Azure could not be reached: {exc}", code="ConnectionError")
    if isinstance(exc, AzureError):
        return TransientError(f"unexpected answer from Azure: {exc.message}", code=type(exc).__name__)
    return TransientError(f"unexpected error talking to Azure: {exc!r}", code=type(exc).__name__)


def _map_http(exc: HttpResponseError, status: int, default_retry_after: float) -> CloudError:
    code, message, details = _code_and_message(exc)
    said = retry_after_from_headers(_headers(exc))
    retry_after = default_retry_after if said is None else said
    lowered = (code or "").lower()
    if status == 429:
        return Throttled(message, retry_after=retry_after, code=code, status=status)
    if status < 400:
        # Raised from a long-running operation that ended Failed: the HTTP status is the poll's 200.
        if lowered in _TRANSIENT_CODES:
            return TransientError(message, retry_after=retry_after, code=code)
        return PermanentError(message, code=code)
    if status == 408 or status >= 500:
        return TransientError(message, retry_after=said, code=code, status=status)
    if status == 403:
        return Forbidden(
            f"Azure refused for lack of a permission: {message} Grant the operator's identity the role in "
            "docs/azure-setup.md.",
            code=code or "AuthorizationFailed",
            status=status,
        )
    if status == 409:
        log.warning("Azure refused with a conflict", extra={"status": status, "code": code, "azure_message": message})
        if lowered in _CONFLICT_CODES or "TooManyRequests" in details:
            return TransientError(message, retry_after=retry_after, code=code, status=status)
    if lowered in _TRANSIENT_CODES:
        return TransientError(message, retry_after=retry_after, code=code, status=status)
    return PermanentError(message, code=code or f"HTTP{status}", status=status)


def _identity_unreachable(exc: ClientAuthenticationError) -> bool:
    """A token request that failed on the way (no answer, or Entra's 5xx or 429), not one Entra refused."""
    if isinstance(exc, CredentialUnavailableError):
        return False  # not configured here (no federated token file, no managed identity): a person must act
    status = getattr(exc.response, "status_code", None) if exc.response is not None else None
    if status is None:
        # No answer from Entra: transient when the request itself failed on the network, not when no credential
        # could even be tried (DefaultAzureCredential raises the same type for both).
        causes = (exc.inner_exception, exc.__cause__, exc.__context__)
        return any(isinstance(c, ServiceRequestError | ServiceResponseError | OSError | TimeoutError) for c in causes)
    return status >= 500 or status in (408, 429)


def outcome_of(error: CloudError) -> str:
    """The accounting label of an error: not_found, throttled, transient or permanent."""
    if isinstance(error, NotFound):
        return "not_found"
    if isinstance(error, Throttled):
        return "throttled"
    if isinstance(error, TransientError):
        return "transient"
    return "permanent"
