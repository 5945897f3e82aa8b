"""The `KubeApiServer` kmock handler: request parsing and routing, the resource endpoints, patches and watches."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import random
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal.rendering import Response, StreamingError  # kmock is pinned; not exported for typing

from azsnap.domain.models import API_GROUP, API_VERSION, KIND, PLURAL
from azsnap.emulator.kubernetes.admission import invalid
from azsnap.emulator.kubernetes.patching import json_patch, merge_patch
from azsnap.emulator.kubernetes.protocol import (
    CRD_GROUP,
    CRD_PLURAL,
    _action,
    _error,
    _parse_path,
    _rbac_verb,
    _Target,
    _Watch,
    _Writing,
)
from azsnap.emulator.kubernetes.schema import Cause
from azsnap.emulator.kubernetes.storage import ApiStorage
from azsnap.emulator.kubernetes.tables import render_table, table_version
from azsnap.emulator.kubernetes.volumes import declare_volumes

__all__ = ["SNAPSHOT_POLICY_SHORT_NAMES", "KubeApiServer"]

logger = logging.getLogger(__name__)

#: The SnapshotPolicy short name, as in the CRD; replaced by the CRD's own names once a CRD is installed.
SNAPSHOT_POLICY_SHORT_NAMES: Final = ("snappol",)
_CLOSE: Final = object()
#: The `Warning`s of the request being served (unknown fields, unrecognized formats).
_WARNINGS: contextvars.ContextVar[list[str]] = contextvars.ContextVar("azsnap_kube_warnings")
#: A watch that allows bookmarks gets one this long before its `timeoutSeconds` end, as a real server sends it.
_BOOKMARK_LEAD: Final = 2.0
_JSON_PATCH_FAILED: Final = "the server rejected our request due to an error in our request"
_PATCH_TYPES: Final = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"


@attrs.define(kw_only=True)
class KubeApiServer(ApiStorage):
    """kmock's Kubernetes emulator with the API server's contract (see the package docstring); an aiohttp handler."""

    #: Every resource request by its RBAC terms, (verb, API group, resource or resource/subresource), counted:
    #: what a Role must grant for the traffic seen (discovery, a non-resource URL, is not counted).
    audit: Counter[tuple[str, str, str]] = attrs.field(factory=Counter, init=False)

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
        self.declare("events.k8s.io", "v1", "events", "Event", namespaced=True, short_names=("ev",))
        self.declare("", "v1", "configmaps", "ConfigMap", namespaced=True, short_names=("cm",))
        declare_volumes(self)
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
        if target is not None and target.plural is not None:
            resource = f"{target.plural}/{target.subresource}" if target.subresource else target.plural
            self.audit[(_rbac_verb(raw_request.method, target, query), target.group, resource)] += 1
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
        warnings: list[str] = []
        token = _WARNINGS.set(warnings)
        try:
            response = await kmock.RawHandler._handle(self, request)  # kmock's routing, without its store
            if not response.prepared:
                # kmock keeps headers on its reaction from one answer to the next: set them for this one.
                response.headers.popall("Warning", None)
                for text in warnings:
                    response.headers.add("Warning", f"299 - {json.dumps(text)}")
            return response
        except StreamingError as exc:  # the stream already started: its status cannot change any more
            started: aiohttp.web.StreamResponse = exc.args[0]
            with contextlib.suppress(ConnectionError):
                await started.write_eof()
            return started
        except kmock.KubernetesError as exc:
            return self._status_response(exc)
        except Exception as exc:
            logger.exception("the Kubernetes emulator failed on %s %s", raw_request.method, raw_request.path)
            if self._errors:
                self._errors[-1].append(exc)
            return self._status_response(_error(500, "InternalError", f"{type(exc).__name__}: {exc}"))
        finally:
            _WARNINGS.reset(token)

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

    async def _resource_request(self, request: kmock.Request, method: str, target: _Target) -> Any:
        assert target.plural is not None
        group, version, plural, name = target.group, target.version, target.plural, target.name
        info = self._info(group, version, plural)
        namespace = target.namespace if info.namespaced else None
        query = request.params
        dry_run = "dryRun" in query
        writing = _Writing(query.get("fieldValidation", "Warn"), _WARNINGS.get())
        table = table_version(request.headers.get("Accept", "")) if method == "GET" else None
        if method == "GET" and query.get("watch") in ("true", "1"):
            return Response(
                status=200, headers={"Content-Type": "application/json"},
                payload=self._watch(group, version, plural, namespace, name, query),
            )  # fmt: skip
        if method == "GET" and name is None:
            # A real server lists in key order (namespace, then name), not in creation order.
            selected = sorted(
                self._select(group, plural, namespace, None, query.get("labelSelector", ""), query.get("fieldSelector", "")),
                key=lambda obj: (obj["metadata"].get("namespace") or "", obj["metadata"]["name"]),
            )  # fmt: skip
            items = [self._out(obj, group, version) for obj in selected]
            if table:
                return self._table(group, version, plural, items, str(self._rv), table, query)
            return {"kind": f"{info.kind}List", "apiVersion": f"{group}/{version}" if group else version,
                    "metadata": {"resourceVersion": str(self._rv)}, "items": items}  # fmt: skip
        if method == "GET":
            found = self._stored(group, plural, namespace, str(name))
            if found is None or (target.subresource not in (None, *info.subresources)):
                raise _error(404, "NotFound", f'{plural}.{group or "core"} "{name}" not found', name=name, kind=plural)
            if table:
                return self._table(group, version, plural, [self._out(found, group, version)],
                                   str(found["metadata"]["resourceVersion"]), table, query)  # fmt: skip
            return self._out(found, group, version)
        if method == "POST" and name is None:
            created = self._create(
                group, version, plural, namespace, request.data, dry_run=dry_run, **writing.options()
            )
            return Response(status=201, payload=created)
        if method == "DELETE" and name is None:
            return self._delete_collection(group, version, plural, namespace, query, dry_run=dry_run)
        if method == "DELETE" and name is not None:
            gone = self._delete(group, version, plural, namespace, name, request.data, dry_run=dry_run)
            if gone["metadata"].get("deletionTimestamp") or dry_run:
                return gone  # held by finalizers: the object, with its deletionTimestamp
            return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                    "details": {"name": name, "group": group, "kind": plural, "uid": gone["metadata"]["uid"]}}  # fmt: skip
        if method == "PUT" and name is not None:
            body = request.data
            if not isinstance(body, dict):
                raise _error(400, "BadRequest", "the object must be a JSON object")
            if self._crd_for(group, plural) is not None and not (body.get("metadata") or {}).get("resourceVersion"):
                # Custom resources refuse unconditional updates.
                cause = Cause(
                    "FieldValueInvalid", "Invalid value: 0: must be specified for an update", "metadata.resourceVersion"
                )
                raise invalid(plural, group, name, [cause])
            updated = self._update(
                group, version, plural, namespace, name, lambda old: body,
                subresource=target.subresource, dry_run=dry_run, **writing.options(),
            )  # fmt: skip
            return Response(status=200, payload=updated)
        if method == "PATCH" and name is not None:
            patched = self._patch(
                request, info, group, version, plural, namespace, name, target.subresource, dry_run, writing
            )
            return patched
        raise _error(405, "MethodNotAllowed", f"{method} is not allowed on {request.url.path}")

    def _table(
        self, group: str, version: str, plural: str, objects: list[dict[str, Any]], rv: str, table: str,
        query: Mapping[str, str],
    ) -> dict[str, Any]:  # fmt: skip
        return render_table(
            objects, crd=self._crd_for(group, plural), version=version, table_api=table, resource_version=rv,
            now=self.clock.now(), include=query.get("includeObject", "Metadata"),
        )  # fmt: skip

    def _delete_collection(
        self, group: str, version: str, plural: str, namespace: str | None, query: Mapping[str, str], *, dry_run: bool
    ) -> dict[str, Any]:
        info = self._info(group, version, plural)
        chosen = self._select(
            group, plural, namespace, None, query.get("labelSelector", ""), query.get("fieldSelector", "")
        )
        names = [(obj["metadata"].get("namespace"), obj["metadata"]["name"]) for obj in chosen]
        items = [self._delete(group, version, plural, ns, n, None, dry_run=dry_run) for ns, n in names]
        return {"kind": f"{info.kind}List", "apiVersion": f"{group}/{version}" if group else version,
                "metadata": {"resourceVersion": str(self._rv)}, "items": items}  # fmt: skip

    def _patch(
        self, request: kmock.Request, info: kmock.ResourceInfo, group: str, version: str, plural: str,
        namespace: str | None, name: str, subresource: str | None, dry_run: bool, writing: _Writing,
    ) -> Any:  # fmt: skip
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        patch = request.data
        builtin = group in ("", CRD_GROUP)
        merging = content_type in ("application/merge-patch+json", "application/apply-patch+yaml") or (
            content_type == "application/strategic-merge-patch+json" and builtin
        )
        change: Callable[[Any], Any]
        if content_type == "application/json-patch+json":

            def change(old: Any) -> Any:
                try:
                    return json_patch(old, patch)
                except ValueError as exc:  # a failed `test` op or a missing path: the server says no more
                    raise _error(422, "Invalid", _JSON_PATCH_FAILED) from exc

        elif merging:
            change = lambda old: merge_patch(old, patch)  # noqa: E731
        else:
            raise _error(
                415, "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {_PATCH_TYPES}",
            )  # fmt: skip
        if (
            content_type == "application/apply-patch+yaml"
            and subresource is None
            and self._stored(group, plural, namespace if info.namespaced else None, name) is None
        ):
            # Server-side apply of a missing object creates it (no field ownership is kept).
            body = merge_patch({"metadata": {"name": name}}, patch)
            created = self._create(group, version, plural, namespace, body, dry_run=dry_run, **writing.options())
            return Response(status=201, payload=created)
        updated = self._update(
            group,
            version,
            plural,
            namespace,
            name,
            change,
            subresource=subresource,
            dry_run=dry_run,
            **writing.options(),
        )
        return Response(status=200, payload=updated)

    async def _watch(
        self, group: str, version: str, plural: str, namespace: str | None, name: str | None, query: Mapping[str, str]
    ) -> AsyncIterator[Any]:
        since = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents") == "true"
        watch = _Watch(group, plural, namespace, name, query.get("labelSelector", ""), query.get("fieldSelector", ""))
        backlog: list[tuple[str, dict[str, Any]]]
        if since in ("", "0") or initial:
            selected = self._select(group, plural, namespace, name, watch.labels, watch.fields)
            selected.sort(key=lambda obj: (obj["metadata"].get("namespace") or "", obj["metadata"]["name"]))
            backlog = [("ADDED", obj) for obj in selected]
        elif not since.isdigit() or int(since) < self._log_floor:
            # A real server answers 200 and streams one ERROR event: the HTTP status is already sent.
            backlog = [("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                  "message": f"too old resource version: {since} ({self._log_floor})",
                                  "reason": "Expired", "code": 410})]  # fmt: skip
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
        # Bookmarks only come once the store moved past the last event sent, shortly before the watch ends.
        bookmark_at = None
        if query.get("allowWatchBookmarks") in ("true", "1") and deadline is not None:
            bookmark_at = deadline - _BOOKMARK_LEAD
        last = int(since) if since.isdigit() else self._rv
        try:
            yield b""  # send the headers now: the client waits for them before anything happens
            for kind, obj in backlog:
                yield {"type": kind, "object": obj if kind in ("ERROR", "BOOKMARK") else self._out(obj, group, version)}
                if kind == "ERROR":
                    return
                last = max(last, int(obj["metadata"].get("resourceVersion") or 0))
            while True:
                wake = bookmark_at if bookmark_at is not None else deadline
                try:
                    async with asyncio.timeout_at(wake):
                        item = await watch.queue.get()
                except TimeoutError:
                    if bookmark_at is None:
                        return
                    bookmark_at = None
                    if self._rv > last:
                        last = self._rv
                        api_version = f"{group}/{version}" if group else version
                        kind_name = self._info(group, version, plural).kind
                        yield {"type": "BOOKMARK", "object": {"apiVersion": api_version, "kind": kind_name,
                                                              "metadata": {"resourceVersion": str(last)}}}  # fmt: skip
                    continue
                if item is _CLOSE:
                    return
                kind, obj = item
                last = max(last, int(obj["metadata"]["resourceVersion"]))
                yield {"type": kind, "object": self._out(obj, group, version)}
        finally:
            self._watches.discard(watch)
