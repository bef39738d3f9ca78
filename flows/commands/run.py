"""`procbots run` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="run commands", no_args_is_help=True)


# --- invoice-matching (issue 7) -------------------------------------------------------------


@app.command("invoice-matching")
def invoice_matching(
    portal: Annotated[
        str | None,
        typer.Option("--portal", help="Portal base URL (portal mode; default settings portal.url)"),
    ] = None,
    orders: Annotated[Path | None, typer.Option("--orders", help="File mode: orders CSV/XLSX")] = None,
    receipts: Annotated[
        Path | None, typer.Option("--receipts", help="File mode: goods receipts CSV/XLSX")
    ] = None,
    invoices: Annotated[
        list[Path] | None, typer.Option("--invoices", help="File mode: UBL XML/CSV/XLSX files or folders")
    ] = None,
    more_invoices: Annotated[
        list[Path] | None, typer.Argument(help="More invoice files, so `--invoices a.xml b.xml` works")
    ] = None,
    policy: Annotated[Path | None, typer.Option("--policy", help="Matching tolerances TOML")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Report workbook (.xlsx)")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, max=32, help="Browser contexts")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON")] = False,
) -> None:
    """Match invoices to orders and receipts; in the portal, approve, hold or reject each open one.
    Exit 0 all approved, 1 some held, rejected or failed, 2 bad usage or configuration."""
    import json

    from pydantic import ValidationError

    from bots.domain.errors import ApplicationError
    from connectors.portal.pages.base import LoginRejected
    from flows.commands.match import InputError
    from flows.invoice_matching import InvoiceMatchingParameters, run_invoice_matching

    files = [str(p) for p in [*(invoices or []), *(more_invoices or [])]]
    try:
        params = InvoiceMatchingParameters(
            portal_url=portal,
            orders=str(orders) if orders else None,
            receipts=str(receipts) if receipts else None,
            invoices=files,
            policy=str(policy) if policy else None,
            out=str(out) if out else None,
            workers=workers,
        )
        outcome = run_invoice_matching(params)
    except ValidationError as exc:
        problems = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in exc.errors())
        typer.echo(f"procbots run invoice-matching: {problems}", err=True)
        raise typer.Exit(2) from None
    except (InputError, LoginRejected, FileNotFoundError) as exc:
        typer.echo(f"procbots run invoice-matching: {exc}", err=True)
        raise typer.Exit(2) from None
    except ApplicationError as exc:
        typer.echo(f"procbots run invoice-matching: the portal failed: {exc}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "mode": outcome.mode,
                    "counts": outcome.counts,
                    "hold_reasons": outcome.hold_reasons,
                    "exceptions": outcome.rows,
                    "report": str(outcome.report) if outcome.report else None,
                },
                indent=2,
            )
        )
    else:
        typer.echo(outcome.message())
        if outcome.report:
            typer.echo(f"Report: {outcome.report}")
    raise typer.Exit(outcome.exit_code)


# --- purchase-orders (issue 6) --------------------------------------------------------------


@app.command("purchase-orders")
def purchase_orders(
    input_file: Annotated[
        Path, typer.Option("--input", help="Requisition workbook (.xlsx) or CSV, one row per line")
    ],
    portal: Annotated[
        str | None, typer.Option("--portal", help="Portal base URL (default settings portal.url)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check and search only; create no purchase order")
    ] = False,
    contexts: Annotated[
        int | None, typer.Option("--contexts", min=1, max=32, help="Browser contexts at once")
    ] = None,
    peppol: Annotated[
        bool, typer.Option("--peppol", help="Also write a PEPPOL Order XML per purchase order")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON")] = False,
) -> None:
    """Raise a purchase order in the portal for each requisition, exactly once, and write a
    results workbook. Exit 0 all raised, 1 some exceptions, 2 bad usage or configuration."""
    import json

    from bots.purchase_orders import run_purchase_orders
    from config.settings import SettingsError
    from connectors.portal.pages.base import LoginRejected
    from connectors.rows import SpreadsheetError

    command = "procbots run purchase-orders"
    if not input_file.is_file():
        typer.echo(f"{command}: --input {input_file}: no such file", err=True)
        raise typer.Exit(2)
    if portal is not None and not portal.startswith(("http://", "https://")):
        typer.echo(f"{command}: --portal {portal!r}: expected an http:// or https:// URL", err=True)
        raise typer.Exit(2)
    try:
        run = run_purchase_orders(
            input_file, portal_url=portal, dry_run=dry_run, contexts=contexts, peppol=peppol
        )
    except (SpreadsheetError, SettingsError) as exc:
        typer.echo(f"{command}: {exc}", err=True)
        raise typer.Exit(2) from None
    rejected = [r for r in run.results if r.reason_code == "LOGIN_REJECTED"]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "run_id": run.run_id,
                    "counts": run.counts,
                    "results": [r.model_dump(mode="json") for r in run.results],
                    "workbook": str(run.workbook) if run.workbook else None,
                    "peppol_orders": [str(p) for p in run.orders_xml],
                },
                indent=2,
            )
        )
    else:
        counts = ", ".join(f"{n} {status.lower()}" for status, n in run.counts.items()) or "no requisitions"
        typer.echo(f"Purchase orders{' (dry run)' if dry_run else ''}: {counts}")
        for result in run.exceptions:
            typer.echo(f"  {result.requisition_ref}: {result.status}: {result.reason or ''}")
        if run.workbook:
            typer.echo(f"Results: {run.workbook}")
    if rejected:
        typer.echo(f"{command}: {LoginRejected.__name__}: {rejected[0].reason}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(run.exit_code)


# --- contract-uploads (issue 8) -------------------------------------------------------------


@app.command("contract-uploads")
def contract_uploads(
    folder: Annotated[
        Path,
        typer.Option(
            "--folder",
            help="Drop folder: PDFs with metadata.xlsx/.csv or a JSON sidecar each, in it or its inbox/",
        ),
    ],
    portal: Annotated[
        str | None, typer.Option("--portal", help="Portal base URL (default settings portal.url)")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and report only; claim, upload and move nothing")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, max=32, help="Browser contexts at once")
    ] = None,
    stable_for: Annotated[
        float,
        typer.Option("--stable-for", min=0, help="Seconds a file must stay unchanged before it is taken"),
    ] = 2.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome per contract as JSON")] = False,
) -> None:
    """Upload signed contracts to the portal's contract register, exactly once, verified; quarantine
    the rest with reasons and write a contracts report. Exit 0 all uploaded, 1 some rejected or failed,
    2 bad usage or configuration."""
    import json

    from bots.contracts import run_contract_uploads
    from config.settings import SettingsError
    from connectors.dropfolder import DropFolderError

    command = "procbots run contract-uploads"
    if not folder.is_dir():
        typer.echo(f"{command}: --folder {folder}: no such folder", err=True)
        raise typer.Exit(2)
    if portal is not None and not portal.startswith(("http://", "https://")):
        typer.echo(f"{command}: --portal {portal!r}: expected an http:// or https:// URL", err=True)
        raise typer.Exit(2)
    try:
        result = run_contract_uploads(
            folder, portal_url=portal, dry_run=dry_run, workers=workers, stable_for_s=stable_for
        )
    except (SettingsError, DropFolderError) as exc:
        typer.echo(f"{command}: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "counts": result.counts,
                    "contracts": [o.as_row() for o in result.outcomes],
                    "unreadable_metadata": result.quarantined_metadata,
                    "report": str(result.report) if result.report else None,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in result.counts.items() if n)
        typer.echo(f"Contract uploads{' (dry run)' if dry_run else ''}: {counts or 'nothing to do'}")
        for o in result.outcomes:
            if o.outcome in ("rejected", "failed", "pending"):
                typer.echo(f"  {o.contract_id or o.source}: {o.outcome}: {o.reason_code}: {o.reason or ''}")
        for line in result.quarantined_metadata:
            typer.echo(f"  {line}")
        if result.report:
            typer.echo(f"Report: {result.report}")
    if any(o.reason_code == "LOGIN_REJECTED" for o in result.outcomes):
        typer.echo(
            f"{command}: the portal refused the sign-in; check portal.username and the password", err=True
        )
        raise typer.Exit(2)
    raise typer.Exit(result.exit_code)
