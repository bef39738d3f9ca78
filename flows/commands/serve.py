"""`procbots serve`: serve every deployment on one box."""

from __future__ import annotations

import typer


def serve() -> None:
    """Serve all deployments with Prefect (not built yet: issue 9)."""
    typer.echo("procbots serve is not built yet (issue 9)", err=True)
    raise typer.Exit(2)
