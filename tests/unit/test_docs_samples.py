"""What the docs show against what the program does: the sample output of `azsnap preview` and `azsnap capacity` is
what they print, every command and flag is documented where the README points, every policy manifest or fragment
in the docs is accepted, and every link between the pages leads to a page and a heading that exist."""

from __future__ import annotations

import copy
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from tests.support.crd import ROOT, schema_errors
from typer.main import get_command
from typer.testing import CliRunner

from azsnap.cli import app
from azsnap.domain.validation import validate_manifest

PAGES: Final = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A placeholder for a subscription in the docs' manifests (`<sub>`), made a GUID so the schema can judge the rest.
SUBSCRIPTION: Final = "00000000-0000-0000-0000-000000000000"


def blocks(page: Path, *languages: str) -> Iterator[str]:
    for match in re.finditer(r"^```(\w+)\n(.*?)^```$", page.read_text(), flags=re.S | re.M):
        if match.group(1) in languages:
            yield match.group(2)


def samples() -> list[tuple[str, str, str]]:
    """(page, command, output) of every console block that shows an offline azsnap command and what it printed."""
    found = []
    for page in PAGES:
        for block in blocks(page, "console", "text"):
            first, _, rest = block.partition("\n")
            if first.startswith(("$ azsnap preview ", "$ azsnap capacity ")):
                found.append((page.relative_to(ROOT).as_posix(), first[2:], rest))
    return found


def test_the_docs_show_preview_and_capacity_output() -> None:
    shown = {command.split()[1] for _, command, _ in samples()}
    assert shown == {"preview", "capacity"}


@pytest.mark.parametrize(("page", "command", "output"), samples(), ids=lambda v: str(v)[:60])
def test_sample_output_is_what_the_command_prints(
    page: str, command: str, output: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)  # the commands name examples/ as a user in a clone of the repository does
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert result.exit_code == 0, result.output
    assert result.stdout == output, f"{page}: run `{command}` in the repository and paste what it prints"


def readme_rows() -> dict[str, str]:
    """The README's command table: the command's name and its row."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\| `azsnap (\w+)", line)
        if match:
            rows[match.group(1)] = line
    return rows


def linked_pages(row: str) -> list[Path]:
    return [ROOT / target.split("#")[0] for target in re.findall(r"\]\((docs/[^)]+)\)", row)]


def commands() -> dict[str, Any]:
    """The subcommands of `azsnap`, as typer builds them (its own click)."""
    return dict(getattr(get_command(app), "commands"))  # noqa: B009  # typer's group type is private


def test_every_command_has_a_row_in_the_readme() -> None:
    assert sorted(readme_rows()) == sorted(commands())


@pytest.mark.parametrize("name", sorted(commands()))
def test_every_flag_is_documented_where_the_readme_points(name: str) -> None:
    row = readme_rows()[name]
    text = row + "".join(page.read_text() for page in linked_pages(row))
    missing = []
    for param in commands()[name].params:
        flags = [opt for opt in param.opts if opt.startswith("-") and opt != "--help"]
        if flags and not any(re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) for flag in flags):
            missing.append(flags[0])
    assert missing == [], f"`azsnap {name}`: neither its README row nor {linked_pages(row)} names {missing}"


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


def test_the_docs_show_policies_and_fragments() -> None:
    where = {name.split(":")[0] for name, _ in policies_in_docs()}
    assert {"README.md", "docs/policy-reference.md", "docs/dr.md", "docs/restore.md"} <= where


@pytest.mark.parametrize(("where", "policy"), policies_in_docs(), ids=lambda v: str(v)[:70])
def test_every_policy_in_the_docs_is_accepted_by_the_api_and_the_operator(where: str, policy: dict[str, Any]) -> None:
    assert [str(e) for e in schema_errors(policy)] == [], where
    spec, errors = validate_manifest(policy)
    assert errors == [] and spec is not None, where


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces made hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.S | re.M)  # a `# comment` in a block is no heading
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_slug_is_githubs() -> None:
    assert slug("`azsnap capacity`: will a set of policies fit?") == "azsnap-capacity-will-a-set-of-policies-fit"
    assert slug("2. A `VolumeSnapshot` (PVC-targeted policies)") == "2-a-volumesnapshot-pvc-targeted-policies"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_leads_to_a_page_and_a_heading_that_exist(page: Path) -> None:
    text = re.sub(r"^```.*?^```$", "", page.read_text(), flags=re.S | re.M)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == [], f"{page.relative_to(ROOT)} links to what does not exist: {broken}"


def test_the_readme_demo_sample_is_cut_from_the_recorded_run() -> None:
    """README's lines of `make demo` output come from docs/demo-output.txt, the recorded real run (`...` elides)."""
    (sample,) = blocks(ROOT / "README.md", "text")
    recorded = set((ROOT / "docs" / "demo-output.txt").read_text().splitlines())
    shown = [line for line in sample.splitlines() if line.strip() not in {"", "..."}]
    assert len(shown) > 10
    assert [line for line in shown if line not in recorded] == []
