"""`procbots items` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="items commands", no_args_is_help=True)
