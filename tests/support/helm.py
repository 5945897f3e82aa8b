"""Rendering the Helm chart in tests: the helm binary `make test` fetches, and helpers to pick manifests apart."""

from __future__ import annotations

import functools
import os
import pathlib
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any, Final

import pytest
import yaml

__all__ = [
    "CHART",
    "ROOT",
    "SCENARIO_DIR",
    "Manifest",
    "aggregated",
    "container",
    "env_of",
    "helm_binary",
    "helm_or_skip",
    "of_kind",
    "one",
    "operator_roles",
    "render",
    "rules",
    "run_helm",
]

ROOT: Final = pathlib.Path(__file__).resolve().parents[2]
CHART: Final = ROOT / "helm" / "azsnap"
SCENARIO_DIR: Final = ROOT / "helm" / "scenarios"
#: The labels that make a ClusterRole part of Kubernetes' built-in view/edit/admin roles (for users, not azsnap).
AGGREGATE_LABELS: Final = {f"rbac.authorization.k8s.io/aggregate-to-{role}" for role in ("view", "edit", "admin")}

Manifest = dict[str, Any]


@functools.cache
def helm_binary() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    local = ROOT / ".tools" / "helm"
    return str(local) if local.exists() else None


def helm_or_skip() -> str:
    """The helm binary, or skip the test (`make test` fetches one into .tools/)."""
    binary = helm_binary()
    if binary is None:
        pytest.skip("no helm binary: `make test` fetches one into .tools/ (bash .ci/fetch-helm .tools)")
    return binary


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELM_CACHE_HOME": "/nonexistent-cache", "HELM_CONFIG_HOME": "/nonexistent-config"}
    return subprocess.run([helm, *args], capture_output=True, text=True, env=env, check=False)


@functools.cache
def _render_cached(helm: str, scenario: str | None, sets: tuple[str, ...]) -> str:
    args = ["template", "azsnap", str(CHART), "--namespace", "azsnap-system", "--include-crds"]
    if scenario:
        args += ["-f", str(SCENARIO_DIR / f"{scenario}.yaml")]
    for s in sets:
        args += ["--set", s]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def render(helm: str, scenario: str | None = None, *sets: str) -> list[Manifest]:
    return [doc for doc in yaml.safe_load_all(_render_cached(helm, scenario, sets)) if doc]


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = of_kind(manifests, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def container(manifests: list[Manifest]) -> Manifest:
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert len(pod["containers"]) == 1
    c: Manifest = pod["containers"][0]
    return c


def env_of(manifests: list[Manifest]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container(manifests).get("env", [])}


def aggregated(role: Manifest) -> bool:
    return bool(AGGREGATE_LABELS & set(role["metadata"].get("labels") or {}))


def operator_roles(manifests: list[Manifest]) -> list[Manifest]:
    """The roles bound to azsnap's service account (not the ones aggregated into view/edit/admin for users)."""
    return [r for r in of_kind(manifests, "ClusterRole") + of_kind(manifests, "Role") if not aggregated(r)]


def rules(manifests: list[Manifest]) -> Iterator[tuple[str, str, str]]:
    for role in operator_roles(manifests):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        yield group, resource, verb
