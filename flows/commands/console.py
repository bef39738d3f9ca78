"""`procbots console`: the work-queue console for people; `console hash-password` for its users.

Only typer is imported here; the web app loads when the console starts.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer

app = typer.Typer(
    help="The work-queue console: people sign in and work the bots' exceptions in a browser.",
    invoke_without_command=True,
)


@app.callback()
def console(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default: console.host, 127.0.0.1)")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", min=0, max=65535, help="Port (default: console.port, 8800)")
    ] = None,
) -> None:
    """Serve the console (sign in with a user of the [console.users] settings)."""
    if ctx.invoked_subcommand is not None:
        return
    from config.settings import get_settings
    from flows.console.server import is_loopback, run_console, setup_problem

    settings = get_settings()
    problem = setup_problem(settings)
    if problem:
        typer.echo(f"procbots console: {problem}", err=True)
        raise typer.Exit(2)
    host = host or settings.console.host
    port = settings.console.port if port is None else port
    if not is_loopback(host):
        typer.echo(
            f"procbots console: listening on {host}, reachable from other machines; "
            "serve it behind HTTPS (a reverse proxy) and set console.public_url",
            err=True,
        )
    typer.echo(f"procbots console on http://{host}:{port} (Ctrl-C stops it)")
    run_console(settings, host, port)


@app.command("hash-password")
def hash_password_command(
    username: Annotated[str, typer.Argument(help="The person's sign-in name, e.g. jsmith")],
    name: Annotated[str, typer.Option("--name", help="Full name for the audit log, e.g. 'Jane Smith'")] = "",
) -> None:
    """Ask for a password and print the settings lines (TOML) that let this person sign in."""
    from flows.console.auth import hash_password

    password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < 12:
        typer.echo("procbots console: use a password of at least 12 characters", err=True)
        raise typer.Exit(2)
    # TOML basic strings take JSON's escapes; a bare key only letters, digits, - and _.
    key = username if re.fullmatch(r"[A-Za-z0-9_-]+", username) else json.dumps(username)
    typer.echo(f"[console.users.{key}]")
    typer.echo(f"name = {json.dumps(name or username)}")
    typer.echo(f"password_hash = {json.dumps(hash_password(password))}")
