"""What a policy targets: a disk by ARM ID, a PersistentVolumeClaim by name, or every claim a label selector matches.

The spec's side (the claim name and the selector as the CRD declares them) and the resolution of a policy to its
disks, from the claims and volumes of the policy's namespace as a `ClaimView` shows them. Pure: the view is read,
never fetched here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Annotated, Any, Final, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from azsnap.domain.selectors import LabelSelector, parse_label_selector

__all__ = [
    "CLAIM_NAME_PATTERN",
    "MAX_CLAIM_NAME",
    "TARGET_FIELDS",
    "ClaimSelector",
    "ClaimView",
    "SelectorRequirement",
    "check_claim_name",
    "exactly_one_target",
]

#: A PersistentVolumeClaim's name (an RFC 1123 subdomain), as the API server checks it.
CLAIM_NAME_PATTERN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_CLAIM_NAME: Final = re.compile(CLAIM_NAME_PATTERN)
MAX_CLAIM_NAME: Final = 253
#: The spec's target fields, of which a policy sets exactly one.
TARGET_FIELDS: Final = ("disk", "volumeClaim", "volumeClaimSelector")
#: Bounds shared with the CRD schema (they keep its CEL rules within the API server's cost budget).
MAX_MATCH_LABELS: Final = 32
MAX_EXPRESSIONS: Final = 16
MAX_VALUES: Final = 64
MAX_LABEL_VALUE: Final = 63
MAX_LABEL_KEY: Final = 317


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class SelectorRequirement(_Model):
    """One `matchExpressions` term: a label key, an operator and (for In and NotIn) the values."""

    key: str = Field(min_length=1, max_length=MAX_LABEL_KEY)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[Annotated[str, Field(max_length=MAX_LABEL_VALUE)]] = Field(default_factory=list, max_length=MAX_VALUES)


class ClaimSelector(_Model):
    """A `metav1.LabelSelector` over the PersistentVolumeClaims of the policy's namespace."""

    match_labels: dict[str, str] = Field(default_factory=dict, max_length=MAX_MATCH_LABELS)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list, max_length=MAX_EXPRESSIONS)

    @field_validator("match_labels")
    @classmethod
    def _valid_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            if not key or len(key) > MAX_LABEL_KEY:
                raise ValueError(f"label key {key[:40]!r} must be 1-{MAX_LABEL_KEY} characters")
            if len(value) > MAX_LABEL_VALUE:
                raise ValueError(f"label {key!r}: value must be at most {MAX_LABEL_VALUE} characters")
        return labels

    @property
    def selector(self) -> LabelSelector:
        """The selector, parsed as `metav1.LabelSelector` defines it (the empty selector matches every claim)."""
        return parse_label_selector(self.model_dump(by_alias=True))

    @model_validator(mode="after")
    def _valid_terms(self) -> ClaimSelector:
        self.selector  # noqa: B018  (parsing is the check: values only for In and NotIn, as the API requires)
        return self

    def summary(self) -> str:
        """A short text of the selector (`app=pg,tier in (a,b)`), as kubectl writes selectors."""
        terms = [f"{k}={v}" for k, v in sorted(self.match_labels.items())]
        for term in self.match_expressions:
            if term.operator in ("In", "NotIn"):
                terms.append(f"{term.key} {term.operator.lower()} ({','.join(sorted(term.values))})")
            else:
                terms.append(term.key if term.operator == "Exists" else f"!{term.key}")
        return ",".join(terms) or "(every claim)"


def check_claim_name(value: str) -> str:
    """The claim name, if it is one the API server accepts; a `ValueError` says why not."""
    if len(value) > MAX_CLAIM_NAME or not _CLAIM_NAME.fullmatch(value):
        raise ValueError(
            f"{value[:60]!r} is not a PersistentVolumeClaim name: at most {MAX_CLAIM_NAME} lower-case letters, "
            "digits, '-' and '.', starting and ending with a letter or digit"
        )
    return value


def exactly_one_target(disk: object, claim: object, selector: object) -> None:
    """Raise a `ValueError` a person can act on unless exactly one of the three targets is set."""
    given = [name for name, value in zip(TARGET_FIELDS, (disk, claim, selector), strict=True) if value is not None]
    if len(given) != 1:
        what = "none" if not given else " and ".join(given)
        raise ValueError(
            "set exactly one of disk (an ARM ID), volumeClaim (a PersistentVolumeClaim of this namespace) and "
            f"volumeClaimSelector (a label selector over this namespace's PersistentVolumeClaims); got {what}"
        )


class ClaimView(Protocol):
    """The PersistentVolumeClaims and PersistentVolumes azsnap knows of, as the API server returns them."""

    def claim(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The claim, or None when it does not exist."""
        ...

    def claims(self, namespace: str) -> Iterable[Mapping[str, Any]]:
        """Every claim of the namespace."""
        ...

    def volume(self, name: str) -> Mapping[str, Any] | None:
        """The PersistentVolume, or None when it does not exist."""
        ...


#: At most this many entries in `status.disks` (the rest are counted in `status.disksNotShown`).
MAX_DISK_ENTRIES: Final = 50
DiskState = Literal["Ready", "Retrying", "Stalled", "Unresolved"]
#: Order of `status.disks`: the worst first.
_STATE_RANK: Final = {"Stalled": 0, "Unresolved": 1, "Retrying": 2, "Ready": 3}


class DiskEntry(_Model):
    """One claim of a volumeClaim or volumeClaimSelector policy in `status.disks`: its disk and its accounting."""

    claim: str
    disk: str | None = None
    state: DiskState
    reason: str = ""
    message: str = ""
    last_snapshot_time: datetime | None = None
    last_successful_snapshot_time: datetime | None = None
    count: int | None = None
    missed: int | None = None
    disk_unique_id: str | None = None
    slots_accounted_until: datetime | None = None
    last_on_demand_token: str | None = None
    #: This disk's copy accounting per copy target (domain/copy_status.py).
    copies: list[dict[str, Any]] | None = None

    def rank(self) -> tuple[int, int, str]:
        """Sort key of `status.disks`: not Ready first, then the most missed slots, then by claim."""
        return (_STATE_RANK[self.state], -(self.missed or 0), self.claim)


def bounded_entries(entries: Iterable[DiskEntry]) -> tuple[list[DiskEntry], int]:
    """The entries `status.disks` shows (worst first, at most `MAX_DISK_ENTRIES`) and how many it leaves out."""
    ordered = sorted(entries, key=DiskEntry.rank)
    return ordered[:MAX_DISK_ENTRIES], max(len(ordered) - MAX_DISK_ENTRIES, 0)


class ClaimTargets(_Model):
    """The spec's claim targets (the policy model adds `disk` and checks that exactly one of the three is set)."""

    volume_claim: Annotated[str, AfterValidator(check_claim_name)] | None = None
    volume_claim_selector: ClaimSelector | None = None


class ClaimStatus(_Model):
    """The status fields of claim targets: the entries (worst first, bounded) and the aggregate for `kubectl get`."""

    disks: list[DiskEntry] | None = None
    disks_not_shown: int | None = None
    #: The slot accounting of the disks `disks` leaves out, `<key>=<watermark>/<missed>` (domain.disk_accounts).
    disk_accounts: list[str] | None = None
    #: Disks Ready of all the policy targets, `3/4`.
    disks_ready: str | None = None
