"""The emulated API's shared vocabulary: resource constants, errors, request paths and RBAC verbs, write options, watches."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any, Final

import kmock

from azsnap.emulator.kubernetes.patching import _matches_fields, _matches_labels

__all__ = ["CRD_GROUP", "CRD_PLURAL"]

CRD_GROUP: Final = "apiextensions.k8s.io"
CRD_PLURAL: Final = "customresourcedefinitions"


def _error(code: int, reason: str, message: str, **details: Any) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=code, reason=reason, message=message, details=details or None)


@dataclasses.dataclass(frozen=True)
class _Target:
    """What a request path addresses: a discovery document (no plural) or a resource, collection or object."""

    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def _parse_path(path: str) -> _Target | None:
    parts = [part for part in path.split("/") if part]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace: str | None = None
    # `namespaces/NS/PLURAL...` is namespaced; `namespaces`, `namespaces/NAME` and `namespaces/NAME/status`
    # address the Namespace resource itself (kmock's parser fails on exactly these).
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return _Target(group, version)
    return _Target(group, version, rest[0], namespace, rest[1] if len(rest) > 1 else None, "/".join(rest[2:]) or None)


def _action(method: str, target: _Target | None, query: Mapping[str, str]) -> kmock.action | None:
    if target is None or target.plural is None:
        return None
    if method == "GET":
        if query.get("watch") in ("true", "1"):
            return kmock.action.WATCH
        return kmock.action.FETCH if target.name else kmock.action.LIST
    if method == "POST" and not target.name:
        return kmock.action.CREATE
    if method in ("PATCH", "PUT") and target.name:
        return kmock.action.UPDATE
    if method == "DELETE" and target.name:
        return kmock.action.DELETE
    return None


@dataclasses.dataclass(eq=False)
class _Watch:
    group: str
    plural: str
    namespace: str | None
    name: str | None
    labels: str
    fields: str
    queue: asyncio.Queue[Any] = dataclasses.field(default_factory=asyncio.Queue)

    def wants(self, group: str, plural: str, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata", {})
        return (
            (group, plural) == (self.group, self.plural)
            and (self.namespace is None or meta.get("namespace") == self.namespace)
            and (self.name is None or meta.get("name") == self.name)
            and _matches_labels(meta.get("labels") or {}, self.labels)
            and _matches_fields(obj, self.fields)
        )


_Key = tuple[str, str, str | None, str]  # group, plural, namespace, name


@dataclasses.dataclass(frozen=True)
class _Writing:
    """How a write is checked: `fieldValidation` (Strict, Warn, Ignore) and where its warnings go."""

    field_validation: str
    warnings: list[str]

    def options(self) -> dict[str, Any]:
        return {"field_validation": self.field_validation, "warnings": self.warnings}


def _rbac_verb(method: str, target: _Target, query: Mapping[str, str]) -> str:
    """The verb RBAC checks for a request (`kubectl auth can-i` terms)."""
    if method == "GET":
        if query.get("watch") in ("true", "1"):
            return "watch"
        return "get" if target.name else "list"
    named = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    if method == "DELETE" and not target.name:
        return "deletecollection"
    return named.get(method, method.lower())
