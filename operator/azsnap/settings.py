"""Operator settings, read once at start-up from `AZSNAP_*` environment variables (see docs/operations.md)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from azsnap.domain.observed import Limits

__all__ = ["CopyCap", "CredentialMode", "Settings", "SettingsError", "copy_cap"]

ENV_PREFIX: Final = "AZSNAP_"

#: Azure clouds: (ARM endpoint, Entra authority host).
CLOUDS: Final = {
    "public": ("https://management.azure.com", "https://login.microsoftonline.com"),
    "china": ("https://management.chinacloudapi.cn", "https://login.chinacloudapi.cn"),
    "usgov": ("https://management.usgovcloudapi.net", "https://login.microsoftonline.us"),
}


class CredentialMode(StrEnum):
    """How azsnap authenticates to Azure."""

    WORKLOAD_IDENTITY = "workload-identity"  # AKS: AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE
    MANAGED_IDENTITY = "managed-identity"  # the node's or a user-assigned identity (AZSNAP_CLIENT_ID)
    DEFAULT = "default"  # azure-identity's DefaultAzureCredential chain (az login on a laptop)
    STATIC_TOKEN = "static-token"  # a fixed token that never contacts Entra ID: only for the local emulator


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseModel):
    """Everything configurable about the operator process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    credential: CredentialMode = CredentialMode.WORKLOAD_IDENTITY
    client_id: str | None = None
    cloud: str = Field(default="public", pattern="^(public|china|usgov)$")
    arm_endpoint: str | None = None  # overrides the cloud's endpoint (the emulator's base URL)
    authority_host: str | None = None
    ca_bundle: str | None = None  # extra CA bundle to trust (the emulator's throwaway CA)
    namespaces: tuple[str, ...] = ()  # empty: watch the whole cluster
    window_creates: int = Field(default=7, ge=1)
    window_seconds: int = Field(default=300, ge=1)
    per_disk_cap: int = Field(default=500, ge=1)
    max_pending_copies: int = Field(default=3, ge=1)
    lro_timeout_seconds: float = Field(default=60.0, gt=0)
    list_freshness_seconds: float = Field(default=30.0, ge=0)
    parallel_copies: int = Field(default=100, ge=1)  # cross-region copies at once per subscription and region
    metrics_port: int = Field(default=8080, ge=0, le=65535)  # 0 disables the metrics endpoint
    peering: str | None = None  # kopf peering name; None runs standalone (one replica, Recreate)
    log_format: str = Field(default="json", pattern="^(json|plain)$")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")  # azsnap's and kopf's log level
    scope_file: str | None = None  # the tenancy allow-list (a mounted ConfigMap key); unset: no allow-list
    tick_seconds: float = Field(default=300.0, gt=0)  # longest a policy's timer sleeps between looks at its wake-up
    pacing: bool = True  # wait for Azure's request budget before each call (docs/pacing.md); off: call at once
    restores: bool = False  # serve SnapshotRestore resources (needs their CRD and the restore role: docs/restore.md)
    restore_volumes: bool = False  # let restores create PersistentVolumes and claims (needs the chart's RBAC for them)
    volume_snapshots: bool = False  # publish claim policies' snapshots as VolumeSnapshots (the chart's RBAC for them)

    @property
    def resolved_arm_endpoint(self) -> str:
        return self.arm_endpoint or CLOUDS[self.cloud][0]

    @property
    def resolved_authority_host(self) -> str:
        return self.authority_host or CLOUDS[self.cloud][1]

    @property
    def limits(self) -> Limits:
        return Limits(
            window_creates=self.window_creates,
            window=timedelta(seconds=self.window_seconds),
            per_disk_cap=self.per_disk_cap,
            max_pending_copies=self.max_pending_copies,
            max_parallel_copies=self.parallel_copies,
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read `AZSNAP_<FIELD>` variables (upper case); unknown or malformed values raise SettingsError."""
        raw: dict[str, object] = {}
        for name in cls.model_fields:
            value = environ.get(ENV_PREFIX + name.upper())
            if value is None or value == "":
                continue
            raw[name] = tuple(v.strip() for v in value.split(",") if v.strip()) if name == "namespaces" else value
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}" for err in exc.errors(include_url=False)
            )
            raise SettingsError(f"invalid operator settings: {problems}") from exc


#: The variable the operator reads its cap on copies at once from (`Settings.parallel_copies`).
PARALLEL_COPIES_VAR: Final = ENV_PREFIX + "PARALLEL_COPIES"


@dataclass(frozen=True)
class CopyCap:
    """The cap on copies running at once per subscription and target region, and where it came from (for people)."""

    value: int
    source: str


def copy_cap(flag: str | None, environ: Mapping[str, str]) -> CopyCap:
    """The operator's cap as an offline command models it: `flag` (`--parallel-copies`), else the operator's
    variable, else its default, each read and checked as `Settings` reads it; SettingsError names what is wrong."""
    if flag is not None:
        try:
            value = Settings.model_validate({"parallel_copies": flag}).parallel_copies
        except ValidationError as exc:
            problem = "; ".join(err["msg"] for err in exc.errors(include_url=False))
            raise SettingsError(f"--parallel-copies: {problem}") from exc
        return CopyCap(value, "--parallel-copies")
    raw = environ.get(PARALLEL_COPIES_VAR)
    if raw:
        return CopyCap(Settings.from_env({PARALLEL_COPIES_VAR: raw}).parallel_copies, PARALLEL_COPIES_VAR)
    return CopyCap(Settings().parallel_copies, "the operator's default")
