"""Every policy in `examples/` and in the docs (and the docs' SnapshotRestore) as `kubectl apply` sends it: created by
the in-process Kubernetes API with the project's CRDs installed, under strict field validation (kubectl's default),
with no warning: the schema, its CEL rules and the server's pruning all accept what a reader pastes."""

from __future__ import annotations

from typing import Any, Final

import aiohttp
import pytest
import yaml
from tests.support.crd import ROOT
from tests.support.docs import PAGES, blocks, policies_in_docs

from azsnap.emulator.kubernetes import KubeEmulator

pytestmark = pytest.mark.e2e

CRDS: Final = sorted((ROOT / "crds").glob("*.yaml"))


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = [(f"examples/{p.name}", yaml.safe_load(p.read_text())) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    found += policies_in_docs()
    for page in PAGES:
        for block in blocks(page, "yaml"):
            for doc in yaml.safe_load_all(block):
                if isinstance(doc, dict) and doc.get("kind") == "SnapshotRestore":
                    found.append((f"{page.relative_to(ROOT).as_posix()}: {doc['metadata']['name']}", doc))
    return found


def test_the_examples_and_the_docs_give_manifests_of_both_kinds() -> None:
    kinds = {manifest["kind"] for _, manifest in manifests()}
    assert kinds == {"SnapshotPolicy", "SnapshotRestore"}
    assert len(manifests()) >= len(list((ROOT / "examples").glob("*.yaml"))) + 5


@pytest.mark.parametrize(("where", "manifest"), manifests(), ids=lambda v: str(v)[:60])
async def test_the_api_creates_it_as_written(where: str, manifest: dict[str, Any], kube: KubeEmulator) -> None:
    for crd in CRDS:
        kube.install_crd(yaml.safe_load(crd.read_text()))
    namespace = manifest["metadata"]["namespace"]
    kube.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    group_version = manifest["apiVersion"]
    plural = "snapshotpolicies" if manifest["kind"] == "SnapshotPolicy" else "snapshotrestores"
    collection = f"/apis/{group_version}/namespaces/{namespace}/{plural}"
    async with aiohttp.ClientSession(kube.url) as http:
        response = await http.post(collection, params={"fieldValidation": "Strict"}, json=manifest)
        body = await response.json()
    assert response.status == 201, f"{where}: {body.get('message')}"
    assert response.headers.getall("Warning", []) == [], where
