"""The reference docs against the code: every CRD field, metric, event reason, condition reason and setting the
operator has is named in the page a user reads for it, so the docs cannot fall behind the code unnoticed."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml
from tests.support.crd import ROOT
from tests.support.crd import walk as walk_schema
from tests.support.helm import helm_or_skip, one, render

from azsnap.domain.volumes import ClaimProblem
from azsnap.emulator.config import FAULT_KINDS, OPERATIONS
from azsnap.metrics import Metrics
from azsnap.settings import ENV_PREFIX, Settings

PACKAGE: Final = ROOT / "operator" / "azsnap"
DOCS: Final = ROOT / "docs"

#: kopf's own bookkeeping in the status (docs/operations.md, "Sizing", says what it is and to leave it alone).
KOPF_STATUS: Final = "status.kopf"


def doc(name: str) -> str:
    return (DOCS / name).read_text()


def section(text: str, heading: str) -> str:
    """The part of a Markdown page under `heading` (a whole line, e.g. `## Events`), up to the next heading of its
    level or higher."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n")
    ends = [m.start() for m in re.finditer(rf"\n(#{{1,{len(level)}}}) ", text) if m.start() > start]
    return text[start : min(ends, default=len(text))]


def named(name: str, text: str) -> bool:
    """Whether `text` names `name` as code: `` `name` ``, `name:` in a YAML block, or `name{` / `name=` in a table."""
    return re.search(rf"(?<![\w-]){re.escape(name)}(?=`|:|\{{|=)", text) is not None


def crd_fields(path: Path) -> Iterator[tuple[str, str]]:
    """(dotted path, field name) of every field under `spec` and `status` of a CRD's served version."""
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    (version,) = crd["spec"]["versions"]
    for dotted, _ in walk_schema(version["schema"]["openAPIV3Schema"]):
        name = dotted.rsplit(".", 1)[-1].rstrip("[]{}")
        if dotted.startswith(("spec.", "status.")) and not dotted.startswith(KOPF_STATUS):
            yield dotted, name


def sources(*folders: str) -> Iterator[tuple[Path, str]]:
    for folder in folders:
        for path in sorted((PACKAGE / folder).glob("*.py")):
            yield path, path.read_text()


def test_section_cuts_a_page_at_the_next_heading_of_its_level() -> None:
    text = "# T\n\n## A\n\na `x`\n\n### A.1\n\nb\n\n## B\n\nc `y`\n"
    assert "`x`" in section(text, "## A") and "A.1" in section(text, "## A")
    assert "`y`" not in section(text, "## A") and "`y`" in section(text, "## B")


def test_named_wants_the_name_as_code_not_inside_a_longer_word() -> None:
    assert (
        named("every", "`every`") and named("every", "  every: 7d") and named("azsnap_policies", "`azsnap_policies{`")
    )
    assert not named("every", "every day") and not named("azsnap_policies", "`azsnap_policies_stalled`")
    assert not named("disk", "`restoreDisk`")


@pytest.mark.parametrize(
    ("crd", "page"),
    [("snapshotpolicies.azsnap.io.yaml", "policy-reference.md"), ("snapshotrestores.azsnap.io.yaml", "restore.md")],
)
def test_every_crd_field_is_in_its_reference_page(crd: str, page: str) -> None:
    text = doc(page)
    missing = [dotted for dotted, name in crd_fields(ROOT / "crds" / crd) if not named(name, text)]
    assert missing == [], f"docs/{page} does not name these fields of crds/{crd}: {missing}"


def exposed_metric_names(metrics: Metrics) -> set[str]:
    """The names Prometheus stores: a counter's with `_total`, an Info's with `_info`."""
    suffix = {"counter": "_total", "info": "_info"}
    return {family.name + suffix.get(family.type, "") for family in metrics.registry.collect()}


def test_every_metric_is_in_the_operations_metrics_table() -> None:
    names = exposed_metric_names(Metrics())
    assert {"azsnap_policy_ready", "azsnap_snapshots_created_total", "azsnap_build_info"} <= names
    table = section(doc("operations.md"), "## Metrics")
    missing = sorted(name for name in names if not named(name, table))
    assert missing == [], f"docs/operations.md's Metrics table lacks {missing}"


def event_reasons() -> dict[str, Path]:
    """Every event reason a reconcile can post (an `Event("Normal"|"Warning", "<Reason>", ...)` in the source), plus
    those written as expressions (a copy missed for either cause, a VolumeSnapshot publishing state)."""
    found: dict[str, Path] = {}
    for path, text in sources("reconciler", "handlers"):
        for match in re.finditer(r'Event\(\s*"(?:Normal|Warning)",\s*"([A-Za-z]+)"', text):
            found.setdefault(match.group(1), path)
    for reason in ("CopyMissed", "CopySourceLost"):
        found[reason] = PACKAGE / "reconciler" / "copies.py"
    publisher = PACKAGE / "reconciler" / "volume_snapshots.py"
    for match in re.finditer(r'"(?:Unavailable|Failed)", "([A-Za-z]+)"', publisher.read_text()):
        found[f"VolumeSnapshots{match.group(1)}"] = publisher  # a warning when publishing enters that state
    return found


def test_every_event_reason_is_in_the_operations_events_table() -> None:
    reasons = event_reasons()
    assert {"SnapshotCreated", "RateLimited", "RestoreVerified", "Restored", "MoreEvents"} <= set(reasons)
    table = section(doc("operations.md"), "## Events")
    missing = {reason: str(path.relative_to(ROOT)) for reason, path in reasons.items() if f"`{reason}`" not in table}
    assert missing == {}, f"docs/operations.md's Events table lacks {missing}"


