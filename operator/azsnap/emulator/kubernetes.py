"""An in-process Kubernetes API server (kmock's emulator, extended) for kopf, kubectl, the e2e tests and the demo.

kmock 0.8 serves discovery and a simple object store. kopf and kubectl need more of the real API server's
contract, so this module keeps its own store behind kmock's request routing and implements:

- a global `resourceVersion` bumped on every write; lists and watch events carry it; a watch resumes from it
  (or gets `410 Gone` when the version is older than the retained history);
- `uid`, `creationTimestamp`, `generation` (bumped on spec changes and on deletion, never on status or
  metadata) and `generateName`; 201 for create, 409 on a name clash or a stale `resourceVersion`;
- merge patch, JSON patch (422 when a `test` op fails: kopf adds finalizers that way), strategic merge patch
  for built-in kinds (as a merge patch; custom resources refuse it with 415 as the API server does),
  server-side apply (`application/apply-patch+yaml`, as a merge patch that creates the object if missing:
  no field ownership) and PUT;
- the status subresource: the main endpoint ignores `.status`, `/status` changes only `.status`;
- deletion with finalizers: `deletionTimestamp` is set and the object goes once its finalizers are gone;
- label and field selectors on list and watch, `timeoutSeconds` and `sendInitialEvents` on watch;
- discovery for the built-ins kopf needs (`v1/namespaces`, `v1/events`, `v1/configmaps`, CRDs), kopf's
  peering resources on request, and every CRD created through the API (or `install_crd`);
- `GET /api/v1/namespaces`, on which kmock's own path parser crashes.

Behaviour of kmock kept: user reactions (`kube['patch', kube.resource('azsnap.io/v1alpha1/snapshotpolicies')]
<< 500`) take priority over the emulated API, and recent requests stay available for assertions (only the last
`history` of them, because kmock's matching cost grows with every request it keeps).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import contextvars
import copy
import dataclasses
import hashlib
import json
import logging
import random
import re
import signal
import string
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, NoReturn

import aiohttp.web
import attrs
import kmock
import kopf
import yaml
from kmock._internal.rendering import Response, StreamingError  # kmock is pinned; not exported for typing

from azsnap.clock import Clock, WallClock
from azsnap.domain.models import API_GROUP, API_VERSION, KIND, PLURAL

__all__ = [
    "KubeApiServer",
    "KubeEmulator",
    "OperatorRun",
    "kopf_settings_for_emulator",
    "run_operator",
]

logger = logging.getLogger(__name__)

#: The SnapshotPolicy short name, as in the CRD; replaced by the CRD's own names once a CRD is installed.
SNAPSHOT_POLICY_SHORT_NAMES: Final = ("snappol",)
CRD_GROUP: Final = "apiextensions.k8s.io"
CRD_PLURAL: Final = "customresourcedefinitions"
#: kopf re-lists a watch after this long without an event; the emulator sends no bookmarks.
INACTIVITY_TIMEOUT: Final = 10 * 365 * 24 * 3600.0
_ALL_VERBS: Final = ("create", "delete", "get", "list", "patch", "update", "watch")
_STATUS_VERBS: Final = ("get", "patch", "update")
_NAME_ALPHABET: Final = string.ascii_lowercase + string.digits
_SERVER_MANAGED: Final = ("uid", "creationTimestamp", "generation", "resourceVersion", "deletionTimestamp")
_CLOSE: Final = object()


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


# ---- JSON merge patch (RFC 7386) and JSON patch (RFC 6902) --------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply a JSON merge patch; returns a new document and leaves both arguments untouched."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class _PatchError(Exception):
    pass


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchError(f"invalid JSON pointer {path!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in path[1:].split("/")]


def _index(container: list[Any], token: str, *, append: bool = False) -> int:
    if append and token == "-":
        return len(container)
    if not token.isdigit() or int(token) > len(container) - (0 if append else 1):
        raise _PatchError(f"index {token!r} is out of range")
    return int(token)


def _parent(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token)]
        else:
            raise _PatchError(f"path /{'/'.join(tokens)} does not exist")
    return node


def _resolve(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent = _parent(doc, tokens)
    if isinstance(parent, dict) and tokens[-1] in parent:
        return parent[tokens[-1]]
    if isinstance(parent, list):
        return parent[_index(parent, tokens[-1])]
    raise _PatchError(f"path /{'/'.join(tokens)} does not exist")


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        parent[tokens[-1]] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, tokens[-1], append=True), value)
    else:
        raise _PatchError(f"cannot add to a scalar at /{'/'.join(tokens)}")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    _resolve(doc, tokens)  # must exist
    if not tokens:
        return None
    parent = _parent(doc, tokens)
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[_index(parent, tokens[-1])]
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    """Apply a JSON patch; raises `ValueError` naming the failed operation (a `test` or a bad path)."""
    if not isinstance(ops, list):
        raise ValueError("a JSON patch must be a list of operations")
    result = copy.deepcopy(doc)
    for number, op in enumerate(ops):
        try:
            kind, tokens = op["op"], _pointer(op["path"])
            if kind == "test":
                if _resolve(result, tokens) != op.get("value"):
                    raise _PatchError(f"test failed: {op['path']} is not {op.get('value')!r}")
            elif kind == "add":
                result = _add(result, tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                result = _remove(result, tokens)
            elif kind == "replace":
                result = _add(_remove(result, tokens), tokens, copy.deepcopy(op["value"]))
            elif kind in ("move", "copy"):
                source = _pointer(op["from"])
                value = copy.deepcopy(_resolve(result, source))
                if kind == "move":
                    result = _remove(result, source)
                result = _add(result, tokens, value)
            else:
                raise _PatchError(f"unknown op {kind!r}")
        except (_PatchError, KeyError, TypeError) as exc:
            raise ValueError(f"JSON patch operation {number}: {exc}") from exc
    return result


# ---- selectors -------------------------------------------------------------------------------------------


def _split_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    terms.append(current.strip())
    return [term for term in terms if term]


_SET_TERM: Final = re.compile(r"^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$")


def _matches_labels(labels: Mapping[str, str], selector: str) -> bool:
    for term in _split_terms(selector):
        if found := _SET_TERM.match(term):
            key, operator, values = found[1], found[2], {v.strip() for v in found[3].split(",")}
            if (labels.get(key) in values) != (operator == "in") or (operator == "in" and key not in labels):
                return False
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (part.strip() for part in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def _field(obj: Mapping[str, Any], path: str) -> str | None:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return None if node is None else str(node)


def _matches_fields(obj: Mapping[str, Any], selector: str) -> bool:
    for term in _split_terms(selector):
        negate = "!=" in term
        key, value = (part.strip() for part in term.replace("!=", "=").replace("==", "=").split("=", 1))
        if (_field(obj, key) == value) == negate:
            return False
    return True


# ---- the emulator ---------------------------------------------------------------------------------------


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


@attrs.define(kw_only=True)
class KubeApiServer(kmock.KubernetesEmulator):
    """kmock's Kubernetes emulator with the API server's contract (see the module docstring); an aiohttp handler."""

    clock: Clock = attrs.field(factory=WallClock)
    history: int = 512
    events_kept: int = 10_000
    peering: bool = False
    seed: int = 0

    _store: dict[_Key, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _log: deque[tuple[int, str, str, str, dict[str, Any]]] = attrs.field(init=False)
    _log_floor: int = attrs.field(default=0, init=False)
    _watches: set[_Watch] = attrs.field(factory=set, init=False)
    _random: random.Random = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # kmock's own store and discovery are replaced, so its fallbacks are not registered: one fallback
        # routes everything, and any reaction a test adds (`kube[...] << ...`) still comes first.
        self._log = deque(maxlen=self.events_kept)
        self._random = random.Random(self.seed)
        self.fallback << self._route
        self.declare(
            "", "v1", "namespaces", "Namespace", namespaced=False, short_names=("ns",), subresources=("status",)
        )
        self.declare("", "v1", "events", "Event", namespaced=True, short_names=("ev",))
        self.declare("", "v1", "configmaps", "ConfigMap", namespaced=True, short_names=("cm",))
        self.declare(CRD_GROUP, "v1", CRD_PLURAL, "CustomResourceDefinition", namespaced=False, short_names=("crd",))
        self.declare(
            API_GROUP,
            API_VERSION,
            PLURAL,
            KIND,
            namespaced=True,
            short_names=SNAPSHOT_POLICY_SHORT_NAMES,
            categories=("all",),
            subresources=("status",),
        )
        if self.peering:
            self.declare("kopf.dev", "v1", "kopfpeerings", "KopfPeering", namespaced=True)
            self.declare("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering", namespaced=False)
        self._store[("", "namespaces", None, "default")] = self._fresh(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}, None
        )

    def close_watches(self) -> None:
        """End every open watch stream (clients reconnect if they are still running)."""
        for watch in self._watches:
            watch.queue.put_nowait(_CLOSE)

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock's own entry point parses paths it cannot handle (`/api/v1/namespaces`), so this one parses,
        # records a bounded history, and renders errors as Kubernetes `Status` objects.
        body = await raw_request.read()
        target = _parse_path(raw_request.path)
        query = dict(raw_request.query)
        try:
            data = self._decode(raw_request.content_type, body)
        except ValueError as exc:
            return self._status_response(_error(400, "BadRequest", f"the request body is not valid: {exc}"))
        request = kmock.Request(
            id=len(self._requests),
            raw_request=raw_request,
            url=raw_request.url,
            method=raw_request.method,
            params=query,
            headers=dict(raw_request.headers),
            cookies=dict(raw_request.cookies),
            data=data,
            body=body,
            text=body.decode("utf-8", errors="replace"),
            action=_action(raw_request.method, target, query),
            resource=None if target is None else kmock.resource(target.group, target.version, target.plural),
            namespace=None if target is None else target.namespace,
            name=None if target is None else target.name,
            subresource=None if target is None else target.subresource,
        )
        self._requests.append(request)
        if len(self._requests) > self.history:
            del self._requests[: len(self._requests) - self.history]
        try:
            return await kmock.RawHandler._handle(self, request)  # kmock's routing, without its store
        except StreamingError as exc:  # the stream already started: its status cannot change any more
            response: aiohttp.web.StreamResponse = exc.args[0]
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        except kmock.KubernetesError as exc:
            return self._status_response(exc)
        except Exception as exc:
            logger.exception("the Kubernetes emulator failed on %s %s", raw_request.method, raw_request.path)
            if self._errors:
                self._errors[-1].append(exc)
            return self._status_response(_error(500, "InternalError", f"{type(exc).__name__}: {exc}"))

    @staticmethod
    def _decode(content_type: str, body: bytes) -> Any:
        if not body:
            return None
        if "yaml" in content_type:
            return yaml.safe_load(body)
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise ValueError(str(exc)) from exc

    @staticmethod
    def _status_response(exc: kmock.KubernetesError) -> aiohttp.web.Response:
        return aiohttp.web.json_response(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": exc.message,
                "reason": exc.reason,
                "details": exc.details or {},
                "code": exc.status,
            },
            status=exc.status,
        )

    async def _route(self, request: kmock.Request) -> Any:
        path = request.url.path.rstrip("/") or "/"
        method = request.method.value
        target = _parse_path(path)
        if method == "GET" and target is None:
            return Response(status=200, payload=self._root_document(path))
        if target is None:
            raise _error(404, "NotFound", f"the server could not find the requested resource: {path}")
        if target.plural is None:
            if method != "GET":
                raise _error(405, "MethodNotAllowed", f"{method} is not allowed on {path}")
            return Response(status=200, payload=self._version_document(target))
        result = await self._resource_request(request, method, target)
        # Always an explicit status: kmock keeps the last one it rendered on the reaction otherwise.
        return result if isinstance(result, Response) else Response(status=200, payload=result)

    # ---- discovery -----------------------------------------------------------------------------------------

    def declare(
        self,
        group: str,
        version: str,
        plural: str,
        kind: str,
        *,
        namespaced: bool,
        singular: str | None = None,
        short_names: Iterable[str] = (),
        categories: Iterable[str] = (),
        subresources: Iterable[str] = (),
    ) -> None:
        """Serve a resource (discovery, storage, list and watch)."""
        for g, v, p, _ in self.served():
            if (g, p) == (group, plural):
                del self.resources[kmock.resource(g, v, p)]
        self.resources[kmock.resource(group, version, plural)] = kmock.ResourceInfo(
            namespaced=namespaced,
            kind=kind,
            singular=singular or kind.lower(),
            verbs=set(_ALL_VERBS),
            shortnames=set(short_names),
            categories=set(categories),
            subresources=set(subresources),
        )

    def _declare_crd(self, crd: Mapping[str, Any]) -> None:
        spec, names = crd.get("spec", {}), crd.get("spec", {}).get("names", {})
        for entry in spec.get("versions", []):
            if entry.get("served", True):
                self.declare(
                    spec["group"],
                    entry["name"],
                    names["plural"],
                    names["kind"],
                    namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                    singular=names.get("singular"),
                    short_names=names.get("shortNames", ()),
                    categories=names.get("categories", ()),
                    subresources=entry.get("subresources", {}).keys(),
                )

    def served(self) -> list[tuple[str, str, str, kmock.ResourceInfo]]:
        """The declared resources: group, version, plural and kmock's discovery info."""
        return [
            (str(res.group), str(res.version), str(res.plural), self.resources[res])
            for res in self.resources
            if isinstance(res, kmock.resource)
        ]

    def _info(self, group: str, version: str, plural: str) -> kmock.ResourceInfo:
        key = kmock.resource(group, version, plural)
        if key not in self.resources:
            raise _error(
                404,
                "NotFound",
                f"the server could not find the requested resource ({plural}.{group or 'core'}/{version})",
            )
        return self.resources[key]

    def _versions(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for group, version, _, _ in self.served():
            groups.setdefault(group, [])
            if version not in groups[group]:
                groups[group].append(version)
        return groups

    def _root_document(self, path: str) -> Any:
        groups = self._versions()
        if path == "/version":
            return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-azsnap-emulator", "platform": "linux/amd64"}
        if path == "/api":
            return {"kind": "APIVersions", "apiVersion": "v1", "versions": groups.get("", ["v1"]),
                    "serverAddressByClientCIDRs": []}  # fmt: skip
        if path == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1",
                    "groups": [self._group(name, versions) for name, versions in sorted(groups.items()) if name]}  # fmt: skip
        if path.startswith("/apis/") and path.count("/") == 2 and path[len("/apis/") :] in groups:
            name = path[len("/apis/") :]
            return self._group(name, groups[name])
        if path == "/":
            paths = ["/api", "/apis", "/version", "/openapi/v3"] + [f"/apis/{name}" for name in groups if name]
            return {"paths": sorted(paths)}
        if path.startswith("/openapi/v3"):
            return self._openapi(path[len("/openapi/v3/") :])
        raise _error(404, "NotFound", f"the server could not find the requested resource: {path}")

    def _openapi(self, group_version: str) -> Any:
        # Just enough OpenAPI v3 for kubectl to see that PATCH takes `fieldValidation` and so to leave validation
        # to the server (which accepts any fields: there are no schemas here) instead of refusing to apply.
        documents = {
            (f"apis/{group}/{version}" if group else f"api/{version}"): (group, version)
            for group, version, _, _ in self.served()
        }
        if not group_version:
            served = sorted((group, version, plural, str(info.kind)) for group, version, plural, info in self.served())
            digest = hashlib.sha256(json.dumps(served).encode()).hexdigest()[:16]  # kubectl caches by it
            return {"paths": {key: {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest}"} for key in documents}}
        if group_version not in documents:
            raise _error(404, "NotFound", f"no OpenAPI document for {group_version}")
        paths: dict[str, Any] = {}
        for group, version, plural, info in self.served():
            if documents[group_version] != (group, version):
                continue
            prefix = f"/{group_version}" + ("/namespaces/{namespace}" if info.namespaced else "")
            gvk = {"group": group, "version": version, "kind": info.kind}
            operation = {
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-group-version-kind": gvk,
            }
            paths[f"{prefix}/{plural}"] = {"post": dict(operation, **{"x-kubernetes-action": "post"})}
            paths[f"{prefix}/{plural}/{{name}}"] = {
                verb: dict(operation, **{"x-kubernetes-action": verb}) for verb in ("put", "patch")
            }
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": paths,
                "components": {"schemas": {}}}  # fmt: skip

    @staticmethod
    def _group(name: str, versions: list[str]) -> dict[str, Any]:
        entries = [{"groupVersion": f"{name}/{version}", "version": version} for version in versions]
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": name,
            "versions": entries,
            "preferredVersion": entries[0],
        }

    def _version_document(self, target: _Target) -> Any:
        groups = self._versions()
        if target.group not in groups or target.version not in groups[target.group]:
            raise _error(
                404, "NotFound", f"the server could not find the requested resource ({target.group}/{target.version})"
            )
        resources: list[dict[str, Any]] = []
        for group, version, plural, info in sorted(self.served(), key=lambda item: item[2]):
            if (group, version) != (target.group, target.version):
                continue
            entry = {"name": plural, "singularName": info.singular, "namespaced": info.namespaced,
                     "kind": info.kind, "verbs": sorted(info.verbs), "shortNames": sorted(info.shortnames),
                     "categories": sorted(info.categories)}  # fmt: skip
            resources.append(entry)
            for sub in sorted(info.subresources):
                resources.append(
                    dict(entry, name=f"{plural}/{sub}", verbs=list(_STATUS_VERBS), shortNames=[], categories=[])
                )
        group_version = f"{target.group}/{target.version}" if target.group else target.version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}

    # ---- storage --------------------------------------------------------------------------------------------

    def _stored(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._store.get((group, plural, namespace, name))

    @staticmethod
    def _out(obj: Mapping[str, Any], group: str, version: str) -> dict[str, Any]:
        api_version = f"{group}/{version}" if group else version
        return {"apiVersion": api_version, "kind": obj.get("kind"), **copy.deepcopy(dict(obj))}

    def _select(
        self, group: str, plural: str, namespace: str | None, name: str | None, labels: str, fields: str
    ) -> list[dict[str, Any]]:
        matches = [
            obj
            for (g, p, ns, n), obj in self._store.items()
            if (g, p) == (group, plural) and namespace in (None, ns) and name in (None, n)
            and _matches_labels(obj["metadata"].get("labels") or {}, labels) and _matches_fields(obj, fields)
        ]  # fmt: skip
        return matches  # the store keeps creation order

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _now(self) -> str:
        return self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _fresh(self, body: Mapping[str, Any], namespace: str | None) -> dict[str, Any]:
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        for field in (*_SERVER_MANAGED, "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(field, None)
        if namespace is not None:
            meta["namespace"] = namespace
        obj.pop("apiVersion", None)  # added on the way out, in the version asked for
        rv = self._next_rv()
        meta.update(
            uid=str(uuid.UUID(int=self._random.getrandbits(128), version=4)),
            creationTimestamp=self._now(), generation=1, resourceVersion=rv,
        )  # fmt: skip
        return obj

    def _emit(self, kind: str, group: str, plural: str, obj: dict[str, Any]) -> None:
        rv = int(obj["metadata"]["resourceVersion"])
        if len(self._log) == self._log.maxlen:
            self._log_floor = self._log[0][0]
        self._log.append((rv, kind, group, plural, obj))
        for watch in self._watches:
            if watch.wants(group, plural, obj):
                watch.queue.put_nowait((kind, obj))

    def _create(
        self, group: str, version: str, plural: str, namespace: str | None, body: Any, *, dry_run: bool = False
    ) -> dict[str, Any]:
        info = self._info(group, version, plural)
        if not isinstance(body, Mapping) or not isinstance(body.get("metadata", {}), Mapping):
            raise _error(400, "BadRequest", "the object must be a JSON object with an object `metadata`")
        meta = body.get("metadata", {})
        if info.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise _error(
                    400, "BadRequest", "the namespace of the object does not match the namespace of the request"
                )
            namespace = namespace or meta.get("namespace") or "default"
        else:
            namespace = None
        name = meta.get("name")
        if not name and meta.get("generateName"):
            while not name or self._stored(group, plural, namespace, name) is not None:
                name = meta["generateName"] + "".join(self._random.choices(_NAME_ALPHABET, k=5))
        if not name:
            raise _error(422, "Invalid", "metadata.name: Required value: name or generateName is required")
        if self._stored(group, plural, namespace, name) is not None:
            raise _error(
                409, "AlreadyExists", f'{plural}.{group or "core"} "{name}" already exists', name=name, kind=plural
            )
        obj = self._fresh(body, namespace)
        obj["metadata"]["name"] = name
        obj["kind"] = info.kind
        if "status" in info.subresources:
            obj.pop("status", None)
        if (group, plural) == (CRD_GROUP, CRD_PLURAL):
            obj["status"] = {"conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": self._now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "lastTransitionTime": self._now()},
            ]}  # fmt: skip
        if dry_run:
            self._rv -= 1
            return self._out(obj, group, version)
        if namespace is not None and self._stored("", "namespaces", None, namespace) is None:
            self._create("", "v1", "namespaces", None, {"metadata": {"name": namespace}})  # namespaces appear on use
        self._store[(group, plural, namespace, name)] = obj
        if (group, plural) == (CRD_GROUP, CRD_PLURAL):
            self._declare_crd(obj)
        self._emit("ADDED", group, plural, obj)
        return self._out(obj, group, version)

    def _update(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        change: Callable[[dict[str, Any]], Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        info = self._info(group, version, plural)
        namespace = namespace if info.namespaced else None
        if subresource not in (None, *info.subresources):
            raise _error(404, "NotFound", f"{plural} has no subresource {subresource!r}")
        old = self._stored(group, plural, namespace, name)
        if old is None:
            raise _error(404, "NotFound", f'{plural}.{group or "core"} "{name}" not found', name=name, kind=plural)
        try:
            wanted = change(copy.deepcopy(old))
        except ValueError as exc:
            raise _error(422, "Invalid", str(exc), name=name, kind=plural) from exc
        if not isinstance(wanted, dict) or not isinstance(wanted.get("metadata", {}), dict):
            raise _error(422, "Invalid", "the patched object is not a JSON object with an object `metadata`")
        wanted_rv = wanted.get("metadata", {}).get("resourceVersion")
        if wanted_rv not in (None, old["metadata"]["resourceVersion"]):
            raise _error(
                409, "Conflict",
                f'Operation cannot be fulfilled on {plural}.{group or "core"} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again", name=name, kind=plural,
            )  # fmt: skip
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in wanted:
                new["status"] = wanted["status"]
            else:
                new.pop("status", None)
        else:
            new = wanted
            if "status" in info.subresources:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        meta = new.setdefault("metadata", {})
        for field in (*_SERVER_MANAGED, "deletionGracePeriodSeconds", "name", "namespace"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        new["kind"] = info.kind
        new.pop("apiVersion", None)
        old_finalizers = set(old["metadata"].get("finalizers") or [])
        if meta.get("deletionTimestamp") and set(meta.get("finalizers") or []) - old_finalizers:
            raise _error(
                422,
                "Invalid",
                "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted",
            )
        if new == old:
            return self._out(old, group, version)  # no-op writes keep the version and notify nobody
        if _spec(new) != _spec(old):
            meta["generation"] = int(old["metadata"].get("generation", 1)) + 1
        meta["resourceVersion"] = self._next_rv()
        if dry_run:
            self._rv -= 1
            return self._out(new, group, version)
        self._store[(group, plural, namespace, name)] = new
        if (group, plural) == (CRD_GROUP, CRD_PLURAL):
            self._declare_crd(new)
        self._emit("MODIFIED", group, plural, new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(group, plural, namespace, name)
        return self._out(new, group, version)

    def _delete(
        self,
        group: str,
        version: str,
        plural: str,
        namespace: str | None,
        name: str,
        options: Any,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        info = self._info(group, version, plural)
        namespace = namespace if info.namespaced else None
        old = self._stored(group, plural, namespace, name)
        if old is None:
            raise _error(404, "NotFound", f'{plural}.{group or "core"} "{name}" not found', name=name, kind=plural)
        preconditions = (options.get("preconditions") if isinstance(options, Mapping) else None) or {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) not in (None, old["metadata"].get(field)):
                raise _error(
                    409,
                    "Conflict",
                    f"Precondition failed: {field} in precondition does not match the object",
                    name=name,
                    kind=plural,
                )
        if dry_run:
            return self._out(old, group, version)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return self._out(old, group, version)
            new = copy.deepcopy(old)
            new["metadata"].update(
                deletionTimestamp=self._now(), deletionGracePeriodSeconds=0,
                generation=int(old["metadata"].get("generation", 1)) + 1, resourceVersion=self._next_rv(),
            )  # fmt: skip
            self._store[(group, plural, namespace, name)] = new
            self._emit("MODIFIED", group, plural, new)
            return self._out(new, group, version)
        return self._out(self._remove(group, plural, namespace, name), group, version)

    def _remove(self, group: str, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        gone = copy.deepcopy(self._store.pop((group, plural, namespace, name)))
        gone["metadata"]["resourceVersion"] = self._next_rv()
        self._emit("DELETED", group, plural, gone)
        return gone

    # ---- the resource endpoints -------------------------------------------------------------------------------

    async def _resource_request(self, request: kmock.Request, method: str, target: _Target) -> Any:
        assert target.plural is not None
        group, version, plural, name = target.group, target.version, target.plural, target.name
        info = self._info(group, version, plural)
        namespace = target.namespace if info.namespaced else None
        query = request.params
        dry_run = "dryRun" in query
        if method == "GET" and query.get("watch") in ("true", "1"):
            return Response(
                status=200, headers={"Content-Type": "application/json"},
                payload=self._watch(group, version, plural, namespace, name, query),
            )  # fmt: skip
        if method == "GET" and name is None:
            items = [
                self._out(obj, group, version)
                for obj in self._select(group, plural, namespace, None, query.get("labelSelector", ""), query.get("fieldSelector", ""))
            ]  # fmt: skip
            return {"kind": f"{info.kind}List", "apiVersion": f"{group}/{version}" if group else version,
                    "metadata": {"resourceVersion": str(self._rv)}, "items": items}  # fmt: skip
        if method == "GET":
            found = self._stored(group, plural, namespace, str(name))
            if found is None or (target.subresource not in (None, *info.subresources)):
                raise _error(404, "NotFound", f'{plural}.{group or "core"} "{name}" not found', name=name, kind=plural)
            return self._out(found, group, version)
        if method == "POST" and name is None:
            return Response(
                status=201, payload=self._create(group, version, plural, namespace, request.data, dry_run=dry_run)
            )
        if method == "DELETE" and name is not None:
            return self._delete(group, version, plural, namespace, name, request.data, dry_run=dry_run)
        if method == "PUT" and name is not None:
            body = request.data
            if not isinstance(body, dict):
                raise _error(400, "BadRequest", "the object must be a JSON object")
            return self._update(
                group,
                version,
                plural,
                namespace,
                name,
                lambda old: body,
                subresource=target.subresource,
                dry_run=dry_run,
            )
        if method == "PATCH" and name is not None:
            return self._patch(request, info, group, version, plural, namespace, name, target.subresource, dry_run)
        raise _error(405, "MethodNotAllowed", f"{method} is not allowed on {request.url.path}")

    def _patch(
        self, request: kmock.Request, info: kmock.ResourceInfo, group: str, version: str, plural: str,
        namespace: str | None, name: str, subresource: str | None, dry_run: bool,
    ) -> Any:  # fmt: skip
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch = request.data
        builtin = group in ("", CRD_GROUP)
        if content_type == "application/json-patch+json":
            return self._update(
                group,
                version,
                plural,
                namespace,
                name,
                lambda old: json_patch(old, patch),
                subresource=subresource,
                dry_run=dry_run,
            )
        if content_type == "application/merge-patch+json" or (
            content_type == "application/strategic-merge-patch+json" and builtin
        ):
            return self._update(
                group,
                version,
                plural,
                namespace,
                name,
                lambda old: merge_patch(old, patch),
                subresource=subresource,
                dry_run=dry_run,
            )
        if content_type == "application/apply-patch+yaml":
            if (
                self._stored(group, plural, namespace if info.namespaced else None, name) is None
                and subresource is None
            ):
                body = merge_patch({"metadata": {"name": name}}, patch)
                return Response(
                    status=201, payload=self._create(group, version, plural, namespace, body, dry_run=dry_run)
                )
            return self._update(
                group,
                version,
                plural,
                namespace,
                name,
                lambda old: merge_patch(old, patch),
                subresource=subresource,
                dry_run=dry_run,
            )
        raise _error(
            415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type or 'none'}"
        )

    async def _watch(
        self, group: str, version: str, plural: str, namespace: str | None, name: str | None, query: Mapping[str, str]
    ) -> AsyncIterator[Any]:
        since = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents") == "true"
        watch = _Watch(group, plural, namespace, name, query.get("labelSelector", ""), query.get("fieldSelector", ""))
        backlog: list[tuple[str, dict[str, Any]]]
        if since in ("", "0") or initial:
            backlog = [
                ("ADDED", obj) for obj in self._select(group, plural, namespace, name, watch.labels, watch.fields)
            ]
        elif not since.isdigit() or int(since) < self._log_floor:
            backlog = [("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                  "reason": "Expired", "message": f"too old resource version: {since}"})]  # fmt: skip
        else:
            backlog = [(kind, obj) for rv, kind, g, p, obj in self._log if rv > int(since) and watch.wants(g, p, obj)]
        if initial:
            bookmark = {"kind": self._info(group, version, plural).kind, "metadata": {
                "resourceVersion": str(self._rv), "annotations": {"k8s.io/initial-events-end": "true"}}}  # fmt: skip
            backlog.append(("BOOKMARK", bookmark))
        self._watches.add(watch)
        loop = asyncio.get_running_loop()
        timeout = query.get("timeoutSeconds", "")
        deadline = loop.time() + float(timeout) if timeout.replace(".", "", 1).isdigit() else None
        try:
            yield b""  # send the headers now: the client waits for them before anything happens
            for kind, obj in backlog:
                yield {"type": kind, "object": obj if kind in ("ERROR", "BOOKMARK") else self._out(obj, group, version)}
                if kind == "ERROR":
                    return
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        item = await watch.queue.get()
                except TimeoutError:
                    return
                if item is _CLOSE:
                    return
                kind, obj = item
                yield {"type": kind, "object": self._out(obj, group, version)}
        finally:
            self._watches.discard(watch)


class KubeEmulator:
    """The emulated Kubernetes API as tests and the demo use it: a URL, a kubeconfig, direct object access.

    `api` is the kmock handler: add reactions to it (`kube.api[...] << 503`) or look at its recent requests.
    """

    def __init__(self, api: KubeApiServer, url: str) -> None:
        self.api = api
        self.url = url
        self.peering: bool = api.peering

    # ---- serving -----------------------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def serve(cls, host: str = "127.0.0.1", port: int = 0, **options: Any) -> AsyncIterator[KubeEmulator]:
        """Serve over plain HTTP on `host:port` (0: any free port) until the block exits.

        `options` go to `KubeApiServer`: `clock`, `peering` (serve kopf's peering resources), `history`, `seed`.
        """
        api = KubeApiServer(**options)
        async with api, kmock.Server(api, host=host, port=port or None) as server:
            try:
                yield cls(api, str(server.url).rstrip("/"))
            finally:
                api.close_watches()  # or aiohttp waits for the streams to end on shutdown

    def write_kubeconfig(self, path: Path | str, *, namespace: str = "default") -> Path:
        """Write a kubeconfig (plain HTTP, no credentials) for kubectl and the `kubernetes` client."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "azsnap-emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "azsnap-emulator", "user": {}}],
            "contexts": [
                {
                    "name": "azsnap-emulator",
                    "context": {"cluster": "azsnap-emulator", "user": "azsnap-emulator", "namespace": namespace},
                }
            ],
            "current-context": "azsnap-emulator",
            "preferences": {},
        }
        target = Path(path)
        target.write_text(yaml.safe_dump(config, sort_keys=False))
        return target

    def _resource_for(self, manifest: Mapping[str, Any]) -> tuple[str, str, str]:
        group, _, version = str(manifest.get("apiVersion", "")).rpartition("/")
        for g, v, plural, info in self.api.served():
            if (g, v) == (group, version) and info.kind == manifest.get("kind"):
                return group, version, plural
        raise _error(404, "NotFound", f"no resource serves {manifest.get('apiVersion')} {manifest.get('kind')}")

    def apply(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create the object, or merge the manifest into the existing one (as `kubectl apply` would; no status)."""
        group, version, plural = self._resource_for(manifest)
        info = self.api._info(group, version, plural)
        meta = manifest.get("metadata", {})
        namespace = (meta.get("namespace") or "default") if info.namespaced else None
        if meta.get("name") and self.api._stored(group, plural, namespace, meta["name"]) is not None:
            return copy.deepcopy(
                self.api._update(
                    group, version, plural, namespace, meta["name"], lambda old: merge_patch(old, manifest)
                )
            )
        return copy.deepcopy(self.api._create(group, version, plural, namespace, manifest))

    def patch(
        self, group: str, version: str, plural: str, namespace: str | None, name: str,
        patch: Mapping[str, Any], *, subresource: str | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Merge-patch an object (`subresource="status"` to write the status)."""
        self.api._info(group, version, plural)
        return copy.deepcopy(
            self.api._update(
                group, version, plural, namespace, name, lambda old: merge_patch(old, patch), subresource=subresource
            )
        )

    def delete(self, group: str, version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        """Delete an object (it stays, with a `deletionTimestamp`, while it has finalizers)."""
        self.api._info(group, version, plural)
        return copy.deepcopy(self.api._delete(group, version, plural, namespace, name, None))

    def get(self, group: str, version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The object as the API would return it, or None."""
        obj = self.api._stored(group, plural, namespace, name)
        return None if obj is None else self.api._out(obj, group, version)

    def list(
        self, group: str, version: str, plural: str, namespace: str | None = None, *, labels: str = "", fields: str = ""
    ) -> builtins.list[dict[str, Any]]:
        """Objects of a resource (all namespaces when `namespace` is None), oldest first."""
        return [
            self.api._out(obj, group, version)
            for obj in self.api._select(group, plural, namespace, None, labels, fields)
        ]

    def events(self, namespace: str | None = None) -> builtins.list[dict[str, Any]]:
        """Kubernetes Events (`v1/events`), oldest first."""
        return self.list("", "v1", "events", namespace)

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion handed out."""
        return self.api._rv

    def declare(self, group: str, version: str, plural: str, kind: str, **info: Any) -> None:
        """Serve one more resource; see `KubeApiServer.declare`."""
        self.api.declare(group, version, plural, kind, **info)

    def install_crd(self, crd: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update a CustomResourceDefinition, which declares the resource it defines."""
        return self.apply(crd)


def _spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a generation counts: all but metadata, status and the type fields."""
    return {key: value for key, value in obj.items() if key not in ("metadata", "status", "apiVersion", "kind")}


# ---- kopf against the emulator --------------------------------------------------------------------------------

_SERVER_URL: contextvars.ContextVar[str] = contextvars.ContextVar("azsnap_kube_emulator_url")
_LOGIN_ID: Final = "azsnap-kube-emulator-login"


def _login(**_: Any) -> kopf.ConnectionInfo | None:
    # The URL travels in a context variable: the registry may be shared (kopf's default one) while each
    # operator task runs against its own emulator. Outside `run_operator` this handler offers nothing.
    server = _SERVER_URL.get(None)
    return None if server is None else kopf.ConnectionInfo(server=server, default_namespace="default", priority=100)


def kopf_settings_for_emulator(settings: kopf.OperatorSettings) -> None:
    """Adjust kopf to the emulator: no inactivity re-lists (no bookmarks here), standalone, quiet, never SIGKILL."""
    settings.watching.inactivity_timeout = INACTIVITY_TIMEOUT
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING  # kopf's own per-handler events would only add traffic
    settings.networking.error_backoffs = [0.1, 0.5, 1.0]
    # A cancelled (not stopped) kopf schedules SIGKILL for its own thread after this timeout: in process, that
    # is the test run or the demo; under looptime it fires at once.
    settings.process.ultimate_exiting_timeout = None


@dataclasses.dataclass
class OperatorRun:
    """A kopf operator running in a task against the emulator."""

    task: asyncio.Task[None]
    settings: kopf.OperatorSettings
    registry: kopf.OperatorRegistry
    stop_flag: asyncio.Event

    async def kill(self) -> None:
        """Cancel the operator abruptly, as a crash or `kill -9` would: no graceful shutdown of handlers."""
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def crashed(self) -> BaseException | None:
        """The operator's exception if it ended on its own."""
        if self.task.done() and not self.task.cancelled():
            return self.task.exception()
        return None


@contextlib.asynccontextmanager
async def run_operator(
    registry: kopf.OperatorRegistry | None = None,
    *,
    kube: KubeEmulator,
    namespaces: Collection[str] | None = None,
    settings: kopf.OperatorSettings | None = None,
    memo: Any = None,
    configure: Callable[[kopf.OperatorSettings], None] | None = None,
) -> AsyncIterator[OperatorRun]:
    """Run `kopf.operator()` against `kube` in a task (started when kopf is ready); stop it on exit.

    `registry` defaults to kopf's default one (where `@kopf.on...` decorators register); `namespaces` None
    means cluster-wide. `configure` adjusts the settings after `kopf_settings_for_emulator`.
    """
    registry = registry if registry is not None else kopf.get_default_registry()
    kopf.on.login(registry=registry, id=_LOGIN_ID)(_login)  # deduplicated by id on every later start
    settings = settings if settings is not None else kopf.OperatorSettings()
    kopf_settings_for_emulator(settings)
    if configure is not None:
        configure(settings)
    stop_flag, ready_flag = asyncio.Event(), asyncio.Event()
    token = _SERVER_URL.set(kube.url)
    try:
        task = asyncio.create_task(
            kopf.operator(
                registry=registry, settings=settings, memo=memo, standalone=not kube.peering,
                clusterwide=not namespaces, namespaces=list(namespaces or ()),
                stop_flag=stop_flag, ready_flag=ready_flag,
            ),
            name="kopf operator against the Kubernetes emulator",
        )  # fmt: skip
    finally:
        _SERVER_URL.reset(token)
    ready = asyncio.create_task(ready_flag.wait())
    await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    run = OperatorRun(task=task, settings=settings, registry=registry, stop_flag=stop_flag)
    try:
        if task.done():
            _raise_early_exit(task)
        yield run
    finally:
        try:
            if not task.done():
                stop_flag.set()
            if not task.cancelled():
                await task  # re-raises whatever made kopf fail
        finally:
            _forget_signal_handlers()


def _raise_early_exit(task: asyncio.Task[None]) -> NoReturn:
    error = task.exception()
    raise RuntimeError("kopf stopped before it was ready") from error


def _forget_signal_handlers() -> None:
    # kopf installs SIGINT/SIGTERM handlers on the loop and never removes them; a later Ctrl+C would
    # then resolve a future of an operator that is gone.
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
