"""The `KubeApiServer` kmock handler: request parsing and routing, the resource endpoints, patches and watches."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal.rendering import Response, StreamingError  # kmock is pinned; not exported for typing

from azsnap.domain.models import API_GROUP, API_VERSION, KIND, PLURAL
from azsnap.emulator.kubernetes.patching import json_patch, merge_patch
from azsnap.emulator.kubernetes.protocol import CRD_GROUP, CRD_PLURAL, _action, _error, _parse_path, _Target, _Watch
from azsnap.emulator.kubernetes.storage import ApiStorage

__all__ = ["SNAPSHOT_POLICY_SHORT_NAMES", "KubeApiServer"]

logger = logging.getLogger(__name__)

#: The SnapshotPolicy short name, as in the CRD; replaced by the CRD's own names once a CRD is installed.
SNAPSHOT_POLICY_SHORT_NAMES: Final = ("snappol",)
_CLOSE: Final = object()


@attrs.define(kw_only=True)
class KubeApiServer(ApiStorage):
    """kmock's Kubernetes emulator with the API server's contract (see the package docstring); an aiohttp handler."""

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
        merging = content_type in ("application/merge-patch+json", "application/apply-patch+yaml") or (
            content_type == "application/strategic-merge-patch+json" and builtin
        )
        if content_type == "application/json-patch+json":
            change: Callable[[Any], Any] = lambda old: json_patch(old, patch)  # noqa: E731
        elif merging:
            change = lambda old: merge_patch(old, patch)  # noqa: E731
        else:
            raise _error(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format: {content_type or 'none'}",
            )
        if (
            content_type == "application/apply-patch+yaml"
            and subresource is None
            and self._stored(group, plural, namespace if info.namespaced else None, name) is None
        ):
            # Server-side apply of a missing object creates it (no field ownership is kept).
            body = merge_patch({"metadata": {"name": name}}, patch)
            return Response(status=201, payload=self._create(group, version, plural, namespace, body, dry_run=dry_run))
        return self._update(group, version, plural, namespace, name, change, subresource=subresource, dry_run=dry_run)

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
