from __future__ import annotations

import io
import textwrap
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from azsnap.cli import app
from azsnap.offline.preview import PolicyFileError, load_policy, run_preview, simulate

ROOT = Path(__file__).resolve().parents[2]
GFS = ROOT / "examples" / "gfs.yaml"
DISK_ID = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/disks/disk-9"
)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def manifest(spec: str, *, api: str = "azsnap.io/v1alpha1", kind: str = "SnapshotPolicy") -> str:
    return f"apiVersion: {api}\nkind: {kind}\nmetadata:\n  name: p\n  namespace: team\nspec:\n" + textwrap.indent(
        textwrap.dedent(spec), "  "
    )


def kept_by_rule(result_keep: dict[str, tuple[str, ...]]) -> Counter[str]:
    return Counter(rule for rules in result_keep.values() for rule in rules)


def test_gfs_example_holds_exactly_what_the_rules_keep() -> None:
    result = simulate(load_policy(GFS), 40)
    assert len(result.days) == 40
    assert all(len(day.created) == 24 for day in result.days)
    assert sum(d.missed for d in result.days) == 0
    by_rule = kept_by_rule(result.decision.keep)
    # 24 hours of the last day, 7 days, 4 ISO weeks, 2 months (January, February), newest 3
    assert (by_rule["hourly"], by_rule["daily"], by_rule["weekly"], by_rule["monthly"]) == (24, 7, 4, 2)
    assert by_rule["minKeep"] == 3 and by_rule["newest"] == 1
    # union: 24 hourly + 6 more days + 2 more weeks + the last of January
    assert len(result.held) == 33
    assert result.decision.delete == {}


def test_preview_output_names_days_and_rules() -> None:
    out = io.StringIO()
    assert run_preview(GFS, 3, out=out) == 0
    text = out.getvalue()
    assert "Policy default/gfs on disk disk-2" in text
    assert "2026-01-05         24        0     24" in text
    assert "+ 20260105T0000Z" in text
    assert "hourly (24):" in text
    assert "by the rule keeping each" in text


def test_preview_is_deterministic() -> None:
    first, second = io.StringIO(), io.StringIO()
    run_preview(GFS, 5, out=first)
    run_preview(GFS, 5, out=second)
    assert first.getvalue() == second.getvalue()


def test_every_example_previews() -> None:
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        out = io.StringIO()
        assert run_preview(path, 8, out=out) == 0, out.getvalue()


def test_dst_day_in_preview(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        manifest(f"""
            disk: {{id: {DISK_ID}}}
            schedule: {{every: 1h, timeZone: Europe/Berlin}}
            retention: {{keepLast: 100}}
        """),
    )
    result = simulate(load_policy(path), 3, start=datetime(2026, 3, 27, 23, tzinfo=UTC))  # 28 March, 00:00 local
    assert [len(d.created) for d in result.days] == [24, 23, 24]  # 29 March has 23 hours


def test_suspended_policy_creates_nothing(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        manifest(f"""
            disk: {{id: {DISK_ID}}}
            schedule: {{cron: "@daily"}}
            retention: {{keepLast: 3}}
            suspend: true
        """),
    )
    out = io.StringIO()
    assert run_preview(path, 2, out=out) == 0
    assert "suspended" in out.getvalue()
    assert "blocked: Suspended" in out.getvalue()
    assert "0 snapshot(s)" in out.getvalue()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            manifest(f"""
                disk: {{id: {DISK_ID}}}
                schedule: {{cron: "@daily"}}
                retention: {{daily: 0}}
            """),
            "spec.retention.daily: Input should be greater than or equal to 1",
        ),
        (
            manifest(f"""
                disk: {{id: {DISK_ID}}}
                schedule: {{cron: "*/5 * * * *"}}
                retention: {{daily: 3}}
            """),
            "spec.schedule.cron: '*/5 * * * *' fires more than once an hour",
        ),
        (
            manifest("""
                disk: {id: /subscriptions/x/disks/y}
                schedule: {every: 90m}
                retention: {}
            """),
            "spec.disk.id: '/subscriptions/x/disks/y' is not the ARM ID of a managed disk",
        ),
        (
            manifest(f"""
                disk: {{id: {DISK_ID}}}
                schedule: {{every: 1h, timeZone: Mars/Olympus}}
                retention: {{daily: 3}}
                surprise: 1
            """),
            "spec.surprise: Extra inputs are not permitted",
        ),
        (manifest("disk: {}", api="v1"), "apiVersion: must be azsnap.io/v1alpha1, got 'v1'"),
        (manifest("disk: {}", kind="Pod"), "kind: must be SnapshotPolicy, got 'Pod'"),
        ("apiVersion: azsnap.io/v1alpha1\nkind: SnapshotPolicy\n", "metadata.name: required"),
        ("a: [unclosed", "not valid YAML"),
        ("- 1\n- 2\n", "expected exactly one SnapshotPolicy object"),
    ],
)
def test_bad_policies_are_refused_with_the_field_named(tmp_path: Path, body: str, expected: str) -> None:
    path = write(tmp_path, body)
    out = io.StringIO()
    assert run_preview(path, 5, out=out) == 2
    assert expected in out.getvalue()
    assert "is not a valid SnapshotPolicy" in out.getvalue()


def test_every_problem_is_listed(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        manifest(f"""
            disk: {{id: {DISK_ID}}}
            schedule: {{every: 1h, timeZone: Mars/Olympus}}
            retention: {{daily: 0, monthly: -1}}
        """),
    )
    with pytest.raises(PolicyFileError) as caught:
        load_policy(path)
    fields = sorted(p.split(":")[0] for p in caught.value.problems)
    assert fields == ["spec.retention.daily", "spec.retention.monthly", "spec.schedule.timeZone"]


def test_missing_file(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_preview(tmp_path / "nope.yaml", 5, out=out) == 2
    assert "cannot read the file" in out.getvalue()


def test_cli_preview() -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["preview", str(GFS), "--days", "2"])
    assert ok.exit_code == 0, ok.output
    assert "hourly (24):" in ok.output


def test_cli_preview_bad_policy(tmp_path: Path) -> None:
    path = write(tmp_path, manifest("disk: {}"))
    bad = CliRunner().invoke(app, ["preview", str(path)])
    assert bad.exit_code == 2
    assert "spec.disk.id: Field required" in bad.output
