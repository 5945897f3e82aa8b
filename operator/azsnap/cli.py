"""The `azsnap` command: run the operator, preview and simulate policies, run the Azure emulator, demo."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from azsnap import __version__

if TYPE_CHECKING:
    from azsnap.settings import CopyCap

#: `--parallel-copies` of simulate and capacity: the operator's AZSNAP_PARALLEL_COPIES, read by `_copy_cap`.
ParallelCopies = Annotated[
    str | None,
    typer.Option(
        help="Copies (spec.copies) at once per subscription and target region, as the operator's "
        "AZSNAP_PARALLEL_COPIES (default: that variable, else the operator's default, 100)."
    ),
]

app = typer.Typer(
    name="azsnap",
    help="Keep Azure managed-disk snapshots in line with SnapshotPolicy resources.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print azsnap's version and exit."),
    ] = False,
) -> None:
    """Keep Azure managed-disk snapshots in line with SnapshotPolicy resources."""


@app.command()
def version() -> None:
    """Print azsnap's version."""
    typer.echo(__version__)


def _kubernetes_login_problem() -> str | None:
    """Why kopf could not log in to Kubernetes (no in-cluster service account, no usable kubeconfig), or None."""
    import logging

    import kopf
    import yaml

    logger = logging.getLogger("azsnap.login")
    settings = kopf.OperatorSettings()
    try:
        if kopf.login_with_service_account(settings=settings, logger=logger) or kopf.login_with_kubeconfig(
            settings=settings, logger=logger
        ):
            return None
    except (kopf.LoginError, OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError) as exc:
        return "cannot use the Kubernetes credentials: " + " ".join(str(exc).split())
    return (
        "no Kubernetes credentials: run in a cluster (the pod's service account token) or set KUBECONFIG "
        "(or ~/.kube/config) to a kubeconfig with a current context"
    )


@app.command()
def run(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    liveness: str = typer.Option(
        "http://0.0.0.0:8081/healthz", help="kopf's liveness endpoint (the Helm chart probes it)."
    ),
) -> None:
    """Run the operator (settings come from AZSNAP_* environment variables, see docs/operations.md)."""
    import os

    import kopf

    from azsnap.settings import Settings, SettingsError

    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        typer.echo(f"azsnap: {exc}", err=True)
        raise typer.Exit(2) from exc
    problem = _kubernetes_login_problem()
    if problem is not None:
        typer.echo(f"azsnap: {problem}", err=True)
        raise typer.Exit(2)
    from azsnap.logs import configure_logging

    configure_logging("DEBUG" if verbose else settings.log_level, settings.log_format)
    import azsnap.handlers  # noqa: F401  (registers the handlers)

    kopf.run(
        clusterwide=not settings.namespaces,
        namespaces=list(settings.namespaces),
        standalone=not settings.peering,
        peering_name=settings.peering,
        liveness_endpoint=liveness,
    )


@app.command()
def emulator(
    host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback by default)."),
    port: int = typer.Option(0, help="Port to listen on; 0 picks a free one."),
    disks: int = typer.Option(3, help="Standard SSD disks to seed: disk-0 … disk-<N-1>."),
    premium_v2_disks: int = typer.Option(0, "--premium-v2-disks", help="Premium SSD v2 disks to seed: pv2-disk-0 …"),
    no_throttling: bool = typer.Option(
        False, "--no-throttling", help="Never answer 429 (limits per disk still apply)."
    ),
    state: str | None = typer.Option(None, help="JSON file: loaded at start if it exists, saved on exit."),
    timing: str = typer.Option(
        "azure", help="Operation timing: azure (as Azure answered, the default), gentle or instant."
    ),
) -> None:
    """Run the Azure Compute emulator; prints one line of JSON (base_url, ca_bundle, ...), serves until interrupted."""
    import asyncio
    from pathlib import Path

    from azsnap.emulator.standalone import StandaloneOptions, run_standalone

    options = StandaloneOptions(
        host, port, disks, premium_v2_disks, not no_throttling, Path(state) if state else None, timing
    )
    try:
        asyncio.run(run_standalone(options))
    except (OSError, ValueError) as exc:
        typer.echo(f"azsnap emulator: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def preview(
    policy: Annotated[Path, typer.Argument(help="A SnapshotPolicy manifest (YAML).")],
    days: Annotated[int, typer.Option(help="How many days to simulate.")] = 30,
) -> None:
    """Validate a policy file and show, day by day, what azsnap would create and delete, and what it keeps."""
    import sys

    from azsnap.offline.preview import run_preview

    code = run_preview(policy, days, out=sys.stdout)
    if code:
        raise typer.Exit(code)