_VERDICT: Final = re.compile(r'(?:\.stalled|Health)\(\s*(?:HealthState\.[A-Z]+,\s*)?"([A-Za-z]+)"')
_CHOSEN: Final = re.compile(r'reason = "([A-Za-z]+)" if .* else "([A-Za-z]+)"')


def condition_reasons() -> dict[str, set[str]]:
    """The reasons a `Ready`/`Stalled` condition can carry, by kind: a SnapshotRestore's (reconciler/restore*.py)
    and a policy's (every other module that judges health)."""
    kinds: dict[str, set[str]] = {"restore": set(), "policy": set()}
    for path, text in sources("reconciler", "handlers", "domain"):
        found = {m.group(1) for m in _VERDICT.finditer(text)}
        found |= {reason for m in _CHOSEN.finditer(text) for reason in m.groups() if not reason.startswith("Copy")}
        kinds["restore" if path.stem.startswith("restore") and path.parent.name == "reconciler" else "policy"] |= found
    # `Verdicts.failed` (shared) turns Azure's errors into these for both kinds.
    shared = {"AuthorizationFailed", "AzureError", "AzureUnavailable", "LimitReached", "Throttled"}
    kinds["policy"] |= shared
    kinds["restore"] |= shared - {"LimitReached"}
    return kinds


def test_every_policy_condition_reason_is_in_the_operations_conditions_table() -> None:
    reasons = condition_reasons()["policy"]
    assert {"Succeeded", "InvalidSpec", "SlotsMissed", "NoClaims", "ClaimsUnavailable", "RestoreDrillFailed"} <= reasons
    table = section(doc("operations.md"), "## Conditions")
    missing = sorted(reason for reason in reasons if f"`{reason}`" not in table)
    assert missing == [], f"docs/operations.md's Conditions table lacks {missing}"


def test_every_restore_condition_reason_is_in_restore_md() -> None:
    reasons = condition_reasons()["restore"]
    assert {"Restored", "Hydrating", "Creating", "DiskExists", "SourceNotFound", "TargetChanged"} <= reasons
    text = doc("restore.md")
    missing = sorted(reason for reason in reasons if f"`{reason}`" not in text)
    assert missing == [], f"docs/restore.md lacks these SnapshotRestore reasons: {missing}"


def test_every_claim_reason_is_in_the_policy_reference() -> None:
    text = doc("policy-reference.md")
    missing = sorted(problem.value for problem in ClaimProblem if f"`{problem.value}`" not in text)
    assert missing == [], f"docs/policy-reference.md does not name these claim reasons: {missing}"


def test_every_setting_is_in_the_operations_configuration_table_with_its_default() -> None:
    table = section(doc("operations.md"), "## Configuration")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(AZSNAP_[A-Z_]+)`[^|]*\| ([^|]*) \|", table, re.M)}
    missing = sorted(
        ENV_PREFIX + name.upper() for name in Settings.model_fields if f"`{ENV_PREFIX}{name.upper()}`" not in table
    )
    assert missing == [], f"docs/operations.md's Configuration table lacks {missing}"
    wrong = {}
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = rows.get(ENV_PREFIX + name.upper())
        if shown is None or default in (None, ()):
            continue  # documented on a shared row, or unset by default (the table says what unset means)
        text = (
            str(default).lower()
            if isinstance(default, bool)
            else f"{default:g}"
            if isinstance(default, float)
            else str(default)
        )
        if f"`{text}`" not in shown:
            wrong[ENV_PREFIX + name.upper()] = (shown.strip(), text)
    assert wrong == {}, f"docs/operations.md shows other defaults than the code: {wrong}"


def test_the_alerts_table_shows_the_rules_the_chart_renders() -> None:
    rule = one(render(helm_or_skip(), None, "prometheusRule.enabled=true"), "PrometheusRule")
    table = section(doc("operations.md"), "## Alerts")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(Azsnap\w+)` \| (.*) \|$", table, re.M)}
    rendered = {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}
    assert sorted(rows) == sorted(rendered), "docs/operations.md's alerts table and the chart's alerts differ"
    for name, alert in rendered.items():
        shown = [cell.strip() for cell in rows[name].split(" | ")]
        wanted = [f"`{alert['expr']}`", f"`{alert['for']}`" if "for" in alert else "–", alert["labels"]["severity"]]
        assert shown == wanted, f"docs/operations.md shows {name} as {shown}; the chart renders {wanted}"


def test_every_dependency_has_a_readme_line_saying_why() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0) for d in wanted}  # type: ignore[union-attr]
    names.discard(project["name"])  # the test extra pulls in the demo extra by the project's own name
    lines = section((ROOT / "README.md").read_text(), "## Dependencies, and why each").splitlines()
    why = {name for line in lines if " — " in line for name in re.findall(r"`([^`]+)`", line.split(" — ")[0])}
    assert {"kopf", "cel-python", "ruff"} <= why
    assert sorted(names - why) == [], "README's dependency list has no line saying why for these"


def test_every_fault_kind_and_operation_of_the_emulator_is_in_emulator_md() -> None:
    text = doc("emulator.md")
    named_there = [f"`{name}`" for name in (*FAULT_KINDS, *OPERATIONS)]
    assert [name for name in named_there if name not in text] == []


def test_reliability_md_counts_the_bad_policy_corpus_as_it_is() -> None:
    bad = yaml.safe_load((ROOT / "tests" / "data" / "bad_policies.yaml").read_text())["bad"]
    text = " ".join(doc("reliability.md").split())
    assert f"all {len(bad)} bad cases" in text
    assert f"{sum(1 for case in bad if case['schema'])} of them the CRD schema already refuses" in text
