"""The `KubeEmulator` facade: serve the emulated API, write a kubeconfig, and read and write objects directly."""

from __future__ import annotations

import builtins
import contextlib
import copy
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import kmock
import yaml

from azsnap.emulator.kubernetes.patching import merge_patch
from azsnap.emulator.kubernetes.protocol import _error
from azsnap.emulator.kubernetes.server import KubeApiServer

__all__ = ["KubeEmulator"]


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