@app.command()
def simulate(
    policy: Annotated[Path, typer.Argument(help="A SnapshotPolicy manifest (YAML).")],
    disks: Annotated[int, typer.Option(help="Disks to run the policy on (disk-0 …), each with its own copy.")] = 1,
    days: Annotated[int, typer.Option(help="Emulated days to run.")] = 30,
    faults: Annotated[str, typer.Option(help="Fault profile: none, flaky or throttled.")] = "none",
    plot: Annotated[Path | None, typer.Option(help="Write a chart here (.png or .svg).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one line of JSON.")] = False,
    change_rate: Annotated[float, typer.Option(help="Share of the written data changed per day.")] = 0.02,
    written: Annotated[float, typer.Option(help="Written data as a share of the disk size.")] = 0.4,
    disk_size_gb: Annotated[int, typer.Option(help="Provisioned size of each emulated disk.")] = 128,
    disk_sku: Annotated[str, typer.Option(help="SKU of the emulated disks, e.g. PremiumV2_LRS.")] = "StandardSSD_LRS",
    start: Annotated[str | None, typer.Option(help="Emulated start, ISO 8601 with zone; default: this hour.")] = None,
    list_every: Annotated[str, typer.Option(help="List a resource group at most this often (e.g. 30s, 6h).")] = "6h",
    seed: Annotated[int, typer.Option(help="Seed of the fault draws.")] = 0,
    parallel_copies: ParallelCopies = None,
) -> None:
    """Run a policy with the real reconciler and Azure SDK against an emulated Azure, days in seconds."""
    import sys
    from datetime import datetime

    from azsnap.clock import WallClock
    from azsnap.domain.durations import parse_duration
    from azsnap.domain.observed import Limits
    from azsnap.offline.simulate import SimulationOptions
    from azsnap.offline.simulate_report import run_simulate

    try:
        begin = datetime.fromisoformat(start) if start else WallClock().now().replace(minute=0, second=0, microsecond=0)
    except ValueError as exc:
        typer.echo(f"azsnap simulate: --start: {exc}; use ISO 8601 with a zone, e.g. 2026-03-02T00:00:00Z", err=True)
        raise typer.Exit(2) from exc
    try:
        relist = parse_duration(list_every)
    except ValueError as exc:
        typer.echo(f"azsnap simulate: --list-every: {exc}", err=True)
        raise typer.Exit(2) from exc
    cap = _copy_cap("simulate", parallel_copies)
    options = SimulationOptions(
        start=begin,
        disks=disks,
        days=days,
        faults=faults,
        change_rate=change_rate,
        written_fraction=written,
        disk_size_gb=disk_size_gb,
        disk_sku=disk_sku,
        relist=relist,
        seed=seed,
        limits=Limits(max_parallel_copies=cap.value),
    )
    code = run_simulate(
        policy, options, out=sys.stdout, err=sys.stderr, plot=plot, as_json=as_json, copy_cap_source=cap.source
    )
    if code:
        raise typer.Exit(code)


