"""`procbots audit` commands: check the hash chain of an audit log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Audit trail commands.", no_args_is_help=True)


@app.command("verify")
def verify(
    path: Annotated[Path, typer.Argument(help="Audit JSONL file to check")],
    hmac_key_env: Annotated[
        str | None,
        typer.Option(
            "--hmac-key-env",
            help="Environment variable holding the HMAC key (default: the configured audit.hmac_key)",
        ),
    ] = None,
) -> None:
    """Checks every record of an audit log.

    Exit 0 when intact; 1 naming the first broken seq; 2 when the chain is keyed
    and its key is needed (or another key was given), or on bad usage.
    """
    from connectors.audit import verify_audit

    if hmac_key_env is not None:
        key = os.environ.get(hmac_key_env)
        if not key:
            typer.echo(f"procbots audit verify: environment variable {hmac_key_env} is not set", err=True)
            raise typer.Exit(2)
    else:
        from config.settings import get_settings

        configured = get_settings().audit.hmac_key
        key = configured.get_secret_value() if configured else None
    if not path.is_file():
        typer.echo(f"procbots audit verify: {path}: no such file", err=True)
        raise typer.Exit(2)
    result = verify_audit(path, hmac_key=key)
    if result.needs_key:
        typer.echo(f"procbots audit verify: {result.message}", err=True)
        raise typer.Exit(2)
    if result.ok:
        typer.echo(f"{path}: {result.message}")
        return
    typer.echo(f"{path}: BROKEN at seq {result.first_broken_seq}: {result.message}", err=True)
    typer.echo(f"{result.records} records verified before the break", err=True)
    raise typer.Exit(1)
