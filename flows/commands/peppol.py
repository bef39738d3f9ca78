"""`procbots peppol` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="peppol commands", no_args_is_help=True)