@app.command()
def capacity(
    paths: Annotated[list[Path], typer.Argument(help="SnapshotPolicy manifests (YAML) or directories of them.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    parallel_copies: ParallelCopies = None,
) -> None:
    """Creates, deletes, lists and reads per hour per subscription that the policies need, against Azure's budget.

    Exits 1 when a set of policies cannot fit (a budget or a burst past its startingDeadline), 2 on a bad file.
    """
    import json

    from azsnap.clock import WallClock
    from azsnap.offline.capacity import CapacityError, assess, load_policies, render_json, render_table

    try:
        policies = load_policies(paths)
    except CapacityError as exc:
        for problem in exc.problems:
            typer.echo(f"azsnap capacity: {problem}", err=True)
        raise typer.Exit(2) from exc
    results = assess(policies, WallClock().now(), parallel_copies=_copy_cap("capacity", parallel_copies))
    if as_json:
        typer.echo(json.dumps(render_json(results), indent=2))
    else:
        typer.echo(render_table(results), nl=False)
    if not all(row.fits for row in results):
        raise typer.Exit(1)


@app.command()
def snapshots(
    policy: Annotated[
        str | None, typer.Argument(help="A SnapshotPolicy name; all of the namespace when left out.")
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="The policies' namespace.")] = None,
    all_namespaces: Annotated[bool, typer.Option("--all-namespaces", "-A", help="Every namespace.")] = False,
    disk: Annotated[str | None, typer.Option(help="Only the policies of this disk (its ARM ID).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of the table.")] = False,
    kubeconfig: Annotated[str | None, typer.Option(help="The kubeconfig file (default: KUBECONFIG).")] = None,
    context: Annotated[str | None, typer.Option(help="The kubeconfig context (default: the current one).")] = None,
) -> None:
    """List policies' snapshots in Azure: time, slot, state, size, held or not, and the rules that keep each."""
    import sys

    from azsnap.tools.snapshots import SnapshotsOptions, run_snapshots

    options = SnapshotsOptions(policy, namespace, all_namespaces, disk, as_json, kubeconfig, context)
    code = run_snapshots(options, out=sys.stdout, err=sys.stderr)
    if code:
        raise typer.Exit(code)


@app.command()
def demo(
    hours: Annotated[float, typer.Option(min=0.1, help="Emulated hours to run.")] = 72.0,
    speed: Annotated[
        float, typer.Option(min=0.0, help="Emulated hours per real second; 0: as fast as possible.")
    ] = 1.0,
    disks: Annotated[
        int, typer.Option(min=0, help="Standard SSD disks; each beyond the 4 the examples use gets an hourly policy.")
    ] = 4,
    as_json: Annotated[bool, typer.Option("--json", help="Print only the final summary, as one line of JSON.")] = False,
    examples: Annotated[Path | None, typer.Option(help="Directory of SnapshotPolicy YAML files to apply.")] = None,
    snapshots: Annotated[
        bool, typer.Option("--snapshots", help="At the end, list every policy's snapshots (azsnap snapshots -A).")
    ] = False,
) -> None:
    """Run the real operator against an embedded Azure and Kubernetes on emulated time; exit 1 if an invariant broke."""
    import sys

    from azsnap.offline.demo import DemoOptions, run_command

    options = DemoOptions(hours=hours, speed=speed, disks=disks, examples=examples, snapshots=snapshots)
    try:
        code = run_command(options, as_json=as_json, out=sys.stdout)
    except FileNotFoundError as exc:
        typer.echo(f"azsnap demo: {exc}", err=True)
        raise typer.Exit(2) from exc
    if code:
        raise typer.Exit(code)


def _copy_cap(command: str, flag: str | None) -> CopyCap:
    """The cap on copies at once as the operator reads it (the flag, else AZSNAP_PARALLEL_COPIES); exit 2 if bad."""
    import os

    from azsnap.settings import SettingsError, copy_cap

    try:
        return copy_cap(flag, os.environ)
    except SettingsError as exc:
        typer.echo(f"azsnap {command}: {exc}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    """Entry point of the `azsnap` console script."""
    app()
