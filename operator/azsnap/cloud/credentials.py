"""Azure credentials chosen by configuration: workload identity, managed identity, the default chain, or a static token."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Final

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential, WorkloadIdentityCredential

from azsnap.settings import CLOUDS, CredentialMode, Settings, SettingsError

__all__ = ["StaticTokenCredential", "arm_scope", "authority_host", "make_credential"]

log = logging.getLogger(__name__)

#: Set by the AKS workload-identity webhook (sovereign clouds included) and read by azure-identity.
AUTHORITY_ENV: Final = "AZURE_AUTHORITY_HOST"

#: 2100-01-01T00:00:00Z: far enough that azure-core never asks for a fresh token.
_FAR_EXPIRY: Final = 4_102_444_800


def arm_scope(arm_endpoint: str) -> str:
    """The token scope for an ARM endpoint: `https://management.azure.com` → `https://management.azure.com/.default`."""
    return arm_endpoint.rstrip("/") + "/.default"


class StaticTokenCredential:
    """A fixed bearer token with a far expiry, for the local emulator only: it never contacts Entra ID."""

    def __init__(self, token: str = "azsnap-emulator-token") -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticTokenCredential(token=<redacted>)"

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, _FAR_EXPIRY)

    async def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        return AccessTokenInfo(self._token, _FAR_EXPIRY)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        return None


def authority_host(settings: Settings, environ: Mapping[str, str] = os.environ) -> str:
    """The Entra authority: azsnap's own setting (an authority host, or a cloud other than public) when it has one,
    else `AZURE_AUTHORITY_HOST` as the environment sets it, else the public cloud's. A warning when they disagree."""
    env = environ.get(AUTHORITY_ENV, "").strip()
    own = settings.authority_host or (None if settings.cloud == "public" else CLOUDS[settings.cloud][1])
    if own is None:
        return env or settings.resolved_authority_host
    if env and _host(env) != _host(own):
        log.warning(
            "azsnap's authority setting and AZURE_AUTHORITY_HOST disagree; azsnap's own setting is used",
            extra={"authority_host": own, "environment_authority_host": env},
        )
    return own


def _host(url: str) -> str:
    return url.strip().rstrip("/").lower().removeprefix("https://")


def make_credential(settings: Settings) -> AsyncTokenCredential:
    """The credential `settings.credential` names; the caller closes it.

    Workload identity reads `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` and `AZURE_FEDERATED_TOKEN_FILE` (injected by AKS);
    `settings.client_id` overrides the client ID there and picks a user-assigned managed identity.
    """
    authority = authority_host(settings)
    if settings.credential is CredentialMode.WORKLOAD_IDENTITY:
        try:
            return WorkloadIdentityCredential(client_id=settings.client_id, authority=authority)
        except ValueError as exc:
            raise SettingsError(
                f"workload identity is not set up: {exc}. On AKS, label the pod azure.workload.identity/use=true and "
                "annotate its service account with the identity's client ID, or set AZSNAP_CREDENTIAL."
            ) from exc
    if settings.credential is CredentialMode.MANAGED_IDENTITY:
        return ManagedIdentityCredential(client_id=settings.client_id)
    if settings.credential is CredentialMode.STATIC_TOKEN:
        return StaticTokenCredential()
    return DefaultAzureCredential(
        authority=authority,
        managed_identity_client_id=settings.client_id,
        workload_identity_client_id=settings.client_id,
    )
