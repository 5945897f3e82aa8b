"""Discovery for the emulated API: declared resources, API group and version documents, a minimal OpenAPI v3."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs
import kmock

from azsnap.emulator.kubernetes.protocol import _error, _Target

__all__ = ["ApiDiscovery"]

_ALL_VERBS: Final = ("delete", "deletecollection", "get", "list", "patch", "create", "update", "watch")
_STATUS_VERBS: Final = ("get", "patch", "update")


@attrs.define(kw_only=True)
class ApiDiscovery(kmock.KubernetesEmulator):
    """The discovery half of `KubeApiServer`: which resources it serves, and the documents describing them."""

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
        # Just enough OpenAPI v3 for kubectl to see that writes take `fieldValidation` and so to leave validation
        # to the server, which checks custom resources against their CRD's schema (no schemas are published here:
        # `kubectl explain` is the one thing this serves less of than a real server).
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
                     "kind": info.kind, "verbs": [v for v in _ALL_VERBS if v in info.verbs],
                     "shortNames": sorted(info.shortnames), "categories": sorted(info.categories)}  # fmt: skip
            resources.append(entry)
            for sub in sorted(info.subresources):
                resources.append({"name": f"{plural}/{sub}", "singularName": "", "namespaced": info.namespaced,
                                  "kind": info.kind, "verbs": list(_STATUS_VERBS)})  # fmt: skip
        group_version = f"{target.group}/{target.version}" if target.group else target.version
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}
