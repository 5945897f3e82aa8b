"""ARM conventions: error bodies, resource IDs, location names, and the name, tag and SKU rules Azure enforces."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

__all__ = [
    "ArmError",
    "ParsedId",
    "check_sku",
    "check_snapshot_name",
    "check_tags",
    "normalize_location",
    "parse_source_id",
    "resource_id",
]

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")
_TAG_FORBIDDEN: Final = frozenset("<>%&\\?/")
MAX_TAGS: Final = 50
MAX_TAG_KEY: Final = 512
MAX_TAG_VALUE: Final = 256

_SOURCE_RE: Final = re.compile(
    r"^/?subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.Compute/(?P<type>disks|snapshots)/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)


class ArmError(Exception):
    """An answer in ARM's error shape: `{"error": {"code", "message", "target"?, "details"?}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
        arm_level: bool = False,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.details = details
        self.headers = dict(headers or {})
        #: Answered by ARM itself before the resource provider saw the call: no rate-limit headers (as recorded).
        self.arm_level = arm_level

    def body(self) -> dict[str, Any]:
        return {"error": self.error_object()}

    def error_object(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target is not None:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return error


def resource_id(subscription_id: str, resource_group: str, kind: str, name: str) -> str:
    """`/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}`."""
    return f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}/providers/Microsoft.Compute/{kind}/{name}"


def normalize_location(location: str) -> str:
    """ARM's canonical region name: `West Europe` → `westeurope`."""
    return location.replace(" ", "").lower()


class ParsedId:
    """The parts of a disk or snapshot ID (a leading slash is optional, as the official examples show)."""

    def __init__(self, subscription_id: str, resource_group: str, kind: str, name: str) -> None:
        self.subscription_id = subscription_id
        self.resource_group = resource_group
        self.kind = kind.lower()
        self.name = name


def parse_source_id(value: object) -> ParsedId:
    """Parse `creationData.sourceResourceId`; 400 `InvalidParameter` when it is not a disk or snapshot ID."""
    match = _SOURCE_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{value}' of parameter 'creationData.sourceResourceId' is invalid: "
            "it must be the resource ID of a managed disk or snapshot.",
            target="creationData.sourceResourceId",
        )
    return ParsedId(match["sub"], match["rg"], match["type"], match["name"])


def check_snapshot_name(name: str) -> None:
    """Azure's rule for disk and snapshot names; 400 `InvalidResourceName` otherwise."""
    if not _NAME_RE.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 80 characters long. It must begin with a "
            "word character, and it must end with a word character or with '_'. The name may contain word "
            "characters or '.', '-', '_'.",
        )


def check_tags(tags: object) -> dict[str, str]:
    """ARM's tag rules: an object of at most 50 string pairs, keys ≤ 512 characters without `<>%&\\?/`."""
    if tags is None:
        return {}
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ArmError(400, "InvalidRequestContent", "The property 'tags' must be an object of string values.")
    if len(tags) > MAX_TAGS:
        raise ArmError(
            400,
            "InvalidTagCount",
            f"The resource has {len(tags)} tags; at most {MAX_TAGS} tags are allowed on a resource.",
        )
    for key, value in tags.items():
        if not key or len(key) > MAX_TAG_KEY:
            raise ArmError(
                400, "InvalidTagNameLength", f"The tag name '{key}' must be 1 to {MAX_TAG_KEY} characters long."
            )
        bad = sorted(_TAG_FORBIDDEN.intersection(key))
        if bad:
            raise ArmError(
                400,
                "InvalidTagNameCharacters",
                f"The tag names '{key}' have reserved characters '{','.join(bad)}' or control characters.",
            )
        if len(value) > MAX_TAG_VALUE:
            raise ArmError(
                400,
                "InvalidTagValueLength",
                f"The tag value of '{key}' is longer than {MAX_TAG_VALUE} characters.",
            )
    return dict(tags)


def check_sku(raw: object, allowed: Iterable[str]) -> str:
    """A request's `sku.name`: one of `allowed`, `Standard_LRS` when the request names none."""
    name = raw.get("name") if isinstance(raw, dict) else None
    if name is None:
        return "Standard_LRS"
    if name not in allowed:
        raise ArmError(
            400,
            "InvalidParameter",
            f"The value '{name}' of parameter 'sku.name' is invalid; use one of {', '.join(sorted(allowed))}.",
            target="sku.name",
        )
    return str(name)
