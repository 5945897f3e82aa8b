"""The docs' pages and what they show, for the tests that hold the docs to the code: their code blocks, and every
SnapshotPolicy (or fragment of one) a reader may paste."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml
from tests.support.crd import ROOT

__all__ = ["PAGES", "blocks", "policies_in_docs", "policy_base"]

PAGES: Final = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A placeholder for a subscription in the docs' manifests (`<sub>`), made a GUID so the schema can judge the rest.
SUBSCRIPTION: Final = "00000000-0000-0000-0000-000000000000"


def blocks(page: Path, *languages: str) -> Iterator[str]:
    for match in re.finditer(r"^```(\w+)\n(.*?)^```$", page.read_text(), flags=re.S | re.M):
        if match.group(1) in languages:
            yield match.group(2)


def policy_base() -> dict[str, Any]:
    return {
        "apiVersion": "azsnap.io/v1alpha1",
        "kind": "SnapshotPolicy",
        "metadata": {"name": "docs", "namespace": "default"},
        "spec": {"volumeClaim": "data", "schedule": {"every": "1h"}, "retention": {"keepLast": 3}},
    }


SPEC_FIELDS: Final = set(yaml.safe_load((ROOT / "crds" / "snapshotpolicies.azsnap.io.yaml").read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])  # fmt: skip


def policies_in_docs() -> list[tuple[str, dict[str, Any]]]:
    """Every SnapshotPolicy in the docs' YAML blocks, and every fragment of one (`spec:` or some of its fields) put
    into a small policy over a claim, as a reader would paste it."""
    found = []
    for page in PAGES:
        for block in blocks(page, "yaml"):
            for doc in yaml.safe_load_all(block.replace("<sub>", SUBSCRIPTION)):
                if not isinstance(doc, dict):
                    continue
                name = page.relative_to(ROOT).as_posix()
                if doc.get("kind") == "SnapshotPolicy":
                    found.append((f"{name}: {doc['metadata']['name']}", doc))
                    continue
                fragment = doc["spec"] if set(doc) == {"spec"} else doc
                if not isinstance(fragment, dict) or not set(fragment) <= SPEC_FIELDS or "kind" in doc:
                    continue
                policy = policy_base()
                if {"disk", "volumeClaimSelector"} & set(fragment):
                    del policy["spec"]["volumeClaim"]
                policy["spec"].update(copy.deepcopy(fragment))
                found.append((f"{name}: {sorted(fragment)}", policy))
    return found
