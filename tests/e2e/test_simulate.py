"""`azsnap simulate`: the reconciler and the Azure SDK over HTTPS against the emulator, weeks in seconds."""

from __future__ import annotations

import asyncio
import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from azsnap.cli import app
from azsnap.domain import retention, schedule
from azsnap.offline.simulate import SimulationOptions, SimulationRun, load_policy_file, simulate
from azsnap.offline.simulate_plot import write_plot
from azsnap.offline.simulate_report import estimated_used_gb, render_text, summarize

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, midnight UTC
END_30 = START + timedelta(days=30)  # Wednesday 1 April 2026


def run_example(example: str, **options: object) -> SimulationRun:
    spec, name, errors = load_policy_file(EXAMPLES / example)
    assert spec is not None, errors
    return asyncio.run(simulate(spec, SimulationOptions(start=START, **options), name=name))  # type: ignore[arg-type]


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def gfs_30() -> SimulationRun:
    return run_example("gfs.yaml", days=30)


def newest_per_period(slots: list[datetime], key: object, count: int) -> set[datetime]:
    """The newest slot of each of the `count` newest periods (every period here has slots)."""
    newest: dict[object, datetime] = {}
    for slot in sorted(slots, reverse=True):
        newest.setdefault(key(slot), slot)  # type: ignore[operator]
    return set(sorted(newest.values(), reverse=True)[:count])


def test_gfs_for_30_days_keeps_exactly_what_its_rules_say(gfs_30: SimulationRun) -> None:
    summary = summarize(gfs_30)
    (disk,) = summary["disks"]
    # Every hour from Monday 2 March 00:00 to Wednesday 1 April 00:00 was taken: 721 slots.
    slots = [START + timedelta(hours=h) for h in range(30 * 24 + 1)]
    hourly = set(slots[-24:])  # 31 March 01:00 ... 1 April 00:00
    daily = newest_per_period(slots, lambda t: t.date(), 7)  # 1 April 00:00, then 23:00 of 31 ... 26 March
    weekly = newest_per_period(slots, lambda t: t.isocalendar()[:2], 4)  # 1 April, 29, 22 and 15 March 23:00
    monthly = newest_per_period(slots, lambda t: (t.year, t.month), 12)  # only April and March have snapshots
    assert (len(hourly), len(daily), len(weekly), len(monthly)) == (24, 7, 4, 2)
    assert len(daily - hourly) == 5 and len(weekly - hourly - daily) == 2 and not monthly - hourly - daily
    expected = hourly | daily | weekly | monthly
    assert len(expected) == 31

    assert disk["kept_by_rule"] == {"hourly": 24, "daily": 7, "weekly": 4, "monthly": 2, "minKeep": 3, "newest": 1}
    assert disk["held"] == summary["held"] == 31
    assert {datetime.fromisoformat(f["time"]) for f in disk["final"]} == expected

    # The held set is exactly the set retention keeps, judged on the snapshots as the SDK lists them.
    (trace,) = gfs_30.disks
    spec = trace.policy.spec
    decision = retention.decide_retention(
        spec.retention, spec.schedule.zone, trace.final, gfs_30.end, gfs_30.options.limits
    )
    assert decision.delete == {}
    assert set(decision.keep) == {s.name for s in trace.final}
    assert {f["name"]: f["rules"] for f in disk["final"]} == {k: list(v) for k, v in decision.keep.items()}


def test_gfs_run_takes_each_slot_once_and_breaks_no_limit(gfs_30: SimulationRun) -> None:
    summary = summarize(gfs_30)
    assert summary["ok"] is True
    assert summary["invariants"] == {
        "duplicate_slots": 0,
        "unexpected_slots": 0,
        "unaccounted_slots": 0,
        "limit_violations": 0,
        "other_snapshots_deleted": 0,
    }
    assert summary["violations"] == []
    assert summary["slots"] == {"scheduled": 721, "skipped": 0, "taken": 721, "missed": 0, "unsettled": 0}
    assert gfs_30.bystanders_left == gfs_30.bystanders and len(gfs_30.bystanders) == 2
    # One PUT per slot; every snapshot not held at the end was deleted once.
    assert summary["calls"]["snapshots.put"] == 721
    assert summary["calls"]["snapshots.delete"] == 721 - 31
    assert summary["throttled"] == summary["server_errors"] == summary["dropped"] == 0
    timeline = summary["timeline"]
    assert len(timeline) == 30
    assert sum(day["created"] for day in timeline) == 721
    assert sum(day["deleted"] for day in timeline) == 690
    assert timeline[0] == {"day": "2026-03-02", "created": 24, "deleted": 0, "held": 24, "throttled": 0}
    assert timeline[-1]["held"] == 31
    (disk,) = summary["disks"]
    assert disk["cap"] == 500
    assert 31 <= disk["peak"] <= 34
    assert 30 <= disk["steady"] <= 33


