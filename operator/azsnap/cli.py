"""The `azsnap` command: run the operator, preview and simulate policies, run the Azure emulator, demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from azsnap import __version__

app = typer.Typer(
    name="azsnap",
    help="Keep Azure managed-disk snapshots in line with SnapshotPolicy resources.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print azsnap's version."""
    typer.echo(__version__)


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
    log_format = kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(verbose=verbose, log_format=log_format)
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
) -> None:
    """Run the Azure Compute emulator; prints one line of JSON (base_url, ca_bundle, ...), serves until interrupted."""
    import asyncio
    from pathlib import Path

    from azsnap.emulator.standalone import StandaloneOptions, run_standalone

    options = StandaloneOptions(host, port, disks, premium_v2_disks, not no_throttling, Path(state) if state else None)
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

    from azsnap.preview import run_preview

    code = run_preview(policy, days, out=sys.stdout)
    if code:
        raise typer.Exit(code)


def main() -> None:
    """Entry point of the `azsnap` console script."""
    app()
