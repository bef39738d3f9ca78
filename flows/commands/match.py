"""`procbots match`: offline invoice matching."""

from __future__ import annotations

import typer


def match() -> None:
    """Match invoices to orders and receipts (not built yet: issue 7)."""
    typer.echo("procbots match is not built yet (issue 7)", err=True)
    raise typer.Exit(2)
