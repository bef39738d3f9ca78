"""`procbots sandbox` commands: serve the sandbox portal, write sample inputs.

The sandbox itself (FastAPI, uvicorn, openpyxl, the seeded portal) is imported only
inside these commands: production code does not depend on the fake portal, and
``procbots --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The local sandbox e-procurement portal", no_args_is_help=True)


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8765,
    seed: Annotated[int, typer.Option(help="Seed of the generated data")] = 1,
    orders: Annotated[int, typer.Option(help="Purchase orders to seed (10 to 100,000+)", min=1)] = 200,
    chaos: Annotated[
        str,
        typer.Option(
            help="Faults, e.g. 'error_rate=0.1,latency_ms=200,slow_render_ms=800,session_ttl_s=60,"
            "shuffle=1,seed=7'"
        ),
    ] = "",
    db: Annotated[
        Path | None, typer.Option(help="SQLite file (default: under the data root, per seed)")
    ] = None,
    totp: Annotated[
        bool, typer.Option("--totp", help="Ask for a TOTP security code after the password")
    ] = False,
    reset: Annotated[bool, typer.Option("--reset", help="Throw away the database and seed again")] = False,
) -> None:
    """Serve the sandbox portal (sign in as buyer1; see docs/sandbox.md)."""
    import os

    from sandbox.app import DEFAULT_PASSWORD
    from sandbox.chaos import ChaosError, ChaosSpec
    from sandbox.server import PASSWORD_ENV, SandboxError, default_db_path, prepare_database, serve

    try:
        spec = ChaosSpec.parse(chaos)
    except ChaosError as exc:
        typer.echo(f"--chaos: {exc}", err=True)
        raise typer.Exit(2) from None
    db_path = db or default_db_path(seed, orders)
    try:
        seeded = prepare_database(db_path, seed, orders, reset)
    except SandboxError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    password_note = (
        f"from {PASSWORD_ENV}"
        if os.environ.get(PASSWORD_ENV)
        else f"{DEFAULT_PASSWORD} (the documented default)"
    )
    typer.echo(f"Sandbox portal on http://{host}:{port}  ({'seeded' if seeded else 'reusing'} {db_path})")
    typer.echo(f"Sign in as buyer1, password {password_note}" + ("; TOTP on" if totp else ""))
    if chaos:
        typer.echo(f"Chaos: {spec.to_spec()}")
    serve(db_path, seed, orders, spec, host, port, totp=totp)


@app.command("data")
def data_command(
    out: Annotated[Path, typer.Option(help="Folder to write the sample inputs into")],
    orders: Annotated[
        int, typer.Option(help="Purchase orders in the history (as the portal's --orders)", min=1)
    ] = 200,
    seed: Annotated[int, typer.Option(help="Seed (use the portal's seed so the data agree)")] = 1,
) -> None:
    """Write sample inputs: orders, receipts, invoices (UBL), requisitions, contracts."""
    from sandbox.datafiles import write_input_files

    result = write_input_files(out, seed=seed, orders=orders)
    typer.echo(
        f"Wrote {result['orders']} orders ({result['order_lines']} lines), {result['receipt_lines']} receipt lines, "  # noqa: E501
        f"{result['invoices']} invoices, {result['requisitions']} new requisitions, {result['contracts']} new "  # noqa: E501
        f"contracts, {result['despatch_advices']} despatch advices and {result['scan_rows']} scans to {out}"
    )