def test_size_estimate_bills_the_written_data_once_then_the_changes() -> None:
    t0 = START
    assert estimated_used_gb([], 50.0, 0.02) == 0.0
    assert estimated_used_gb([t0], 50.0, 0.02) == 50.0
    assert estimated_used_gb([t0 + timedelta(days=1), t0], 50.0, 0.02) == pytest.approx(51.0)
    # Changes over two days overlap a little: 1 - 0.98^2 of the data, not 4%.
    assert estimated_used_gb([t0, t0 + timedelta(days=2)], 100.0, 0.02) == pytest.approx(103.96)
    # Splitting a gap into hours bills the same as the days it spans when nothing overlaps (rate 0 or 1).
    hours = [t0 + timedelta(hours=h) for h in range(25)]
    assert estimated_used_gb(hours, 10.0, 0.0) == 10.0


def test_gfs_size_follows_the_held_snapshots(gfs_30: SimulationRun) -> None:
    (disk,) = summarize(gfs_30)["disks"]
    (trace,) = gfs_30.disks
    assert trace.written_gb == pytest.approx(128 * 0.4)
    times = [retention.snapshot_time(s) for s in trace.final]
    assert disk["used_gb"] == pytest.approx(estimated_used_gb(times, trace.written_gb, 0.02), abs=0.01)  # type: ignore[arg-type]
    # The oldest held snapshot is 15 March: a bit over 17 days of changes on top of the written data.
    assert 51.2 * (1 + 0.25) < disk["used_gb"] < 51.2 * (1 + 0.35)
    assert disk["full_copies_gb"] == pytest.approx(31 * 51.2)


