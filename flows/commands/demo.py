"""`procbots demo`: the daily job against the embedded sandbox."""

from __future__ import annotations

import typer


def demo() -> None:
    """Run the main job on the embedded default."""
    typer.echo("procbots demo: nothing to run yet")
