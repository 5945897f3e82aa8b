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


def main() -> None:
    """Entry point of the `azsnap` console script."""
    app()