def test_count_and_age_from_the_command_line_with_a_chart(tmp_path: Path) -> None:
    chart = tmp_path / "count-and-age.png"
    code, out, err = cli(
        str(EXAMPLES / "count-and-age.yaml"),
        "--days",
        "30",
        "--start",
        START.isoformat(),
        "--json",
        "--plot",
        str(chart),
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["ok"] is True and summary["plot"] == str(chart)
    (disk,) = summary["disks"]
    documented = (EXAMPLES.parent / "docs" / "simulate.md").read_text()  # its `--json` paragraph names every key
    assert [key for key in [*summary, *disk] if f"`{key}`" not in documented] == []
    spec, _, _ = load_policy_file(EXAMPLES / "count-and-age.yaml")
    assert spec is not None
    # Every 4 hours, each due at its slot plus a stable per-disk delay under 10 minutes.
    offset = schedule.slot_offset(
        spec.schedule,
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo/providers/Microsoft.Compute/disks/disk-0",
    )
    taken = [START + timedelta(hours=4 * k) for k in range(30 * 6 + 1)]
    taken = [s for s in taken if s + offset <= END_30]
    young = [s for s in taken if s + offset > END_30 - timedelta(days=7)]  # maxAge 7d, from when each was made
    assert disk["kept_by_rule"]["maxAge"] == len(young) and disk["kept_by_rule"]["keepLast"] == 10
    assert disk["held"] == len(young) == len(set(young) | set(taken[-10:]))
    assert {datetime.fromisoformat(f["time"]) for f in disk["final"]} == {s + offset for s in young}
    assert summary["slots"]["taken"] == len(taken) and summary["slots"]["missed"] == 0
    assert summary["invariants"]["duplicate_slots"] == summary["invariants"]["limit_violations"] == 0

    image = imread(chart)
    assert chart.stat().st_size > 10_000
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 600
    assert image.std() > 0.01  # not a blank canvas


def test_minimal_hourly_on_two_disks_gives_each_disk_its_own_policy() -> None:
    run = run_example("minimal-hourly.yaml", days=3, disks=2)
    summary = summarize(run)
    assert summary["ok"] is True
    assert [d["disk"] for d in summary["disks"]] == ["disk-0", "disk-1"]
    assert [d["held"] for d in summary["disks"]] == [24, 24]  # keepLast 24
    assert summary["kept_by_rule"]["keepLast"] == 48
    assert summary["slots"] == {"scheduled": 146, "skipped": 0, "taken": 146, "missed": 0, "unsettled": 0}
    assert summary["calls"]["snapshots.put"] == 146
    first, second = run.disks
    assert first.policy.ref.uid != second.policy.ref.uid
    assert not {s.name for s in first.final} & {s.name for s in second.final}
    for trace in run.disks:
        assert all(s.source_resource_id and s.source_resource_id.endswith(trace.name) for s in trace.final)
        newest = max(retention.snapshot_time(s) for s in trace.final)  # type: ignore[type-var]
        assert newest == START + timedelta(days=3)


def test_jitter_delays_each_disk_yet_every_slot_is_its_own() -> None:
    # A snapshot keeps its slot's name though it is made up to `jitter` later; at the start (midnight) each disk's
    # 23:00 slot is still due within its deadline, so its catch-up snapshot is that slot's, not an unexpected one.
    spec, name, errors = load_policy_file(EXAMPLES / "minimal-hourly.yaml")
    assert spec is not None, errors
    jittered = spec.model_copy(update={"schedule": spec.schedule.model_copy(update={"jitter": timedelta(minutes=50)})})
    run = asyncio.run(simulate(jittered, SimulationOptions(start=START, days=2, disks=3), name=name))
    summary = summarize(run)
    assert summary["invariants"]["unexpected_slots"] == 0
    assert summary["ok"] is True, summary["invariants"]
    offsets = {schedule.slot_offset(jittered.schedule, trace.disk_id) for trace in run.disks}
    assert len(offsets) == 3 and all(timedelta(0) < o < timedelta(minutes=50) for o in offsets)
    end = START + timedelta(days=2)
    for trace in run.disks:
        offset = schedule.slot_offset(jittered.schedule, trace.disk_id)
        taken = sorted(slot for _, _, slot in trace.created if slot is not None)
        # 23:00 the day before (its catch-up) up to 23:00 of the last day; the last midnight is due after the end
        assert taken == schedule.slots_between(jittered.schedule, START - offset - timedelta(hours=1), end)[:-1]
        assert all(seen >= slot + offset for seen, _, slot in trace.created if slot is not None)
    slots = summary["slots"]
    assert slots == {"scheduled": 3 * 50, "skipped": 0, "taken": 3 * 49, "missed": 0, "unsettled": 3}


def test_flaky_azure_still_takes_or_counts_every_slot_and_deletes_nothing_it_should_keep() -> None:
    calm = run_example("minimal-hourly.yaml", days=3)
    flaky = run_example("minimal-hourly.yaml", days=3, faults="flaky")
    summary = summarize(flaky)
    # The profile really hit: 429 bursts, 5xx and dropped connections all happened.
    assert summary["throttled"] > 0 and summary["server_errors"] > 0 and summary["dropped"] > 0
    assert summary["ok"] is True, summary["invariants"]
    slots = summary["slots"]
    assert slots["scheduled"] == 73 == slots["taken"] + slots["missed"] + slots["unsettled"]
    assert summary["invariants"]["other_snapshots_deleted"] == 0
    assert flaky.bystanders_left == flaky.bystanders
    # Nothing retention keeps in a calm run was deleted in the flaky one; with no slot missed they end alike.
    (calm_trace,) = calm.disks
    (trace,) = flaky.disks
    kept_when_calm = {s.name for s in calm_trace.final}
    assert not {name for _, name in trace.deleted} & kept_when_calm
    if slots["missed"] == 0 and slots["unsettled"] == 0:
        # A delete that failed in the last wake-up is still pending when the run ends.
        spec = trace.policy.spec
        pending = retention.decide_retention(
            spec.retention, spec.schedule.zone, trace.final, flaky.end, flaky.options.limits
        ).delete
        assert len(pending) == summary["disks"][0]["pending_deletions"] <= 1
        assert {s.name for s in trace.final} - set(pending) == kept_when_calm
    # Throttling made the policy come back sooner than hourly, never wait past its deadline unnoticed.
    assert trace.reconciles > calm_trace.reconciles


def test_text_report_and_svg_chart(tmp_path: Path) -> None:
    run = run_example("minimal-hourly.yaml", days=1)
    text = render_text(summarize(run))
    assert "minimal-hourly on 1 disk(s), 1 day(s) from 2026-03-02 00:00 UTC" in text
    (row,) = [line.split() for line in text.splitlines() if line.startswith("2026-03-02")]
    assert row == ["2026-03-02", "25", "1", "24", "0"]  # slots 00:00 ... 24:00 taken, keepLast 24
    assert "keepLast       24" in text
    assert "snapshots.put 25" in text
    assert "all hold." in text
    svg = tmp_path / "chart.svg"
    write_plot(run, svg)
    assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    with pytest.raises(ValueError, match="--plot"):
        write_plot(run, tmp_path / "chart.gif")


def test_a_bad_policy_file_is_refused_with_its_fields_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """\
            apiVersion: azsnap.io/v1alpha1
            kind: SnapshotPolicy
            metadata:
              name: bad
            spec:
              disk:
                id: /subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.Compute/disks/d
              schedule:
                every: 7h
              retention:
                keepLast: 0
            """
        )
    )
    code, out, err = cli(str(bad), "--json")
    assert code == 2
    assert out == ""
    assert "spec.retention.keepLast" in err
    code, _, err = cli(str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read the file" in err


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--faults", "sometimes"], "--faults"),
        (["--days", "0"], "--days"),
        (["--plot", "chart.gif"], "--plot"),
        (["--start", "yesterday"], "--start"),
        (["--list-every", "soon"], "--list-every"),
    ],
)
def test_bad_flags_are_refused_before_anything_runs(flags: list[str], named: str) -> None:
    code, _, err = cli(str(EXAMPLES / "gfs.yaml"), *flags)
    assert code == 2
    assert named in err
