"""What the docs show against what the program does: the sample output of `azsnap preview` and `azsnap capacity` is
what they print, every command and flag is documented where the README points, every policy manifest or fragment
in the docs is accepted, and every link between the pages leads to a page and a heading that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, Final

import pytest
from tests.support.crd import ROOT, schema_errors
from tests.support.docs import PAGES, blocks, policies_in_docs, policy_base
from typer.main import get_command
from typer.testing import CliRunner

from azsnap.cli import app
from azsnap.domain.validation import validate_manifest


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


#: Files the docs name that live outside the repository: the official API description's two external files and the
#: recorded Azure answers, which the conformance and replay tests read from beside the checkout (docs/emulator.md).
ELSEWHERE: Final = ("common.json", "types.json", "errors/")


def repository_files() -> list[str]:
    tops = ("operator", "tests", "bench", "docs", "helm", "crds", "examples", ".ci")
    found = [p.relative_to(ROOT).as_posix() for top in tops for p in (ROOT / top).rglob("*") if p.is_file()]
    return found + [p.name for p in ROOT.iterdir() if p.is_file()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_file_a_page_names_is_in_the_repository(page: Path) -> None:
    files = repository_files()
    names = {path.rsplit("/", 1)[-1] for path in files}
    missing = []
    for named in re.findall(r"`([\w./-]+\.(?:py|yaml|json|lua|txt|md|toml))`", page.read_text()):
        if named.startswith(ELSEWHERE):
            continue
        found = named in names if "/" not in named else any(f == named or f.endswith(f"/{named}") for f in files)
        if not found:
            missing.append(named)
    assert missing == [], f"{page.relative_to(ROOT)} names files that are not in the repository: {missing}"


@pytest.mark.parametrize(
    "schedule", [{"every": "5h"}, {"cron": "*/5 * * * *"}], ids=lambda s: str(next(iter(s.values())))
)
def test_the_refusals_the_policy_reference_quotes_are_the_operators(schedule: dict[str, str]) -> None:
    policy = {**policy_base(), "spec": {**policy_base()["spec"], "schedule": schedule}}
    _, errors = validate_manifest(policy)
    text = " ".join((ROOT / "docs" / "policy-reference.md").read_text().split())  # quotes wrap across lines
    assert errors and all(f"{e.path}: {e.message}" in text for e in errors), errors


def test_the_readme_links_every_page_of_the_docs() -> None:
    linked = set(re.findall(r"\]\(docs/([\w-]+\.(?:md|txt))", (ROOT / "README.md").read_text()))
    pages = {p.name for p in PAGES if p.parent == ROOT / "docs"}
    assert sorted(pages - linked) == []


def test_restore_md_lists_the_snapshots_of_the_same_demo_run_as_demo_output() -> None:
    """The demo is deterministic: the policy hash in its snapshots' names (from the policy's UID, which changes when
    the demo creates objects in another order) is the same in both samples, or one of them is from an older demo."""
    recorded = (ROOT / "docs" / "demo-output.txt").read_text()
    drilled = re.search(r"Restore drill of minimal-hourly: .* last: (disk-0-[0-9a-f]{8})-", recorded)
    restored = re.search(r"restored from snapshot (disk-2-[0-9a-f]{8})-", recorded)
    assert drilled and restored
    (listing,) = [b for b in blocks(ROOT / "docs" / "restore.md", "text") if b.startswith("$ azsnap snapshots -A\n")]
    assert f"\n{drilled.group(1)}-" in listing and f"\n{restored.group(1)}-" in listing, (
        "regenerate restore.md's listing from `azsnap demo --speed 0 --snapshots`"
    )
