"""The `azsnap` command: run the operator, preview and simulate policies, run the Azure emulator, demo."""

from __future__ import annotations

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


def main() -> None:
    """Entry point of the `azsnap` console script."""
    app()
