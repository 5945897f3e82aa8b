"""`azsnap simulate --plot`: snapshots held over time per disk, creates and deletes marked, the per-disk cap drawn."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Final

from azsnap.offline.simulate import SimulationRun

__all__ = ["PLOT_SUFFIXES", "write_plot"]

PLOT_SUFFIXES: Final = (".png", ".svg")
#: Disks named in the legend; more lines are drawn but not listed.
_LEGEND_DISKS: Final = 6
#: Runs shorter than this many days count creates and deletes per hour rather than per day.
_HOURLY_BINS_BELOW_DAYS: Final = 4


def write_plot(run: SimulationRun, path: Path) -> None:
    """Draw the run into `path`, PNG or SVG by its suffix (ValueError for another suffix)."""
    suffix = path.suffix.lower()
    if suffix not in PLOT_SUFFIXES:
        raise ValueError(f"--plot: the file must end in {' or '.join(PLOT_SUFFIXES)}, got {path.name!r}")
    # The object API with the Agg canvas: no pyplot, no global backend, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(10, 6), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    held, changes = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    cap = run.options.limits.per_disk_cap
    for i, trace in enumerate(run.disks):
        times = [run.options.start] + [at for at, _ in trace.samples] + [run.end]
        counts = [0] + [count for _, count in trace.samples]
        counts.append(counts[-1])
        label = trace.name if i < _LEGEND_DISKS else None
        held.step(times, counts, where="post", color=f"C{i % 10}", linewidth=1.6, label=label)
    held.axhline(cap, color="black", linestyle="--", linewidth=1.2, label=f"Azure cap: {cap} per disk")
    # A log scale keeps the cap in view without flattening the tens of snapshots a policy usually holds.
    held.set_yscale("log")
    held.set_ylim(0.8, cap * 1.6)
    held.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    held.set_ylabel("snapshots held per disk\n(log scale)")
    held.grid(True, which="major", alpha=0.3)
    held.legend(loc="upper right", bbox_to_anchor=(1.0, 0.9), fontsize=8, framealpha=0.9)
    opts = run.options
    held.set_title(
        f"azsnap simulate {run.name}: {opts.disks} disk(s), {opts.days} day(s), faults: {opts.faults}", fontsize=11
    )

    # Creates and deletes of all disks, counted per day (per hour for runs of a few days).
    width = timedelta(days=1) if opts.days >= _HOURLY_BINS_BELOW_DAYS else timedelta(hours=1)
    bins = max(1, math.ceil((run.end - opts.start) / width))  # what happens at the very end joins the last bin
    edges = [opts.start + k * width for k in range(bins)]
    created = [0] * bins
    deleted = [0] * bins
    for trace in run.disks:
        for at, _, _ in trace.created:
            created[min(bins - 1, int((at - opts.start) / width))] += 1
        for at, _ in trace.deleted:
            deleted[min(bins - 1, int((at - opts.start) / width))] -= 1
    bar = width * 0.8
    changes.bar(edges, created, width=bar, align="edge", color="tab:green", label="created")
    changes.bar(edges, deleted, width=bar, align="edge", color="tab:red", label="deleted")
    changes.axhline(0, color="black", linewidth=0.6)
    changes.set_ylabel("per day" if width == timedelta(days=1) else "per hour")
    changes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{abs(value):g}"))
    changes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, framealpha=0.9)
    changes.grid(True, axis="y", alpha=0.3)
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]  # matplotlib leaves it unannotated
    changes.xaxis.set_major_locator(locator)
    changes.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]  # same
    changes.set_xlim(opts.start, run.end)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format=suffix.lstrip("."))
