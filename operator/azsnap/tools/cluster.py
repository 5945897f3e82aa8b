"""Reading SnapshotPolicy objects from a cluster: the `kubernetes` client with the kubeconfig as kubectl reads it.

`KUBECONFIG` (or `~/.kube/config`) and its current context, unless `--kubeconfig` or `--context` say otherwise;
the namespace is the context's, else `default`, unless the caller names one. Every failure becomes a
`ClusterError` whose message says what to do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from azsnap.domain.models import API_GROUP, API_VERSION, PLURAL

__all__ = ["Cluster", "ClusterError", "Selection", "connect", "select"]


@dataclass(frozen=True)
class Selection:
    """Which policies to show: one by name, those of a disk, or all, in one namespace or every one (None)."""

    namespace: str | None
    policy: str | None = None
    disk: str | None = None


def select(objects: Iterable[Mapping[str, Any]], selection: Selection) -> list[Mapping[str, Any]]:
    """The policy objects the selection names, by namespace and name; `--disk` compares ARM IDs without case.

    A policy without `spec.disk` (it targets claims) stays in for `--disk`: its disks are in its status and in
    Azure, where `tools/policy_disks.py` looks for the one asked for.
    """
    chosen = []
    for obj in objects:
        meta = obj.get("metadata") or {}
        if selection.namespace is not None and meta.get("namespace") != selection.namespace:
            continue
        if selection.policy is not None and meta.get("name") != selection.policy:
            continue
        disk = str(((obj.get("spec") or {}).get("disk") or {}).get("id") or "")
        if selection.disk is not None and disk and disk.lower() != selection.disk.lower():
            continue
        chosen.append(obj)
    return sorted(chosen, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"].get("name") or ""))


class ClusterError(RuntimeError):
    """The cluster could not be reached or refused to answer; the message says why and what to do."""


@dataclass(frozen=True)
class Cluster:
    """A client for one kubeconfig context, and the namespace that context works in."""

    api_client: Any
    namespace: str

    def read_policies(self, selection: Selection) -> list[dict[str, Any]]:
        """The SnapshotPolicy objects the selection names (a named one that is missing is an error)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        api = client.CustomObjectsApi(self.api_client)
        where = "every namespace" if selection.namespace is None else f"namespace {selection.namespace}"
        items: list[Mapping[str, Any]]
        try:
            # the client types its answers as `object`: they are the API's JSON, as dicts
            if selection.policy is not None and selection.namespace is not None:
                found: Any = api.get_namespaced_custom_object(
                    API_GROUP, API_VERSION, selection.namespace, PLURAL, selection.policy
                )
                items = [found]
            elif selection.namespace is not None:
                listed: Any = api.list_namespaced_custom_object(API_GROUP, API_VERSION, selection.namespace, PLURAL)
                items = listed["items"]
            else:
                listed = api.list_cluster_custom_object(API_GROUP, API_VERSION, PLURAL)
                items = listed["items"]
        except ApiException as exc:
            if exc.status == 404 and selection.policy is not None:
                raise ClusterError(
                    f'{PLURAL}.{API_GROUP} "{selection.policy}" not found in {where}; '
                    "list them with kubectl get snappol -A"
                ) from exc
            if exc.status == 404:
                raise ClusterError(
                    f"the cluster does not know {PLURAL}.{API_GROUP}: install the CRD (docs/install.md)"
                ) from exc
            if exc.status in (401, 403):
                raise ClusterError(
                    f"the cluster refused to list {PLURAL}.{API_GROUP} in {where} ({exc.status} {exc.reason}): "
                    "your kubeconfig's user needs get and list on them"
                ) from exc
            raise ClusterError(f"the cluster answered {exc.status} {exc.reason} to a list of policies") from exc
        except HTTPError as exc:
            raise ClusterError(f"cannot reach the cluster: {exc}") from exc
        return [dict(obj) for obj in select(items, selection)]


def connect(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """A client for the kubeconfig's context (kubectl's rules: KUBECONFIG, then ~/.kube/config)."""
    from kubernetes import config
    from kubernetes.config.config_exception import ConfigException

    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)  # type: ignore[no-untyped-call]  # the client has no annotations here
        chosen = next((c for c in contexts if c["name"] == context), None) if context else active
        if chosen is None:
            names = ", ".join(sorted(c["name"] for c in contexts)) or "none"
            raise ClusterError(f"no context {context!r} in the kubeconfig (it has: {names})")
        api_client = config.new_client_from_config(config_file=kubeconfig, context=chosen["name"])  # type: ignore[no-untyped-call]  # same
    except (ConfigException, OSError, KeyError, TypeError, ValueError) as exc:
        where = kubeconfig or "KUBECONFIG or ~/.kube/config"
        raise ClusterError(f"cannot use the kubeconfig ({where}): {' '.join(str(exc).split())}") from exc
    namespace = (chosen.get("context") or {}).get("namespace") or "default"
    return Cluster(api_client=api_client, namespace=namespace)
