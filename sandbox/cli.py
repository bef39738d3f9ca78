"""`procbots sandbox` commands: serve the sandbox portal, write sample inputs."""

from __future__ import annotations

import typer

app = typer.Typer(help="The local sandbox e-procurement portal", no_args_is_help=True)
